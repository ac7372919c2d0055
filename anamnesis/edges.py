"""How each edge shows an `AnamnesisError`: one table per edge, looked up most specific first.

Core raises errors whose messages are written for people; each adapter translates them once,
at its edge, through its table here:

| edge      | what an `AnamnesisError` becomes                                          |
| --------- | ------------------------------------------------------------------------- |
| CLI       | `anamnesis: error: <message>` on stderr and `EXIT_CODES[…]`                |
| MCP       | a tool error (`isError`): `TOOL_MESSAGES[…]`, the message and what to do   |
| dashboard | the error page (JSON when asked) with status `HTTP_STATUS[…]`              |
| hooks     | exit 0 and one line in `state/hooks.log`: `HOOK_LOG[…]`                    |

Every table names every class of the tree (a test walks `AnamnesisError.__subclasses__()`
and fails on a class missing from any of them), and `lookup` walks the error's MRO, so an
error still finds its nearest ancestor's row. Anything that is not an `AnamnesisError` is a
bug: the CLI and the dashboard keep its traceback, MCP reports it without one, and a hook
logs it with the place it was raised, never into Claude Code.

Only the errors are imported, so the hooks' hot path can use this module for free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from anamnesis.errors import (
    AnamnesisError,
    AuthRefusedError,
    BusyError,
    ConfigError,
    CurationRefusedError,
    DedupError,
    EvalSetError,
    GitError,
    HomeNotInitializedError,
    HostKeyError,
    HubRepoMissingError,
    ImportSourceError,
    IndexStateError,
    ModelError,
    ModelUnavailableError,
    NoHubError,
    NoteChangedError,
    NoteError,
    NoteFormatError,
    NoteNotFoundError,
    NoteValidationError,
    PeerUnreachableError,
    ProposalDecidedError,
    ProposalError,
    ProposalNotFoundError,
    QueryError,
    ReflectionError,
    ReflectionNotConfiguredError,
    SyncError,
    UnsafePathError,
)

T = TypeVar("T")
Table = Mapping[type[AnamnesisError], T]


def lookup(table: Table[T], exc: AnamnesisError) -> T:
    """The row of the most specific class of `exc` that `table` names."""
    for cls in type(exc).__mro__:
        if issubclass(cls, AnamnesisError) and cls in table:
            return table[cls]
    raise KeyError(type(exc).__name__)  # every table names AnamnesisError itself


# -- CLI ----------------------------------------------------------------------------------------

EXIT_OK = 0
EXIT_FAILED = 1  # an AnamnesisError, or a check (doctor, sync) that found problems
EXIT_USAGE = 2  # the command line itself is wrong (argparse)
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_STATUS_HELP = f"""\
exit status:
  {EXIT_OK:<5}done
  {EXIT_FAILED:<5}failed: one line on stderr says why (with --json, stdout has it as JSON too);
       or a check (doctor, sync) found problems
  {EXIT_USAGE:<5}wrong usage: the command line itself (the message shows the usage)
  {EXIT_INTERRUPTED:<5}interrupted (Ctrl-C)"""

# One status for every failure, so far: scripts tell them apart by `error_type` in --json output.
EXIT_CODES: Table[int] = {
    AnamnesisError: EXIT_FAILED,
    ConfigError: EXIT_FAILED,
    HomeNotInitializedError: EXIT_FAILED,
    NoteError: EXIT_FAILED,
    NoteNotFoundError: EXIT_FAILED,
    NoteFormatError: EXIT_FAILED,
    NoteValidationError: EXIT_FAILED,
    UnsafePathError: EXIT_FAILED,
    QueryError: EXIT_FAILED,
    IndexStateError: EXIT_FAILED,
    BusyError: EXIT_FAILED,
    ModelUnavailableError: EXIT_FAILED,
    ModelError: EXIT_FAILED,
    EvalSetError: EXIT_FAILED,
    ReflectionError: EXIT_FAILED,
    ReflectionNotConfiguredError: EXIT_FAILED,
    ProposalError: EXIT_FAILED,
    ProposalNotFoundError: EXIT_FAILED,
    ProposalDecidedError: EXIT_FAILED,
    CurationRefusedError: EXIT_FAILED,
    DedupError: EXIT_FAILED,
    ImportSourceError: EXIT_FAILED,
    SyncError: EXIT_FAILED,
    NoHubError: EXIT_FAILED,
    GitError: EXIT_FAILED,
    PeerUnreachableError: EXIT_FAILED,
    HostKeyError: EXIT_FAILED,
    NoteChangedError: EXIT_FAILED,
    AuthRefusedError: EXIT_FAILED,
    HubRepoMissingError: EXIT_FAILED,
}


def cli_message(exc: AnamnesisError) -> str:
    """The one line the CLI prints on stderr."""
    return f"anamnesis: error: {exc}"


# -- dashboard ----------------------------------------------------------------------------------

# 4xx: the request can be changed to succeed; 5xx: this machine or its hub must be fixed first.
HTTP_STATUS: Table[int] = {
    AnamnesisError: 500,
    ConfigError: 500,
    HomeNotInitializedError: 500,
    NoteError: 400,
    NoteNotFoundError: 404,
    NoteFormatError: 400,
    NoteValidationError: 400,
    UnsafePathError: 400,
    QueryError: 400,
    IndexStateError: 503,
    BusyError: 503,
    ModelUnavailableError: 500,
    ModelError: 500,
    EvalSetError: 500,
    ReflectionError: 500,
    ReflectionNotConfiguredError: 500,
    ProposalError: 400,
    ProposalNotFoundError: 404,
    ProposalDecidedError: 409,
    CurationRefusedError: 409,
    DedupError: 400,
    ImportSourceError: 400,
    SyncError: 502,
    NoHubError: 502,
    GitError: 502,
    PeerUnreachableError: 502,
    HostKeyError: 502,
    NoteChangedError: 409,
    AuthRefusedError: 502,
    HubRepoMissingError: 502,
}


# -- MCP ----------------------------------------------------------------------------------------

# Written for the model: the message, then what to do next (another call, or tell the user).
# `{exc}` is the error's message; `{hint}` what the tool says of the field a NoteValidationError names.
_NOT_SET_UP = "Anamnesis is not set up: {exc}. Tell the user; this cannot be fixed by another call."
_SYNC_FAILED = "Sync failed: {exc}. Notes are safe on this machine; the user can run `anamnesis doctor`."
TOOL_MESSAGES: Table[str] = {
    AnamnesisError: "{exc}",
    ConfigError: _NOT_SET_UP,
    HomeNotInitializedError: _NOT_SET_UP,
    NoteError: "{exc}",
    NoteNotFoundError: (
        "{exc}. Use an id exactly as memory_search, memory_list or the session context gave it; "
        "search by words to find the note."
    ),
    NoteFormatError: "{exc}",
    NoteValidationError: "{exc}. {hint}",
    UnsafePathError: "{exc}",
    QueryError: "{exc}",  # already says what to change
    IndexStateError: "The search index is damaged: {exc}. The user can run `anamnesis reindex --full`.",
    BusyError: "The memory is busy: {exc}. Try again in a moment.",
    ModelUnavailableError: "{exc}",
    ModelError: "{exc}",
    EvalSetError: "{exc}",
    ReflectionError: "{exc}",
    ReflectionNotConfiguredError: "{exc}",
    ProposalError: "{exc}",
    ProposalNotFoundError: "{exc}",
    ProposalDecidedError: "{exc}",
    CurationRefusedError: "{exc}",
    DedupError: "{exc}",
    ImportSourceError: "{exc}",
    SyncError: _SYNC_FAILED,
    NoHubError: _SYNC_FAILED,
    GitError: "{exc}. Note files on disk are kept; the user can run `anamnesis doctor`.",
    PeerUnreachableError: "The hub could not be reached: {exc}. Notes are safe on this machine; sync again later.",
    HostKeyError: "{exc}. The user must check the hub's host key (`anamnesis peer add` shows it).",
    NoteChangedError: "{exc}. Read the note again with memory_get and make the change to what it says now.",
    AuthRefusedError: "{exc}. The user must authorize this machine's SSH key on the hub; notes are safe here.",
    HubRepoMissingError: _SYNC_FAILED,
}


def tool_message(exc: AnamnesisError, field_hints: Mapping[str, str]) -> str:
    """What the model is told about a failure; `field_hints` say how to fill each tool argument."""
    hint = field_hints.get(exc.field, "") if isinstance(exc, NoteValidationError) else ""
    return lookup(TOOL_MESSAGES, exc).format(exc=exc, hint=hint).strip()


# -- hooks --------------------------------------------------------------------------------------

# A hook always exits 0 and prints nothing it was not asked for; the person reading
# state/hooks.log gets the error's class, its message and, where there is one, the next step.
_PLAIN = "{name}: {exc}"
_NOT_CONFIGURED = "{name}: {exc}; `anamnesis doctor` says what to fix"
_SYNC_LATER = "{name}: {exc}; notes are safe on this machine and the next sync tries again"
HOOK_LOG: Table[str] = {
    AnamnesisError: _PLAIN,
    ConfigError: _NOT_CONFIGURED,
    HomeNotInitializedError: _NOT_CONFIGURED,
    NoteError: _PLAIN,
    NoteNotFoundError: _PLAIN,
    NoteFormatError: _PLAIN,
    NoteValidationError: _PLAIN,
    UnsafePathError: _PLAIN,
    QueryError: _PLAIN,
    IndexStateError: "{name}: {exc}; `anamnesis reindex --full` rebuilds the index",
    BusyError: "{name}: {exc}; the next event tries again",
    ModelUnavailableError: _PLAIN,
    ModelError: _PLAIN,
    EvalSetError: _PLAIN,
    ReflectionError: _PLAIN,
    ReflectionNotConfiguredError: _PLAIN,
    ProposalError: _PLAIN,
    ProposalNotFoundError: _PLAIN,
    ProposalDecidedError: _PLAIN,
    CurationRefusedError: _PLAIN,
    DedupError: _PLAIN,
    ImportSourceError: _PLAIN,
    SyncError: _SYNC_LATER,
    NoHubError: _SYNC_LATER,
    GitError: _SYNC_LATER,
    PeerUnreachableError: _SYNC_LATER,
    HostKeyError: "{name}: {exc}; `anamnesis peer add` shows the hub's key to check",
    NoteChangedError: _PLAIN,
    AuthRefusedError: "{name}: {exc}; authorize this machine's SSH key on the hub (`anamnesis doctor` says which)",
    HubRepoMissingError: _SYNC_LATER,
}


def hook_log_line(exc: BaseException) -> str:
    """The hooks.log line for anything a hook caught; a bug says so, and where it was raised."""
    name = type(exc).__name__
    if isinstance(exc, AnamnesisError):
        return lookup(HOOK_LOG, exc).format(name=name, exc=exc)
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not ours to judge
        return f"{name}: {exc}"
    import traceback  # only a bug pays for it; the CLI's --help imports this module

    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"bug: {name}: {exc}{where}"
