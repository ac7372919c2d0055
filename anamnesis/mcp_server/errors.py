"""How a failure reaches the model: one table from each `AnamnesisError` to a tool error it can act on.

The MCP edge translates errors once, here. The model reads the message and decides what to do
next, so each one says what went wrong and the next step: change the call (a bad id, a bad
field), wait (a busy lock), or tell the user (no home, a damaged index, a hub problem). Anything
that is not an `AnamnesisError` is a bug: it is not caught, and the SDK logs it and reports it
without a traceback.

The table is `anamnesis.edges.TOOL_MESSAGES`, beside the other edges' tables; the nearest
class in an error's MRO picks its message. `NoHubError` is not a
failure for `memory_sync` (it answers "nothing to sync"); elsewhere it reads as a sync error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError

from anamnesis.edges import tool_message
from anamnesis.errors import AnamnesisError
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


def fix_message(exc: AnamnesisError) -> str:
    """What the model is told about `exc`, with what to do next (MCP's table in `anamnesis.edges`)."""
    return tool_message(exc, FIELD_HINTS)


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
