"""The MCP server (`anamnesis mcp`): the memory tools Claude Code calls, served over stdio.

Six tools with the names and parameters of anamnesis-memory 0.1.3, plus `memory_get` and paging:
`memory_search`, `memory_get`, `memory_list`, `memory_status` (read-only), `memory_write`,
`memory_sync`. Their descriptions are prompts: the model reads them in every session, so they
say when to use each tool and stay short (the whole `tools/list` is budgeted, see
`TOOLS_LIST_BUDGET_CHARS`). For the same reason the advertised input schemas are compacted and
no output schema is published.

Each result carries both forms, and both are written for the model: Claude Code hands the model
the `structured_content` as JSON when there is one (seen with Claude Code 2.1.197), other
clients show the text `content`. So the structured form holds a `hint` whenever the model has
something to do next (a retired note, a cut body, another page), and the text says the same in
compact lines.

Every response is bounded (`RESPONSE_BUDGET_CHARS`): search gives snippets not bodies, lists
page, `memory_get` cuts a long body and names the file. `AnamnesisError`s become `ToolError`s
whose message tells the model how to fix its call; anything else is a bug, which the SDK logs
to stderr and reports without a traceback.

Only `anamnesis mcp` imports this module: the SDK costs seconds to import, which hooks and the
CLI must not pay.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from anamnesis import __version__
from anamnesis.capture.redact import find_secrets, redact
from anamnesis.config import Config, home_from_env, load_config
from anamnesis.errors import (
    AnamnesisError,
    BusyError,
    ConfigError,
    GitError,
    HostKeyError,
    IndexStateError,
    NoHubError,
    NoteNotFoundError,
    NoteValidationError,
    PeerUnreachableError,
    SyncError,
)
from anamnesis.index import encode_cursor
from anamnesis.memory import Memory, NoteDraft, open_memory
from anamnesis.notes import GLOBAL_PROJECT, MAX_TITLE_CHARS, NOTE_TYPES, SCOPES, Note
from anamnesis.project import resolve_project
from anamnesis.queries import NoteSummary
from anamnesis.search import MAX_LIMIT, Hit, SearchFilters

logger = logging.getLogger(__name__)

SERVER_NAME = "anamnesis"
ALL_PROJECTS = "*"
# A note Claude writes is read back into many future sessions: keep it a note, not a document.
MAX_WRITE_BODY_CHARS = 8_000
# Hand-written or imported notes may be longer; `memory_get` shows this much and names the file.
GET_BODY_CHARS = 10_000
# Upper bound on one result (text + structured content, as JSON): ~6k tokens at chars/4.
RESPONSE_BUDGET_CHARS = 24_000
# The whole tools/list, as JSON: what every session pays before it asks anything (~1.2k tokens).
TOOLS_LIST_BUDGET_CHARS = 4_800
LIST_DEFAULT, LIST_MAX = 20, 50
SNIPPET_CHARS, FIELD_CHARS, TAGS_SHOWN = 320, 160, 8
TOP_PROJECTS = 15
SIMILAR_SHOWN = 3
# The embedding model loads after the server answers: on the first tool call, or this long after
# start, whichever comes first (0.3 s of CPU that must not delay `tools/list`).
MODEL_LOAD_DELAY = 2.0
HIGHLIGHT = "**"
NO_HUB = (
    "No hub is configured, so there is nothing to sync: notes are saved on this machine only. "
    "To sync across machines, the user runs `anamnesis peer add NAME ssh://user@host/path` "
    "in a terminal (any machine with git and sshd can be the hub)."
)

SyncFn = Callable[[Memory], Awaitable[Mapping[str, Any]]]
"""Runs one sync cycle on the open memory and returns a short summary (pushed, pulled, …)."""

INSTRUCTIONS = (
    "Anamnesis is the user's long-term memory across sessions and machines. Search it before "
    "relying on assumptions about this project or the user's preferences; save durable lessons "
    "with memory_write; correct a wrong note by writing its replacement with supersedes."
)


# -- state ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ServerState:
    """What the tools share for one server run: the open memory and the session's project.

    The memory is opened by the lifespan; if the home is not usable yet (no `anamnesis init`),
    the server still starts and each call retries, so the model gets a message it can relay
    instead of a server that failed to connect.
    """

    config: Config
    project: str
    sync: SyncFn | None
    stack: AsyncExitStack
    opened: Memory | None = None
    problem: str | None = None
    _opening: anyio.Lock = field(default_factory=anyio.Lock)
    called: anyio.Event = field(default_factory=anyio.Event)

    async def open(self) -> None:
        try:
            self.opened = await self.stack.enter_async_context(open_memory(self.config))
            self.problem = None
        except AnamnesisError as exc:
            self.problem = _fix_message(exc)
            logger.warning("memory not available: %s", exc)

    async def memory(self) -> Memory:
        self.called.set()
        if self.opened is None:
            async with self._opening:
                if self.opened is None:
                    await self.open()
        if self.opened is None:
            raise ToolError(self.problem or "the memory is not available")
        return self.opened


def _state(ctx: Context[ServerState]) -> ServerState:
    return ctx.request_context.lifespan_context


# -- errors ---------------------------------------------------------------------------------

_FIELD_HINTS = {
    "type": "Use procedural (how we do things), semantic (facts, decisions) or episodic (what a session did).",
    "scope": "Use portable (synced, the default) or machine-local (this machine only).",
    "title": f"Give a short one-line title (at most {MAX_TITLE_CHARS} characters) naming the idea.",
    "body": "Keep one idea per note; split a long text into several notes.",
    "project": 'Leave project out for the current project, or pass "global" or a project key.',
    "tags": 'Pass a few short tags, e.g. ["testing", "ci"].',
    "supersedes": "Pass ids exactly as memory_search or memory_list gave them.",
}


def _fix_message(exc: AnamnesisError) -> str:
    """What the model is told about a failure, with what to do next."""
    if isinstance(exc, NoteNotFoundError):
        return (
            f"{exc}. Use an id exactly as memory_search, memory_list or the session context gave it; "
            "search by words to find the note."
        )
    if isinstance(exc, NoteValidationError):
        return f"{exc.field}: {exc.message}. {_FIELD_HINTS.get(exc.field, '')}".strip()
    if isinstance(exc, ConfigError):
        return f"Anamnesis is not set up: {exc}. Tell the user; this cannot be fixed by another call."
    if isinstance(exc, BusyError):
        return f"The memory is busy: {exc}. Try again in a moment."
    if isinstance(exc, IndexStateError):
        return f"The search index is damaged: {exc}. The user can run `anamnesis reindex --full`."
    if isinstance(exc, PeerUnreachableError):
        return f"The hub could not be reached: {exc}. Notes are safe on this machine; sync again later."
    if isinstance(exc, HostKeyError):
        return f"{exc}. The user must check the hub's host key (`anamnesis peer add` shows it)."
    if isinstance(exc, GitError):
        return f"{exc}. Note files on disk are kept; the user can run `anamnesis doctor`."
    if isinstance(exc, SyncError):
        return f"Sync failed: {exc}. Notes are safe on this machine; the user can run `anamnesis doctor`."
    return str(exc)  # QueryError and the rest already say what to change


@contextmanager
def _tool_errors() -> Iterator[None]:
    """Turn the errors core raises on purpose into tool errors the model can act on."""
    try:
        yield
    except AnamnesisError as exc:
        raise ToolError(_fix_message(exc)) from exc


# -- arguments ------------------------------------------------------------------------------


def _choice(name: str, value: str | None, choices: Sequence[str]) -> str | None:
    if value is None or not value.strip():
        return None
    cleaned = value.strip().lower()
    if cleaned not in choices:
        raise ToolError(f"{name} {value!r} is not one of: {', '.join(choices)}. {_FIELD_HINTS[name]}")
    return cleaned


def _types(value: str | None) -> tuple[str, ...]:
    chosen = _choice("type", value, NOTE_TYPES)
    return (chosen,) if chosen else ()


def _count(name: str, value: int, upper: int) -> int:
    if value < 1:
        raise ToolError(f"{name} must be between 1 and {upper} (got {value}).")
    return min(value, upper)


def _texts(value: Sequence[str] | str | None) -> list[str]:
    """A list argument that a model may also send as one comma-separated string."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]


