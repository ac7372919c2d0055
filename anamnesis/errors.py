"""The `AnamnesisError` tree: every failure that core raises on purpose.

```
AnamnesisError
├── ConfigError ── HomeNotInitializedError
├── NoteError ── NoteNotFoundError · NoteFormatError · NoteValidationError · UnsafePathError
│                · NoteChangedError
├── QueryError
├── IndexStateError          (schema mismatch or corruption: rebuild from notes)
├── BusyError                (another process holds a lock past our deadline)
├── ModelUnavailableError    (the embedding model cannot load: search stays lexical)
├── ModelError               (the chat model was not asked, or did not answer as asked)
├── EvalSetError             (an eval set file is missing or malformed)
├── ReflectionError ── ReflectionNotConfiguredError
├── ProposalError ── ProposalNotFoundError · ProposalDecidedError
├── CurationRefusedError     (the eval guard: the change would lower recall)
├── DedupError
├── ImportSourceError
└── SyncError ── NoHubError · GitError · PeerUnreachableError · HostKeyError · AuthRefusedError
                 · HubRepoMissingError

MergeConflict                (not a failure: the merge driver's "keep both versions" signal)
```

Adapters translate these once at their edge, each through its one table in `anamnesis.edges`
(CLI: a message and an exit code; MCP: a tool error; dashboard: a status code and an error
page; hooks: exit 0 and a log line). Anything that is not an `AnamnesisError` is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from anamnesis.notes import Note


class AnamnesisError(Exception):
    """Base of every error Anamnesis raises on purpose."""


class ConfigError(AnamnesisError):
    """The configuration or the home directory is missing or invalid."""


class HomeNotInitializedError(ConfigError):
    """The home directory has not been set up with `anamnesis init`."""


class NoteError(AnamnesisError):
    """A note could not be read, found or written."""


class NoteNotFoundError(NoteError):
    """No note has this id."""

    def __init__(self, note_id: str) -> None:
        super().__init__(f"no note with id {note_id!r}")
        self.note_id = note_id


class NoteFormatError(NoteError):
    """A file is not a well-formed note (front-matter missing or broken)."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


class NoteValidationError(NoteError):
    """A field of a note has a value Anamnesis does not accept."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnsafePathError(NoteError):
    """A path in the store goes through a symbolic link, or is not a regular file or directory.

    memory/ is written by other machines through the hub; following a link there could read
    or write anywhere on this machine, so the store refuses instead.
    """


class NoteChangedError(NoteError):
    """An update named a version of the note (its digest) that is no longer the file on disk.

    Carries both versions, so an adapter can show them side by side: `yours`, what was to be
    saved, and `current`, the note as its file holds it now (None when it was deleted), with
    `current_digest`, the base to name when saving on top of it.
    """

    def __init__(self, yours: Note, current: Note | None, current_digest: str) -> None:
        what = "deleted" if current is None else "changed"
        super().__init__(f"note {yours.id} was {what} since it was read for editing; nothing was saved")
        self.yours = yours
        self.current = current
        self.current_digest = current_digest


class QueryError(AnamnesisError):
    """A search or list request cannot be answered as asked (bad cursor, bad filter)."""


class IndexStateError(AnamnesisError):
    """The derived index is unusable; rebuilding it from the notes fixes this."""


class BusyError(AnamnesisError):
    """Another process held a lock for longer than we were willing to wait."""


class ModelUnavailableError(AnamnesisError):
    """The sentence-embedding model cannot load (not installed, wrong file, no runtime)."""


class SyncError(AnamnesisError):
    """A sync cycle could not complete."""


class NoHubError(SyncError):
    """Sync was asked for, but this machine has no hub configured: nothing failed."""


class GitError(SyncError):
    """A git command failed."""

    def __init__(self, argv: Sequence[str], code: int, stderr: str) -> None:
        shown = " ".join(argv)
        super().__init__(f"git failed ({code}): {shown}: {stderr.strip()[:2000]}")
        self.argv = tuple(argv)
        self.code = code
        self.stderr = stderr


class PeerUnreachableError(SyncError):
    """The hub could not be reached in time."""


class HostKeyError(SyncError):
    """The hub's SSH host key is unknown or has changed."""


class AuthRefusedError(SyncError):
    """The hub refused every key this machine offered: the user must authorize one on the hub."""


class HubRepoMissingError(SyncError):
    """The hub has no repository at the peer's path (and, for `peer add`, this account cannot create one)."""


# -- models, evaluation and curation ----------------------------------------------------------


class ModelError(AnamnesisError):
    """The model was not asked (none configured), did not answer in time, or not as asked."""


class EvalSetError(AnamnesisError):
    """An eval set file is missing or has a malformed line."""


class ReflectionError(AnamnesisError):
    """The model could not be asked, or its answer could not be used; nothing was changed."""


class ReflectionNotConfiguredError(ReflectionError):
    """No reflection model is configured: reflection asks nothing and changes nothing."""

    def __init__(self) -> None:
        super().__init__(
            "no reflection model is configured, so nothing was asked and nothing was changed. Set "
            "ANAMNESIS_REFLECTION_PROVIDER, ANAMNESIS_REFLECTION_MODEL and ANAMNESIS_REFLECTION_BASE_URL "
            '(and ANAMNESIS_REFLECTION_API_KEY), or the "reflection" block of config.json'
        )


class _DecidedProposal(Protocol):
    """What `ProposalDecidedError` says of a proposal (the `Proposal` value lives in curation)."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...


class ProposalError(AnamnesisError):
    """A proposal cannot be found or decided as asked."""


class ProposalNotFoundError(ProposalError):
    """No proposal has this id."""

    def __init__(self, proposal_id: str) -> None:
        super().__init__(f"no reflection proposal with id {proposal_id!r}")
        self.proposal_id = proposal_id


class ProposalDecidedError(ProposalError):
    """The proposal was already accepted or rejected (in another tab, or by `reflect --apply`)."""

    def __init__(self, proposal: _DecidedProposal) -> None:
        super().__init__(f"reflection proposal {proposal.id} was already {proposal.status}; nothing was changed")
        self.proposal = proposal


class CurationRefusedError(AnamnesisError):
    """The change would lower eval recall@k; nothing was changed."""

    def __init__(self, before: float, after: float, eval_path: Path, *, k: int) -> None:
        super().__init__(
            f"refused: this change lowers eval recall@{k} from {before:.3f} to {after:.3f} "
            f"(eval set {eval_path}); nothing was changed. Review the proposals, or pass --force."
        )
        self.before = before
        self.after = after


class DedupError(AnamnesisError):
    """A dedup request cannot be carried out as asked (bad threshold, a note changed meanwhile)."""


class ImportSourceError(AnamnesisError):
    """An import source cannot be used as given (not a store, this very home)."""


# -- signals, not failures --------------------------------------------------------------------


class MergeConflict(Exception):
    """The two versions cannot be merged automatically; `reason` says where they collide.

    Not an `AnamnesisError`, on purpose: a collision is one of the merge driver's two normal
    answers, not a failure. `merge_texts` raises it and the driver's `main` turns it into
    exit 1, which tells git (and then the sync engine) to keep both versions as separate
    notes. It never crosses an edge; if one ever reached the CLI, MCP, a hook or the
    dashboard, that would be a bug, and a bug is exactly what a non-`AnamnesisError` means.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
