"""Reflection proposals waiting for review: one JSON file each under `<home>/state/reflection/`.

A proposal is what the model suggested from a project's session notes, kept on this machine
(never synced: it is not yet a note) until someone decides on it: `anamnesis reflect --apply`
writes every pending one, the dashboard accepts, edits or rejects them one by one. A decided
proposal stays on disk a while, so a run can tell which session notes were already shown to
the model and a script can see what became of a proposal (`note_id`).

Each file is written atomically (temp file, fsync, rename), and every decision is taken under
one lock (`lock()`), so the CLI and the dashboard never decide the same proposal twice.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from anamnesis.atomic import atomic_write
from anamnesis.config import Layout
from anamnesis.errors import NoteValidationError, ProposalError, ProposalNotFoundError
from anamnesis.ids import is_safe_id, normalize_id
from anamnesis.locks import file_lock
from anamnesis.notes import MAX_TITLE_CHARS, normalize_body, normalize_tags, utc_now

logger = logging.getLogger(__name__)

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
STATUSES = (PENDING, ACCEPTED, REJECTED)
DURABLE_TYPES = ("procedural", "semantic")
STATE_SUBDIR = "reflection"
FORMAT_VERSION = 1
# A decision can wait on the eval guard's trial run (a copy and reindex of the store).
LOCK_TIMEOUT = 300.0
RUN_LOCK_TIMEOUT = 1.0
# Decided proposals are kept this long for scripts and for the record, then pruned.
KEEP_DECIDED_SECONDS = 90 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Proposal:
    """One durable note the model proposed, and what became of it.

    `source_ids` are the session notes it cites (validated: only notes that were sent), which
    become its links; `sent_ids` are every note the model read for it, all marked reflected
    when it is accepted. `note_id` is the note written on acceptance (the proposal's own id,
    so that a retried acceptance rewrites the note instead of writing a second one).
    """

    id: str
    project: str
    type: str
    title: str
    body: str
    tags: tuple[str, ...]
    source_ids: tuple[str, ...]
    sent_ids: tuple[str, ...]
    model: str
    status: str = PENDING
    created_at: str = ""
    decided_at: str | None = None
    note_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "id": self.id,
            "project": self.project,
            "type": self.type,
            "title": self.title,
            "body": self.body,
            "tags": list(self.tags),
            "source_ids": list(self.source_ids),
            "sent_ids": list(self.sent_ids),
            "model": self.model,
            "status": self.status,
            "created_at": self.created_at,
            "decided_at": self.decided_at,
            "note_id": self.note_id,
        }

    @classmethod
    def from_json(cls, data: Any) -> Proposal:
        """The proposal in a parsed file; `ValueError` when it is not one."""
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError("not a reflection proposal of a known version")

        def text(key: str, optional: bool = False) -> Any:
            value = data.get(key)
            if value is None and optional:
                return None
            if not isinstance(value, str):
                raise ValueError(f"{key} must be text")
            return value

        def ids(key: str) -> tuple[str, ...]:
            value = data.get(key)
            if not isinstance(value, list) or not all(isinstance(i, str) and is_safe_id(i) for i in value):
                raise ValueError(f"{key} must be a list of note ids")
            return tuple(value)

        tags = data.get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError("tags must be a list of text")
        proposal = cls(
            id=text("id"),
            project=text("project"),
            type=text("type"),
            title=text("title"),
            body=text("body"),
            tags=tuple(tags),
            source_ids=ids("source_ids"),
            sent_ids=ids("sent_ids"),
            model=text("model"),
            status=text("status"),
            created_at=text("created_at"),
            decided_at=text("decided_at", optional=True),
            note_id=text("note_id", optional=True),
        )
        if not is_safe_id(proposal.id) or proposal.status not in STATUSES:
            raise ValueError("bad id or status")
        return proposal

    def edited(self, fields: dict[str, str]) -> Proposal:
        """This proposal with a reviewer's edits (title, body, type, tags); absent fields kept.

        Raises `NoteValidationError` for a value the note could not have, before anything is
        written; the rest (length limits) is checked when the note is written.
        """
        title = " ".join(fields.get("title", self.title).split())
        kind = fields.get("type", self.type).strip()
        body = normalize_body(fields.get("body", self.body)).strip()
        if kind not in DURABLE_TYPES:
            raise NoteValidationError("type", f"a reflection is {' or '.join(DURABLE_TYPES)}, not {kind!r}")
        if not title:
            raise NoteValidationError("title", "must not be empty")
        if len(title) > MAX_TITLE_CHARS:
            raise NoteValidationError("title", f"is {len(title)} characters; at most {MAX_TITLE_CHARS}")
        if not body:
            raise NoteValidationError("body", "must not be empty")
        tags = self.tags
        if "tags" in fields:
            tags = normalize_tags(part for part in fields["tags"].split(","))
        return replace(self, title=title, body=body, type=kind, tags=tags)

    def decided(self, status: str, note_id: str | None = None) -> Proposal:
        return replace(self, status=status, decided_at=utc_now(), note_id=note_id)


class ProposalStore:
    """The proposals of one home, in `<home>/state/reflection/<id>.json`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def of(cls, layout: Layout) -> ProposalStore:
        return cls(layout.state_dir / STATE_SUBDIR)

    @asynccontextmanager
    async def lock(self, timeout: float = LOCK_TIMEOUT) -> AsyncIterator[None]:
        """Hold this while deciding: check the status, write the note, record the decision."""
        async with file_lock(self.directory / ".decide.lock", timeout, "the reflection proposals"):
            yield

    @asynccontextmanager
    async def run_lock(self, timeout: float = RUN_LOCK_TIMEOUT) -> AsyncIterator[None]:
        """Hold this while asking the model: one reflection run per home at a time.

        Separate from `lock()`, so a run waiting on the network never holds up a decision.
        `BusyError` when another run holds it past `timeout`.
        """
        async with file_lock(self.directory / ".run.lock", timeout, "the reflection run"):
            yield

    async def save(self, proposals: Sequence[Proposal]) -> None:
        """Write each proposal's file atomically (a new one, or its new status)."""
        with anyio.CancelScope(shield=True):  # a decision recorded halfway would be asked again
            await anyio.to_thread.run_sync(self._save, list(proposals))

    async def get(self, proposal_id: str) -> Proposal:
        """The proposal with this id; `ProposalNotFoundError` when there is none."""
        wanted = normalize_id(proposal_id)
        if not is_safe_id(wanted):
            raise ProposalNotFoundError(proposal_id)
        found = await anyio.to_thread.run_sync(self._read, self._path(wanted))
        if found is None:
            raise ProposalNotFoundError(proposal_id)
        return found

    async def list(self, status: str | None = PENDING, project: str | None = None) -> builtins.list[Proposal]:
        """Proposals with this status (None: any) and project (None: any), oldest first."""
        everything = await anyio.to_thread.run_sync(self._read_all)
        return [
            p
            for p in everything
            if (status is None or p.status == status) and (project is None or p.project == project)
        ]

    async def prune(self, older_than: float = KEEP_DECIDED_SECONDS) -> int:
        """Delete decided proposals whose file is older than `older_than` seconds; how many."""
        return await anyio.to_thread.run_sync(self._prune, older_than)

    # -- blocking parts, run in a worker thread --------------------------------------------

    def _path(self, proposal_id: str) -> Path:
        return self.directory / f"{proposal_id}.json"

    def _save(self, proposals: builtins.list[Proposal]) -> None:
        for proposal in proposals:
            if not is_safe_id(proposal.id):
                raise ProposalError(f"{proposal.id!r} is not a valid proposal id")
            text = json.dumps(proposal.to_json(), ensure_ascii=False, indent=1) + "\n"
            atomic_write(self._path(proposal.id), text)

    def _read(self, path: Path) -> Proposal | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            proposal = Proposal.from_json(json.loads(text))
        except ValueError as exc:  # JSONDecodeError is a ValueError
            logger.warning("skipping %s: not a reflection proposal (%s)", path, exc)
            return None
        return proposal if proposal.id == path.stem else None

    def _read_all(self) -> builtins.list[Proposal]:
        try:
            paths = sorted(p for p in self.directory.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
        except FileNotFoundError:
            return []
        found = [p for p in map(self._read, paths) if p is not None]
        return sorted(found, key=lambda p: (p.created_at, p.id))

    def _prune(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        removed = 0
        for proposal in self._read_all():
            path = self._path(proposal.id)
            try:
                if proposal.status != PENDING and path.stat().st_mtime < cutoff:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