def _search_projects(state: ServerState, project: str | None) -> tuple[str, ...]:
    """Default: this project and global notes; `*`: every project; else that project only."""
    wanted = (project or "").strip()
    if wanted == ALL_PROJECTS:
        return ()
    if wanted:
        return (wanted,)
    return tuple(dict.fromkeys((state.project, GLOBAL_PROJECT)))


def _list_projects(state: ServerState, project: str | None) -> tuple[str, ...]:
    wanted = (project or "").strip()
    if wanted == ALL_PROJECTS:
        return ()
    return (wanted or state.project,)


def _where(projects: tuple[str, ...]) -> str:
    return " + ".join(projects) if projects else "all projects"


# -- results --------------------------------------------------------------------------------


def _cut(text: str, limit: int = FIELD_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _notes(count: int) -> str:
    return "1 note" if count == 1 else f"{count} notes"


def _tags(tags: Sequence[str]) -> list[str]:
    return [_cut(tag, 40) for tag in tags[:TAGS_SHOWN]]


def _result(text: str, structured: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _size(text: str, structured: Mapping[str, Any]) -> int:
    return len(text) + len(json.dumps(structured, ensure_ascii=False))


def _fit(items: list[dict[str, Any]], lines: list[str], overhead: int) -> int:
    """How many of `items` (each rendered as `lines[i]`) fit in the response budget."""
    used = overhead
    for n, (item, line) in enumerate(zip(items, lines, strict=True)):
        used += _size(line, item) + 8
        if used > RESPONSE_BUDGET_CHARS:
            return n
    return len(items)


def _hit(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "type": hit.type,
        "title": _cut(hit.title, MAX_TITLE_CHARS),
        "project": _cut(hit.project),
        "scope": hit.scope,
        "tags": _tags(hit.tags),
        "updated_at": hit.updated_at,
        "score": hit.score,
        "snippet": _cut(hit.snippet_with(HIGHLIGHT, HIGHLIGHT), SNIPPET_CHARS),
    }


def _summary(note: NoteSummary) -> dict[str, Any]:
    return {
        "id": note.id,
        "type": note.type,
        "title": _cut(note.title, MAX_TITLE_CHARS),
        "project": _cut(note.project),
        "scope": note.scope,
        "tags": _tags(note.tags),
        "updated_at": note.updated_at,
    }


def _line(item: Mapping[str, Any]) -> str:
    tags = f" [{', '.join(item['tags'])}]" if item["tags"] else ""
    return f"- {item['id']} · {item['type']} · {item['project']} · {item['updated_at'][:10]} · {item['title']}{tags}"


# -- tools ----------------------------------------------------------------------------------

ProjectArg = Annotated[
    str | None,
    Field(description='Project key; "global", or "*" for all. Default: this project (search adds global)'),
]
TypeArg = Annotated[str | None, Field(json_schema_extra={"enum": list(NOTE_TYPES)})]
ScopeArg = Annotated[str | None, Field(json_schema_extra={"enum": list(SCOPES)})]


async def memory_search(
    query: Annotated[str, Field(description="Words to look for")],
    ctx: Context[ServerState],
    project: ProjectArg = None,
    type: TypeArg = None,
    scope: ScopeArg = None,
    k: Annotated[int, Field(description=f"Max hits (1-{MAX_LIMIT})")] = 8,
) -> CallToolResult:
    """Search long-term memory: notes from past sessions on any of the user's machines. Use it
    before work that may depend on earlier decisions, conventions, preferences or fixes, and when
    the user refers to the past. Gives ids, titles, snippets; read a note with memory_get."""
    state = _state(ctx)
    projects = _search_projects(state, project)
    filters = SearchFilters(
        projects=projects,
        types=_types(type),
        scope=_choice("scope", scope, SCOPES),
    )
    limit = _count("k", k, MAX_LIMIT)
    with _tool_errors():
        hits = await (await state.memory()).search(query, filters, limit)
    items = [_hit(hit) for hit in hits]
    lines = [f"{_line(item)} (score {item['score']:.3g})\n  {item['snippet']}" for item in items]
    shown = _fit(items, lines, overhead=400 + 2 * len(query))
    where = _where(projects)
    structured: dict[str, Any] = {"query": query, "projects": list(projects), "hits": items[:shown]}
    if not items:
        hint = "Try other or fewer words" + (', or project="*" to search every project.' if projects else ".")
        text = f"No notes match {query!r} in {where}. {hint}"
        structured["hint"] = hint
    else:
        text = f"{_notes(shown)} for {query!r} in {where}, best first:\n" + "\n".join(lines[:shown])
        if shown < len(items):
            hint = f"{len(items) - shown} more hits left out to keep this short; narrow the search."
            text += f"\n({hint})"
            structured |= {"omitted": len(items) - shown, "hint": hint}
        text += "\nRead one in full with memory_get(id)."
    return _result(text, structured)


async def memory_get(
    id: Annotated[str, Field(description="A note id")],
    ctx: Context[ServerState],
) -> CallToolResult:
    """Read one note in full by its id: an id that memory_search, memory_list or the
    session-start memory context listed."""
    state = _state(ctx)
    memory = await state.memory()
    with _tool_errors():
        note = await memory.get(id)
        newer = (await memory.superseded_by(note.id))[:10]
    path = memory.store.path_for(note.id, note.type, note.scope)
    body = note.body if len(note.body) <= GET_BODY_CHARS else note.body[:GET_BODY_CHARS]
    truncated = len(body) < len(note.body)
    structured = _note(note) | {
        "superseded_by": newer,
        "body": body,
        "body_chars": len(note.body),
        "truncated": truncated,
        "path": str(path),
    }
    hints = []
    if newer:
        hints.append(f"Retired: superseded by {', '.join(newer)}; read that note instead.")
    if truncated:
        hints.append(f"Body cut at {GET_BODY_CHARS} of {len(note.body)} characters; the whole note is the file {path}.")
    if hints:
        structured["hint"] = " ".join(hints)
    head = [
        f"# {note.title}",
        f"id {note.id} · {note.type} · {note.project} · {note.scope} · updated {note.updated_at}",
    ]
    if note.tags:
        head.append("tags: " + ", ".join(structured["tags"]))
    if note.supersedes:
        head.append(f"replaces: {', '.join(note.supersedes[:10])}")
    head.extend(hints)
    text = "\n".join(head) + "\n\n" + body
    return _result(text, structured)


def _note(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "type": note.type,
        "title": note.title,
        "project": _cut(note.project),
        "scope": note.scope,
        "tags": _tags(note.tags),
        "machine_id": note.machine_id,
        "created_at": note.created_at,
        "updated_at": note.updated_at,
        "supersedes": list(note.supersedes[:10]),
    }


async def memory_list(
    ctx: Context[ServerState],
    project: Annotated[str | None, Field(description='Project key, "global" or "*". Default: this project')] = None,
    type: TypeArg = None,
    scope: ScopeArg = None,
    limit: Annotated[int, Field(description=f"Page size (1-{LIST_MAX})")] = LIST_DEFAULT,
    cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
) -> CallToolResult:
    """List notes newest first, without bodies: to review what is remembered. Pages: pass
    next_cursor back as cursor."""
    state = _state(ctx)
    projects = _list_projects(state, project)
    filters = SearchFilters(
        projects=projects,
        types=_types(type),
        scope=_choice("scope", scope, SCOPES),
    )
    size = _count("limit", limit, LIST_MAX)
    with _tool_errors():
        page = await (await state.memory()).list(filters, size, cursor or None)
    items = [_summary(note) for note in page.notes]
    lines = [_line(item) for item in items]
    shown = _fit(items, lines, overhead=600)
    next_cursor = page.next_cursor
    if shown < len(items):
        # The budget cut the page: continue right after the last note shown.
        last = page.notes[shown - 1]
        next_cursor = encode_cursor(last.updated_at, last.id)
    where = _where(projects)
    if not items:
        text = f"No notes in {where}" + (' (project="*" lists every project).' if projects else ".")
    else:
        text = f"{_notes(shown)} in {where}, newest first:\n" + "\n".join(lines[:shown])
    structured: dict[str, Any] = {"projects": list(projects), "notes": items[:shown], "next_cursor": next_cursor}
    if next_cursor:
        structured["hint"] = "More notes: call memory_list again with cursor=next_cursor and the same filters."
        text += f'\nMore: memory_list(cursor="{next_cursor}") with the same filters.'
    return _result(text, structured)


async def memory_status(ctx: Context[ServerState]) -> CallToolResult:
    """How much is remembered (by type, scope, project), this session's project, git and hub
    state. For questions about the memory itself."""
    state = _state(ctx)
    with _tool_errors():
        status = await (await state.memory()).status()
    by_project = dict(list(status.get("by_project", {}).items())[:TOP_PROJECTS])
    others = len(status.get("by_project", {})) - len(by_project)
    git = status.get("git", {})
    structured = {
        "project": state.project,
        "home": status["home"],
        "machine_id": status["machine_id"],
        "total": status["total"],
        "superseded": status["superseded"],
        "by_type": status["by_type"],
        "by_scope": status["by_scope"],
        "by_project": by_project,
        "other_projects": others,
        "problems": status["problems"],
        "git": git,
        "hub": status["hub"],
        "semantic": status["semantic"],
    }
    semantic = status["semantic"]
    lines = [
        f"project: {state.project} · machine: {status['machine_id']} · home: {status['home']}",
        f"notes: {status['total']} ({status['superseded']} retired) · "
        + " · ".join(f"{k} {v}" for k, v in {**status["by_type"], **status["by_scope"]}.items()),
        "projects: "
        + ", ".join(f"{_cut(k, 80)} {v}" for k, v in by_project.items())
        + (f", and {others} more" if others > 0 else ""),
        f"git: {str(git.get('head') or 'no commits')[:12]} on {git.get('branch')}, "
        f"{git.get('uncommitted', 0)} uncommitted",
        f"hub: {status['hub']}" if status["hub"] else "hub: none (notes stay on this machine)",
        f"semantic search: {semantic['state']}, {semantic['embedded']}/{semantic['notes']} notes embedded"
        + (f" (search is lexical only: {semantic['problem']})" if semantic["problem"] else ""),
    ]
    if status["problems"]:
        lines.append(f"{status['problems']} note files could not be read: the user can run `anamnesis doctor`.")
    return _result("\n".join(lines), structured)


async def memory_write(
    type: Annotated[str, Field(json_schema_extra={"enum": list(NOTE_TYPES)})],
    title: Annotated[str, Field(description="One line naming the idea")],
    body: Annotated[str, Field(description=f"Markdown, at most {MAX_WRITE_BODY_CHARS} characters")],
    ctx: Context[ServerState],
    project: Annotated[str | None, Field(description='Default: this project; "global" if true everywhere')] = None,
    tags: list[str] | str | None = None,
    scope: Annotated[str, Field(json_schema_extra={"enum": list(SCOPES)})] = "portable",
    supersedes: Annotated[
        list[str] | str | None, Field(description="Ids of notes this one corrects; they are retired")
    ] = None,
) -> CallToolResult:
    """Save a durable note for future sessions: when the user states a preference or you learn a
    convention (procedural), a fact or decision (semantic), or finish notable work (episodic).
    Good notes are specific, self-contained, one idea each, still true next month; never secrets
    or passing details. Search first: to correct or update a note, write the new one with
    supersedes=[old id], which retires the old one."""
    state = _state(ctx)
    note_type = _choice("type", type, NOTE_TYPES)
    if note_type is None:
        raise ToolError(f"type is required. {_FIELD_HINTS['type']}")
    note_scope = _choice("scope", scope, SCOPES) or "portable"
    target = (project or "").strip() or state.project
    if target == ALL_PROJECTS:
        raise ToolError(f'project "*" means every project and cannot be written to. {_FIELD_HINTS["project"]}')
    if len(body) > MAX_WRITE_BODY_CHARS:
        raise ToolError(
            f"body is {len(body)} characters; at most {MAX_WRITE_BODY_CHARS}. Keep the lasting point "
            "and drop the detail, or split it into several notes, one idea each."
        )
    if not body.strip():
        raise ToolError("body is empty. Write the note itself: what to remember and why it matters.")
    tag_list = _texts(tags)
    # A secret in a note would be read back into every session and block the next sync.
    secrets = find_secrets("\n".join([title, body, target, *tag_list]))
    if secrets:
        title, body, tag_list = redact(title), redact(body), [redact(tag) for tag in tag_list]
        target = redact(target)
    memory = await state.memory()
    draft = NoteDraft(
        type=note_type,
        title=title.strip(),
        body=body,
        project=target,
        tags=tag_list,
        scope=note_scope,
        supersedes=_texts(supersedes),
    )
    with _tool_errors():
        note = await memory.write(draft)
        similar = await _similar(memory, note)
    path = memory.store.path_for(note.id, note.type, note.scope)
    where = await _where_it_goes(state, note)
    text = f"Saved {note.type} note {note.id} {note.title!r} in {note.project} ({note.scope}: {where})."
    if note.supersedes:
        text += f" Retired: {', '.join(note.supersedes)}."
    structured = _note(note) | {"path": str(path), "similar": similar}
    hints = []
    if secrets:
        hints.append(f"Secrets were replaced by [REDACTED:…] ({', '.join(secrets)}); never store secrets.")
    if similar:
        hints.append("Similar notes exist; if one is now wrong or duplicated, write again with supersedes=[its id].")
    if hints:
        structured["hint"] = " ".join(hints)
        text += "\n" + "\n".join(hints)
    if similar:
        text += "\n" + "\n".join(_line(item) for item in similar)
    return _result(text, structured)


_PUSHED = {
    "service": "the running service sends it to your hub within seconds",
    "started": "being sent to your hub within seconds",
    "pending": "being sent to your hub within seconds",
}


async def _where_it_goes(state: ServerState, note: Note) -> str:
    """Where the note is now and where it is going, as it is: it starts the push it promises."""
    if note.scope != "portable":
        return "this machine only"
    if not state.config.has_hub:
        return "kept in git; no hub configured yet"
    if state.sync is None:  # a server built without the sync engine
        return "committed here; `anamnesis sync` sends it to your hub"
    from anamnesis.autosync import push_soon

    how = await anyio.to_thread.run_sync(push_soon, state.config, dict(os.environ))
    return _PUSHED.get(how, "committed here; the next sync sends it to your hub")


async def _similar(memory: Memory, note: Note) -> list[dict[str, Any]]:
    """Notes whose text matches all the words of the new note's title: likely overlaps."""
    filters = SearchFilters(projects=tuple(dict.fromkeys((note.project, GLOBAL_PROJECT))))
    hits = await memory.search(note.title, filters, SIMILAR_SHOWN + 1)
    return [_hit(h) for h in hits if h.id != note.id and h.match == "strict"][:SIMILAR_SHOWN]


async def memory_sync(ctx: Context[ServerState]) -> CallToolResult:
    """Sync notes with the user's hub now (git over SSH). Sync also runs on its own; use this
    when the user asks, or to get notes just written on another machine."""
    state = _state(ctx)
    no_hub = _result(NO_HUB, {"synced": False, "hub": None, "message": NO_HUB})
    if state.sync is None:
        return no_hub
    memory = await state.memory()
    try:
        summary = dict(await state.sync(memory))
    except NoHubError:
        return no_hub
    except AnamnesisError as exc:
        raise ToolError(_fix_message(exc)) from exc
    hub = summary.get("hub")
    shown = {str(k): v for k, v in list(summary.items())[:20]}
    rendered = json.dumps(shown, ensure_ascii=False, default=str)
    if len(rendered) > RESPONSE_BUDGET_CHARS // 2:
        shown = {k: _cut(str(v), 300) for k, v in shown.items()}
    text = f"Synced with {hub}: " + "; ".join(f"{k} {_cut(str(v), 300)}" for k, v in shown.items())
    return _result(text, {"synced": True, "hub": hub, "summary": shown})


# -- the server -----------------------------------------------------------------------------

_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_TOOLS: tuple[tuple[Callable[..., Awaitable[CallToolResult]], ToolAnnotations], ...] = (
    (memory_search, _READ_ONLY),
    (memory_get, _READ_ONLY),
    (memory_list, _READ_ONLY),
    (memory_status, _READ_ONLY),
    (memory_write, ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)),
    (memory_sync, ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)),
)


