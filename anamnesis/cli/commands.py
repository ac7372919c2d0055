"""The CLI commands: each reads its arguments, calls core, and prints (text or --json)."""

from __future__ import annotations

import argparse
import builtins
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio.to_thread

from anamnesis.cli.output import (
    ProgressBar,
    Style,
    format_hit,
    format_note,
    format_summary,
    print_json,
    unfiltered,
)
from anamnesis.config import Config, Layout, load_config
from anamnesis.errors import AnamnesisError, BusyError, ConfigError, NoteValidationError
from anamnesis.home import init_home
from anamnesis.memory import NoteDraft, open_memory
from anamnesis.notes import GLOBAL_PROJECT
from anamnesis.project import resolve_project
from anamnesis.search import SearchFilters
from anamnesis.shapes import hit_json, note_json, summary_json

if TYPE_CHECKING:
    from anamnesis.evaluation import EvalReport, GateReport
    from anamnesis.hybrid import Semantic
    from anamnesis.index import SearchIndex


@dataclass(frozen=True, slots=True)
class IO:
    """The process's streams, environment and working directory, as the command sees them."""

    out: TextIO
    err: TextIO
    environ: Mapping[str, str]
    cwd: Path
    stdin: TextIO


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


async def init(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis import claude_setup

    paths = claude_setup.ClaudePaths.from_env(io.environ)
    home_env = io.environ.get("ANAMNESIS_HOME")
    plan = (
        None
        if args.no_claude
        else claude_setup.plan_setup(
            paths, claude_setup.entry_command(io.environ), str(config.home) if home_env else None
        )
    )
    if args.dry_run:
        if plan is None or not plan.changed:
            io.out.write("Claude Code settings: nothing would change.\n")
        else:
            io.out.write(plan.diff())
        return 0
    machine_id = args.machine_id or config.machine_id
    await _rename_if_asked(config, args.machine_id, io)
    report = await init_home(config.layout, machine_id)
    config = load_config(config.home, io.environ)
    async with open_memory(config) as memory:
        await memory.reindex()
    backups: builtins.list[Path] = []
    if plan is not None and plan.changed:
        backups = await anyio.to_thread.run_sync(
            claude_setup.apply, plan, config.layout.state_dir / "claude-setup.json"
        )
        report.created.append(f"Claude Code wiring in {paths.settings} and {paths.state_file}")
    if args.json:
        print_json(
            io.out,
            {
                "home": report.home,
                "machine_id": report.machine_id,
                "created": report.created,
                "backups": [str(b) for b in backups],
            },
        )
    elif report.changed:
        io.out.write(f"Anamnesis home ready at {report.home} (machine {report.machine_id}). Done:\n")
        for item in report.created:
            io.out.write(f"  {item}\n")
        for backup in backups:
            io.out.write(f"  backup: {backup}\n")
        if plan is not None and plan.replaced_old_hooks:
            io.out.write(f"  replaced {plan.replaced_old_hooks} hook(s) of anamnesis-memory 0.1.3\n")
        io.out.write('Next: anamnesis write --type procedural --title "..." "what to remember"\n')
    else:
        io.out.write(f"Already initialized at {report.home} (machine {report.machine_id}); nothing changed.\n")
    return 0


async def _rename_if_asked(config: Config, wanted: str | None, io: IO) -> str | None:
    """`init --machine-id NEW` on a home that has another name renames this machine: config,
    and the fleet file it published under the old name (committed; the next sync sends it)."""
    from anamnesis.config import clean_machine_id
    from anamnesis.home import rename_machine
    from anamnesis.sync.fleet import install_id, retire_fleet_file

    if not wanted or not config.layout.config_path.is_file() or clean_machine_id(wanted) == config.machine_id:
        return None
    if io.environ.get("ANAMNESIS_MACHINE_ID"):
        raise ConfigError("ANAMNESIS_MACHINE_ID is set and names this machine; unset it to rename it here")
    layout = config.layout
    old = await anyio.to_thread.run_sync(rename_machine, layout, wanted)
    install = await anyio.to_thread.run_sync(install_id, layout)
    retired = await anyio.to_thread.run_sync(retire_fleet_file, layout.memory_dir, old, install)
    if retired is not None:
        async with open_memory(load_config(config.home, io.environ)) as memory:
            await memory.commit_pending(f"anamnesis: {old} is now {clean_machine_id(wanted)}")
    io.out.write(f"Renamed this machine from {old} to {clean_machine_id(wanted)}; the next sync tells the fleet.\n")
    return old


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


async def uninstall(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis import claude_setup

    paths = claude_setup.ClaudePaths.from_env(io.environ)
    record = config.layout.state_dir / "claude-setup.json"
    plan = claude_setup.plan_uninstall(paths, record)
    if not plan.changed:
        io.out.write("Nothing of Anamnesis is wired into Claude Code; nothing changed.\n")
        return 0
    if args.dry_run:
        io.out.write(plan.diff())
        return 0
    backups = await anyio.to_thread.run_sync(claude_setup.apply, plan, record)
    await anyio.to_thread.run_sync(lambda: record.unlink(missing_ok=True))
    io.out.write(f"Removed the Anamnesis hooks and MCP server from Claude Code ({paths.settings}).\n")
    for backup in backups:
        io.out.write(f"  backup: {backup}\n")
    io.out.write(f"Your notes are untouched in {config.home}.\n")
    return 0


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


async def upkeep(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.upkeep import run_upkeep

    record = await run_upkeep(config, force=True)
    if record is None:
        raise BusyError("upkeep is running in another process; try again when it has finished")
    if args.json:
        print_json(io.out, record.as_dict())
    else:
        before, after = record.before, record.after
        io.out.write(
            f"Repository: {before.loose_objects} loose objects and {before.packs} packs before, "
            f"{after.loose_objects} and {after.packs} after ({_mib(after.pack_bytes + after.loose_bytes)}); "
            f"history index {'written' if after.commit_graph else 'missing'}; "
            f"{record.pruned_files} old state files pruned; {record.seconds:.1f} s.\n"
        )
    if record.error:
        raise AnamnesisError(f"upkeep failed: {record.error}")
    return 0


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


async def status(config: Config, args: argparse.Namespace, io: IO) -> int:
    async with open_memory(config) as memory:
        state = await memory.state()
    if args.json:
        print_json(io.out, state.as_json())
        return 0
    out = io.out
    out.write(f"home      {state.home} (machine {state.machine_id})\n")
    out.write(f"notes     {state.total} ({state.superseded} superseded)\n")
    out.write("by type   " + ", ".join(f"{k} {v}" for k, v in state.by_type.items()) + "\n")
    out.write("by scope  " + ", ".join(f"{k} {v}" for k, v in state.by_scope.items()) + "\n")
    projects = state.by_project
    shown = ", ".join(f"{k} {v}" for k, v in [*projects.items()][:8])
    out.write(f"projects  {len(projects)}: {shown}{' …' if len(projects) > 8 else ''}\n")
    git = state.git
    out.write(f"git       {git.branch} at {(git.head or 'no commits')[:10]}, {git.uncommitted} uncommitted\n")
    out.write(f"hub       {state.hub or 'none (local only)'}\n")
    if state.hub:
        sync = state.sync
        last = f"last ok {sync.last_ok}" if sync.last_ok else "never synced"
        failed = f"; the last attempt failed: {sync.last_error}" if sync.last_error else ""
        out.write(f"sync      {last}{failed}\n")
        for machine in state.fleet:
            pushed, heard = _ago(machine.pushed_at), _ago(machine.heard_at)
            out.write(f"machine   {machine.machine}: last pushed {pushed}, last heard from the hub {heard}\n")
        if sync.withheld:
            out.write(f"withheld  {len(sync.withheld)} note(s) kept off the hub (secrets): run `anamnesis doctor`\n")
    out.write(f"semantic  {semantic_line(state.semantic)}\n")
    if state.problems:
        out.write(f"problems  {state.problems} file(s) could not be read: run `anamnesis doctor`\n")
    return 0


def _ago(when: str | None) -> str:
    """`2026-11-20T10:00:00Z` as "3 min ago (2026-11-20T10:00:00Z)"; "never" for None."""
    if not when:
        return "never"
    from datetime import UTC, datetime

    try:
        seconds = (datetime.now(UTC) - datetime.fromisoformat(when.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return when
    if seconds < 120:
        age = f"{max(0, int(seconds))} s"
    elif seconds < 7200:
        age = f"{int(seconds // 60)} min"
    elif seconds < 172800:
        age = f"{int(seconds // 3600)} h"
    else:
        age = f"{int(seconds // 86400)} days"
    return f"{age} ago ({when})"


def semantic_line(semantic: dict[str, Any], embedded: int | None = None) -> str:
    """One line on semantic search: its state, how many notes have a vector, and why not."""
    counts = f"{semantic['embedded']}/{semantic['notes']} notes embedded"
    fresh = f" ({embedded} just now)" if embedded else ""
    if semantic["state"] in ("ready", "available"):
        return f"semantic search on: {counts}{fresh}"
    return f"semantic search {semantic['state']}, search is lexical only: {semantic['problem']} ({counts})"


async def doctor(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.claude_doctor import claude_checks
    from anamnesis.doctor import run_doctor
    from anamnesis.sync.doctor import check_sync

    findings = await run_doctor(config, [*claude_checks(io.environ), check_sync])
    failed = any(f.is_error for f in findings)
    if args.json:
        print_json(
            io.out,
            {
                "ok": not failed,
                "findings": [
                    {"level": f.level, "check": f.check, "message": f.message, "fix": f.fix} for f in findings
                ],
            },
        )
        return 1 if failed else 0
    marks = {"ok": "ok  ", "warning": "warn", "error": "FAIL"}
    for finding in findings:
        io.out.write(f"[{marks[finding.level]}] {finding.check}: {finding.message}\n")
        if finding.fix and finding.level != "ok":
            io.out.write(f"       fix: {finding.fix}\n")
    io.out.write("Problems found.\n" if failed else "All good.\n")
    return 1 if failed else 0


async def eval_run(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.evaluation import default_eval_path, load_eval_set, load_unrelated, unrelated_path
    from anamnesis.index import SearchIndex
    from anamnesis.store import NoteStore

    eval_path = Path(args.eval_set) if args.eval_set else default_eval_path(config.home)
    cases = await anyio.to_thread.run_sync(load_eval_set, eval_path, args.include_unreviewed)
    unrelated = await anyio.to_thread.run_sync(load_unrelated, unrelated_path(eval_path))
    if args.corpus:
        corpus = Path(args.corpus).absolute()  # noqa: ASYNC240 - no I/O, just joins the cwd
        if not await anyio.Path(corpus).is_dir():
            raise AnamnesisError(f"--corpus {corpus} is not a folder")
        with tempfile.TemporaryDirectory(prefix="anamnesis-eval-") as scratch:
            store = NoteStore(Layout(Path(scratch)), roots={"portable": corpus})
            index = await SearchIndex.open(Path(scratch) / "index.db", store)
            try:
                await index.refresh()
                reports = await _eval_reports(index, cases, unrelated, config)
            finally:
                await index.aclose()
    else:
        async with open_memory(config) as memory:
            await memory.ensure_fresh()
            await memory.embed_pending()
            reports = (
                await memory.evaluate(cases, semantic=True),
                await memory.evaluate(cases),
                await memory.evaluate_gate(cases, unrelated),
            )
    report, lexical, gate = reports
    if args.json:
        print_json(io.out, {**report.as_json(), "lexical": lexical.as_json(), "prompt_gate": gate.as_json()})
        return 0
    io.out.write(f"{report.cases} queries from {eval_path}\n")
    io.out.write("           hybrid  lexical\n")
    for k, value in report.recall.items():
        io.out.write(f"recall@{k:<2}  {value:.3f}   {lexical.recall[k]:.3f}\n")
    io.out.write(f"MRR        {report.mrr:.3f}   {lexical.mrr:.3f}\n")
    io.out.write(
        f"prompt hook: right note shown for {gate.shown_right:.1%} of {gate.prompts} prompts, "
        f"precision {gate.precision:.1%}; silent for {gate.silent:.1%} of {gate.unrelated} unrelated prompts\n"
    )
    misses = [query for query, rank in report.ranks if rank is None]
    if misses:
        io.out.write(f"not found in the top {max(report.recall)} ({len(misses)}):\n")
        for query in misses[:20]:
            io.out.write(f"  - {query}\n")
    return 0


async def _eval_reports(
    index: SearchIndex, cases: Any, unrelated: Any, config: Config, semantic: Semantic | None = None
) -> tuple[EvalReport, EvalReport, GateReport]:
    """(the search every surface runs, lexical alone, the prompt gate) on `cases`; a throwaway
    index gets its vectors here (a semantic side that is off or cannot load leaves the two equal)."""
    from anamnesis.evaluation import run_eval, run_gate
    from anamnesis.hybrid import Semantic
    from anamnesis.memory_vectors import semantic_enabled
    from anamnesis.vectorizer import embed_pending

    if semantic is None and semantic_enabled(config):
        semantic = Semantic()
        await semantic.load()
        if semantic.embedder is not None:
            await embed_pending(index, semantic.embedder)
    return (
        await run_eval(index, cases, semantic=semantic),
        await run_eval(index, cases),
        await run_gate(index, cases, unrelated),
    )


def mcp(home: Path, environ: Mapping[str, str]) -> int:
    """Serve MCP over stdio. The SDK import is heavy, so it happens only here."""
    import os

    from anamnesis.mcp_server import run_stdio

    config = load_config(home, environ)
    cwd = Path(environ.get("CLAUDE_PROJECT_DIR") or os.getcwd())
    home_dir = environ.get("HOME")
    status: int = run_stdio(config, resolve_project(cwd, Path(home_dir) if home_dir else None))
    return status
