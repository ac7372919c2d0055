"""How a failure reaches the model: one table from each `AnamnesisError` to a tool error it can act on.

The MCP edge translates errors once, here. The model reads the message and decides what to do
next, so each one says what went wrong and the next step: change the call (a bad id, a bad
field), wait (a busy lock), or tell the user (no home, a damaged index, a hub problem). Anything
that is not an `AnamnesisError` is a bug: it is not caught, and the SDK logs it and reports it
without a traceback.

`TOOL_ERRORS` is the table; the nearest class in an error's MRO picks its message, so a new
subclass inherits its parent's advice until it gets a row of its own. `NoHubError` is not a
failure for `memory_sync` (it answers "nothing to sync"); elsewhere it reads as a sync error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError

from anamnesis.errors import (
    AnamnesisError,
    BusyError,
    ConfigError,
    GitError,
    HostKeyError,
    IndexStateError,
    NoteNotFoundError,
    NoteValidationError,
    PeerUnreachableError,
    SyncError,
)
from anamnesis.notes import MAX_TITLE_CHARS

# What to pass instead, per argument of the tools (and per field a core validation names).
FIELD_HINTS: Mapping[str, str] = {
    "type": "Use procedural (how we do things), semantic (facts, decisions) or episodic (what a session did).",
    "scope": "Use portable (synced, the default) or machine-local (this machine only).",
    "title": f"Give a short one-line title (at most {MAX_TITLE_CHARS} characters) naming the idea.",
    "body": "Keep one idea per note; split a long text into several notes.",
    "project": 'Leave project out for the current project, or pass "global" or a project key.',
    "tags": 'Pass a few short tags, e.g. ["testing", "ci"].',
    "supersedes": "Pass ids exactly as memory_search or memory_list gave them.",
}

# Message templates: `{exc}` is the error's own text; `{exc.field}`, `{exc.message}` and `{hint}`
# (the field's hint) are there for validation errors.
TOOL_ERRORS: Mapping[type[AnamnesisError], str] = {
    AnamnesisError: "{exc}",  # QueryError and the rest already say what to change
    NoteNotFoundError: (
        "{exc}. Use an id exactly as memory_search, memory_list or the session context gave it; "
        "search by words to find the note."
    ),
    NoteValidationError: "{exc.field}: {exc.message}. {hint}",
    ConfigError: "Anamnesis is not set up: {exc}. Tell the user; this cannot be fixed by another call.",
    BusyError: "The memory is busy: {exc}. Try again in a moment.",
    IndexStateError: "The search index is damaged: {exc}. The user can run `anamnesis reindex --full`.",
    PeerUnreachableError: "The hub could not be reached: {exc}. Notes are safe on this machine; sync again later.",
    HostKeyError: "{exc}. The user must check the hub's host key (`anamnesis peer add` shows it).",
    GitError: "{exc}. Note files on disk are kept; the user can run `anamnesis doctor`.",
    SyncError: "Sync failed: {exc}. Notes are safe on this machine; the user can run `anamnesis doctor`.",
}


def fix_message(exc: AnamnesisError) -> str:
    """What the model is told about `exc`, with what to do next."""
    template = next(TOOL_ERRORS[cls] for cls in type(exc).__mro__ if cls in TOOL_ERRORS)
    hint = FIELD_HINTS.get(exc.field, "") if isinstance(exc, NoteValidationError) else ""
    return template.format(exc=exc, hint=hint).strip()


def tool_error(exc: AnamnesisError) -> ToolError:
    """`exc` as the tool error the model sees."""
    return ToolError(fix_message(exc))


def bad_argument(name: str, problem: str) -> ToolError:
    """A tool error for an argument the model can correct: the problem, then what to pass."""
    return ToolError(f"{problem} {FIELD_HINTS.get(name, '')}".strip())


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn the errors core raises on purpose into tool errors the model can act on."""
    try:
        yield
    except AnamnesisError as exc:
        raise tool_error(exc) from exc
