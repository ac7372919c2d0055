"""The six memory tools: the model's arguments checked, core called, the result presented.

Names and parameters are those of anamnesis-memory 0.1.3, plus `memory_get` and paging. The
docstrings are prompts: the model reads them in every session, so they say when to use each tool
and stay short (the whole `tools/list` is budgeted, see `server.TOOLS_LIST_BUDGET_CHARS`).
Arguments are read leniently (a blank string is "not given", a list may come as one
comma-separated string) and a wrong one is a tool error that says what to pass instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from anamnesis.errors import AnamnesisError, NoHubError
from anamnesis.mcp_server import presentation as present
from anamnesis.mcp_server.errors import bad_argument, tool_error, tool_errors
from anamnesis.mcp_server.state import ServerState, state_of
from anamnesis.memory import Memory, NoteDraft
from anamnesis.notes import GLOBAL_PROJECT, NOTE_TYPES, SCOPES, Note
from anamnesis.search import MAX_LIMIT, Hit, SearchFilters
from anamnesis.untrusted import secrets_in

ALL_PROJECTS = "*"
# A note Claude writes is read back into many future sessions: keep it a note, not a document.
MAX_WRITE_BODY_CHARS = 8_000
LIST_DEFAULT, LIST_MAX = 20, 50
SIMILAR_SHOWN = 3

# -- arguments ------------------------------------------------------------------------------


def _choice(name: str, value: str | None, choices: Sequence[str]) -> str | None:
    if value is None or not value.strip():
        return None
    cleaned = value.strip().lower()
    if cleaned not in choices:
        raise bad_argument(name, f"{name} {value!r} is not one of: {', '.join(choices)}.")
    return cleaned


def _types(value: str | None) -> tuple[str, ...]:
    chosen = _choice("type", value, NOTE_TYPES)
    return (chosen,) if chosen else ()


def _count(name: str, value: int, upper: int) -> int:
    if value < 1:
        raise bad_argument(name, f"{name} must be between 1 and {upper} (got {value}).")
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


ProjectArg = Annotated[
    str | None,
    Field(description='Project key; "global", or "*" for all. Default: this project (search adds global)'),
]
TypeArg = Annotated[str | None, Field(json_schema_extra={"enum": list(NOTE_TYPES)})]
ScopeArg = Annotated[str | None, Field(json_schema_extra={"enum": list(SCOPES)})]

# -- tools ----------------------------------------------------------------------------------


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
    state = state_of(ctx)
    projects = _search_projects(state, project)
    filters = SearchFilters(projects=projects, types=_types(type), scope=_choice("scope", scope, SCOPES))
    limit = _count("k", k, MAX_LIMIT)
    with tool_errors():
        hits = await (await state.memory()).search(query, filters, limit)
    return present.search_result(query, projects, hits)


async def memory_get(
    id: Annotated[str, Field(description="A note id")],
    ctx: Context[ServerState],
) -> CallToolResult:
    """Read one note in full by its id: an id that memory_search, memory_list or the
    session-start memory context listed."""
    memory = await state_of(ctx).memory()
    with tool_errors():
        note = await memory.get(id)
        newer = (await memory.superseded_by(note.id))[: present.IDS_SHOWN]
    path = memory.note_file(note)
    return present.get_result(note, path, newer)


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
    state = state_of(ctx)
    projects = _list_projects(state, project)
    filters = SearchFilters(projects=projects, types=_types(type), scope=_choice("scope", scope, SCOPES))
    size = _count("limit", limit, LIST_MAX)
    with tool_errors():
        page = await (await state.memory()).list(filters, size, cursor or None)
    return present.list_result(projects, page.notes, page.next_cursor)


async def memory_status(ctx: Context[ServerState]) -> CallToolResult:
    """How much is remembered (by type, scope, project), this session's project, git and hub
    state. For questions about the memory itself."""
    state = state_of(ctx)
    with tool_errors():
        status = await (await state.memory()).status()
    return present.status_result(state.project, status)


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
    state = state_of(ctx)
    note_type = _choice("type", type, NOTE_TYPES)
    if note_type is None:
        raise bad_argument("type", "type is required.")
    note_scope = _choice("scope", scope, SCOPES) or "portable"
    target = (project or "").strip() or state.project
    if target == ALL_PROJECTS:
        raise bad_argument("project", 'project "*" means every project and cannot be written to.')
    if len(body) > MAX_WRITE_BODY_CHARS:
        raise ToolError(
            f"body is {len(body)} characters; at most {MAX_WRITE_BODY_CHARS}. Keep the lasting point "
            "and drop the detail, or split it into several notes, one idea each."
        )
    if not body.strip():
        raise ToolError("body is empty. Write the note itself: what to remember and why it matters.")
    memory = await state.memory()
    draft = NoteDraft(
        type=note_type,
        title=title.strip(),
        body=body,
        project=target,
        tags=_texts(tags),
        scope=note_scope,
        supersedes=_texts(supersedes),
    )
    # A secret in a note would be read back into every session and block the next sync.
    secrets = secrets_in(draft)
    with tool_errors():
        note = await memory.write(draft, redact=True)
        similar = await _similar(memory, note)
    path = memory.note_file(note)
    return present.write_result(note, path, await _where_it_goes(state, note), secrets, similar)


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


async def _similar(memory: Memory, note: Note) -> list[Hit]:
    """Notes whose text matches all the words of the new note's title: likely overlaps."""
    filters = SearchFilters(projects=tuple(dict.fromkeys((note.project, GLOBAL_PROJECT))))
    hits = await memory.search(note.title, filters, SIMILAR_SHOWN + 1)
    return [h for h in hits if h.id != note.id and h.match == "strict"][:SIMILAR_SHOWN]


async def memory_sync(ctx: Context[ServerState]) -> CallToolResult:
    """Sync notes with the user's hub now (git over SSH). Sync also runs on its own; use this
    when the user asks, or to get notes just written on another machine."""
    state = state_of(ctx)
    if state.sync is None:
        return present.no_hub_result()
    memory = await state.memory()
    try:
        summary = dict(await state.sync(memory))
    except NoHubError:
        return present.no_hub_result()
    except AnamnesisError as exc:
        raise tool_error(exc) from exc
    return present.sync_result(summary)
