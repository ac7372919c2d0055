"""The CLI commands on notes: capture, write, get, list, search, reindex, and the MCP server.

The commands that wire a home in and out are in `home_cli`; those that report on it and look
after it, in `health_cli`. Each reads its arguments, calls core, and prints (text or --json).
"""

from __future__ import annotations

import argparse
import builtins
from collections.abc import Mapping
from pathlib import Path

import anyio.to_thread

from anamnesis.cli.io import IO
from anamnesis.cli.output import (
    ProgressBar,
    Style,
    format_hit,
    format_note,
    format_summary,
    print_json,
    semantic_line,
    unfiltered,
)
from anamnesis.config import Config, load_config
from anamnesis.errors import NoteValidationError
from anamnesis.memory import NoteDraft, open_memory
from anamnesis.notes import GLOBAL_PROJECT
from anamnesis.project import resolve_project
from anamnesis.search import SearchFilters
from anamnesis.shapes import hit_json, note_json, summary_json


def current_project(io: IO) -> str:
    """The project key of the working directory (DESIGN section 5)."""
    home = io.environ.get("HOME")
    return resolve_project(io.cwd, Path(home) if home else None)


def _split(text: str) -> builtins.list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _filters(args: argparse.Namespace, *, with_global: bool) -> SearchFilters:
    projects: tuple[str, ...] = ()
    if args.project:
        projects = (
            (args.project,) if args.project == GLOBAL_PROJECT or not with_global else (args.project, GLOBAL_PROJECT)
        )
    return SearchFilters(
        projects=projects,
        types=(args.type,) if args.type else (),
        scope=args.scope,
        tags=tuple(getattr(args, "tag", ()) or ()),
        include_superseded=bool(getattr(args, "include_superseded", False)),
    )


async def capture(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.capture.session import capture_session

    llm = None if args.no_llm or not config.reflection.configured else config.reflection
    async with open_memory(config) as memory:
        note = await capture_session(
            memory,
            args.transcript,
            args.session_id,
            args.project or current_project(io),
            args.source,
            cursor_dir=config.layout.state_dir / "capture",
            llm=llm,
        )
    io.out.write(f"{note.id}\n" if note else "Nothing worth keeping in this session.\n")
    code = 0
    if not args.no_sync and config.has_hub:
        from anamnesis.cli.sync_cli import sync_now

        code = await sync_now(config, io)
    elif note is not None:
        from anamnesis.autosync import push_soon

        # Not in this process, but soon: one detached push for a burst of captures (none if the service runs).
        await anyio.to_thread.run_sync(push_soon, config, io.environ)
    await _upkeep_if_due(config)
    return code


async def _upkeep_if_due(config: Config) -> None:
    """The background processes (capture, sync) keep the store in shape, at most hourly."""
    from anamnesis.upkeep import run_upkeep

    await run_upkeep(config)


async def write(config: Config, args: argparse.Namespace, io: IO) -> int:
    body = args.body
    if body is None or body == "-":
        if io.stdin.isatty():
            io.err.write("Type the note's body, then Ctrl-D:\n")
        body = await anyio.to_thread.run_sync(io.stdin.read)
    if not body.strip():
        raise NoteValidationError("body", "is empty; pass it as an argument or on stdin")
    project = args.project or current_project(io)
    draft = NoteDraft(
        type=args.type,
        title=args.title,
        body=body,
        project=project,
        tags=_split(args.tags),
        scope="machine-local" if args.local else "portable",
        supersedes=_split(args.supersedes),
    )
    async with open_memory(config) as memory:
        note = await memory.write(draft)
        path = memory.note_path(note)
    if args.json:
        print_json(io.out, note_json(note, path, []))
    else:
        io.out.write(f"{note.id}\n")
    return 0


async def get(config: Config, args: argparse.Namespace, io: IO) -> int:
    async with open_memory(config) as memory:
        note = await memory.get(args.id)
        path = memory.note_file(note)
        rel = memory.note_path(note)
        superseded_by = await memory.superseded_by(note.id)
        if args.raw:
            unfiltered(io.out).write(await anyio.to_thread.run_sync(path.read_text))
            return 0
    if args.json:
        print_json(io.out, note_json(note, rel, superseded_by))
    else:
        io.out.write(format_note(note, rel, superseded_by, Style(io.out)) + "\n")
    return 0


async def list(config: Config, args: argparse.Namespace, io: IO) -> int:
    async with open_memory(config) as memory:
        page = await memory.list(_filters(args, with_global=False), args.limit, args.cursor)
    if args.json:
        print_json(io.out, {"notes": [summary_json(n) for n in page.notes], "next_cursor": page.next_cursor})
        return 0
    style = Style(io.out)
    if not page.notes:
        io.out.write("No notes" + (" match these filters.\n" if args.project or args.type else " yet.\n"))
    for note in page.notes:
        io.out.write(format_summary(note, style) + "\n")
    if page.next_cursor:
        io.out.write(style.dim(f"more: anamnesis list --cursor {page.next_cursor}") + "\n")
    return 0


async def search(config: Config, args: argparse.Namespace, io: IO) -> int:
    query = " ".join(args.query)
    async with open_memory(config) as memory:
        # The service's model when it runs (a socket round trip), else one loaded here (0.3-0.4 s):
        # either way the search finds what was meant, not only the words.
        if not await memory.borrow_model():
            await memory.load_model()
        hits = await memory.search(query, _filters(args, with_global=True), args.limit)
    if args.json:
        print_json(io.out, {"query": query, "hits": [hit_json(h) for h in hits]})
        return 0
    style = Style(io.out)
    if not hits:
        io.out.write(f"Nothing found for {query!r}.\n")
    for rank, hit in enumerate(hits, start=1):
        io.out.write(format_hit(rank, hit, style) + "\n")
    return 0


async def reindex(config: Config, args: argparse.Namespace, io: IO) -> int:
    progress = ProgressBar(io.err, "indexing")
    async with open_memory(config) as memory:
        committed = await memory.commit_pending()
        report = await memory.reindex(full=args.full, progress=progress)
        progress.finish()
        embedding = ProgressBar(io.err, "embedding")
        embedded = await memory.embed_pending(embedding)
        embedding.finish()
        semantic = await memory.recall_status()
    if args.json:
        print_json(
            io.out,
            {
                "scanned": report.scanned,
                "added": report.added,
                "updated": report.updated,
                "removed": report.removed,
                "committed": committed,
                "embedded": embedded,
                "semantic": semantic,
                "problems": [{"path": p.path, "reason": p.reason} for p in report.problems],
            },
        )
    else:
        io.out.write(
            f"{report.scanned} note files: {report.added} added, {report.updated} updated, {report.removed} removed.\n"
        )
        if committed:
            io.out.write(f"Committed edits made by hand ({committed[:10]}).\n")
        io.out.write(semantic_line(semantic, embedded) + "\n")
        for problem in report.problems:
            io.out.write(f"skipped {problem.path}: {problem.reason}\n")
    return 0


def mcp(home: Path, environ: Mapping[str, str]) -> int:
    """Serve MCP over stdio. The SDK import is heavy, so it happens only here."""
    import os

    from anamnesis.mcp_server import run_stdio

    config = load_config(home, environ)
    cwd = Path(environ.get("CLAUDE_PROJECT_DIR") or os.getcwd())
    home_dir = environ.get("HOME")
    status: int = run_stdio(config, resolve_project(cwd, Path(home_dir) if home_dir else None))
    return status