def compact_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An input schema without what costs tokens and tells the model nothing.

    pydantic adds a title to every property and spells an optional argument as
    `anyOf [X, null]` with `default: null`; the model only needs X. The arguments are still
    validated against the full signature, so a lenient form (null, a string for a list) works.
    """
    properties: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        alternatives = [alt for alt in prop.pop("anyOf", []) if alt.get("type") != "null"]
        if alternatives:
            prop = {**alternatives[0], **prop}
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        properties[name] = prop
    compact: dict[str, Any] = {"type": "object", "properties": properties}
    if schema.get("required"):
        compact["required"] = list(schema["required"])
    return compact


def _tool(fn: Callable[..., Awaitable[CallToolResult]], annotations: ToolAnnotations) -> Tool:
    tool = Tool.from_function(fn, description=" ".join((fn.__doc__ or "").split()), annotations=annotations)
    tool.parameters = compact_schema(tool.parameters)
    return tool


def build_server(config: Config, project: str, *, sync: SyncFn | None = None) -> MCPServer[ServerState]:
    """The memory tools for one session in `project`; the memory opens when the server runs.

    `sync`, when given and the config names a hub, is what `memory_sync` runs.
    """

    @asynccontextmanager
    async def lifespan(_server: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        async with AsyncExitStack() as stack, anyio.create_task_group() as background:
            state = ServerState(config=config, project=project, sync=sync, stack=stack)
            await state.open()
            background.start_soon(_recall_in_background, state)
            try:
                yield state
            finally:
                background.cancel_scope.cancel()

    return MCPServer(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        version=__version__,
        tools=[_tool(fn, annotations) for fn, annotations in _TOOLS],
        lifespan=lifespan,
    )


async def _recall_in_background(state: ServerState) -> None:
    """Once the server has answered: use the model the service lends (one copy per machine; the
    service also embeds) for as long as it answers, or else load one here and keep this
    session's writes (and anything else without a vector) embedded. Search meanwhile is
    lexical, never waiting."""
    with anyio.move_on_after(MODEL_LOAD_DELAY):
        await state.called.wait()
    memory = state.opened
    if memory is None or memory.semantic is None:
        return
    from anamnesis.model_lending import share_model

    await share_model(memory)  # borrow the home's one model, or load it here and lend it


async def _sync(memory: Memory) -> Mapping[str, Any]:
    """The sync `anamnesis mcp` serves: imported on the first call, so start-up stays lean."""
    from anamnesis.sync import sync_memory

    return await sync_memory(memory)


def run_stdio(config: Config, project: str, *, sync: SyncFn | None = _sync) -> int:
    """Serve the tools on stdin/stdout until the client closes them; the exit code.

    asyncio, because the index (aiosqlite) only runs there.
    """
    server = build_server(config, project, sync=sync)
    logger.debug("serving project %s from %s", project, config.home)
    anyio.run(server.run_stdio_async, backend="asyncio")
    return 0


def _main() -> int:
    """`python -m anamnesis.mcp_server`: what `anamnesis mcp` does, without the CLI around it."""
    try:
        config = load_config(home_from_env(os.environ), os.environ)
    except ConfigError as exc:
        logger.error("anamnesis mcp: %s", exc)
        return 2
    cwd = Path(os.environ.get("CLAUDE_PROJECT_DIR") or os.getcwd())
    # Stop at the user's home, as the CLI and the hooks do, so all three agree on the project.
    user_home = os.environ.get("HOME")
    return run_stdio(config, resolve_project(cwd, Path(user_home) if user_home else None))


if __name__ == "__main__":
    sys.exit(_main())
