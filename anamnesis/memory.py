"""`open_memory(config)`: the use cases every adapter calls (write, get, list, search, status…).

One `Memory` wraps the notes on disk, the derived index and the git repo of one home. Adapters
(CLI, MCP, hooks, dashboard, sync) never touch those three directly (they are private here, and
`tests/test_architecture.py` keeps it so), so they all behave the same. The semantic half lives
in `memory_vectors`, the read-only questions of doctor, health and fleet in `memory_inspect`.
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from anamnesis.config import Config
from anamnesis.errors import GitError, NoteChangedError, NoteNotFoundError, NoteValidationError
from anamnesis.gitrepo import STALE_GIT_LOCK_AGE, CommitInfo, GitRepo
from anamnesis.home import require_home
from anamnesis.hybrid import Semantic, hybrid_search
from anamnesis.ids import is_safe_id, new_ulid, normalize_id
from anamnesis.index import BUSY_TIMEOUT_MS, Page, ProgressCallback, RefreshReport, SearchIndex
from anamnesis.locks import git_lock
from anamnesis.memory_inspect import MemoryInspect
from anamnesis.memory_status import FleetMachine, GitState, MemoryStatus, SyncStatus
from anamnesis.memory_vectors import MemoryVectors, semantic_enabled
from anamnesis.notes import GLOBAL_PROJECT, NOTE_TYPES, Note, normalize_body, normalize_tags, utc_now, validate_note
from anamnesis.queries import DIR_STAMP_KEY, FULL_SCAN_KEY
from anamnesis.search import DEFAULT_LIMIT, Hit, SearchFilters, clamp_limit
from anamnesis.store import NoteStore, file_digest

logger = logging.getLogger(__name__)

# Every note is stat'ed again at most this often, across all processes (see ensure_fresh).
FULL_SCAN_INTERVAL = 10.0
NO_FILE = ""  # the digest `read_for_edit` gives, and `update` takes, for a note that has no file


@dataclass(frozen=True, slots=True)
class NoteDraft:
    """What a caller provides to write a new note; the rest (id, times, machine) is filled in."""

    type: str
    title: str
    body: str
    project: str = GLOBAL_PROJECT
    tags: Sequence[str] = ()
    scope: str = "portable"
    supersedes: Sequence[str] = ()
    prov_source: str = "human"
    confidence: float = 1.0
    prov_model: str | None = None
    prov_session: str | None = None
    note_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NoteVersion:
    """A note as its file holds it now, the digest of exactly those bytes, and its path in the home."""

    note: Note
    digest: str
    path: str


class Memory(MemoryVectors, MemoryInspect):
    """The memory of one home. Create with `open_memory`."""

    def __init__(self, config: Config, store: NoteStore, index: SearchIndex, git: GitRepo) -> None:
        self.config = config
        self._store = store
        self._index = index
        self._git = git
        self._seen_stamps: str | None = None
        # The semantic side: None when config turns it off; its model loads only in long-lived
        # processes (`keep_vectors_fresh`, `load_model`), so until then search is lexical.
        self.semantic: Semantic | None = Semantic() if semantic_enabled(config) else None
        self._written = anyio.Event()

    # -- reading -------------------------------------------------------------------------

    async def ensure_fresh(self, *, quick: bool = False) -> None:
        """Take in notes changed by hand since the last look, by any process, cheaply.

        A note added, removed or saved by rename (what most editors do) changes a directory's
        mtime: eight stats compared with the stamps the index keeps notice it at once, in every
        process. A note rewritten in place changes no directory, so every file is stat'ed again
        when the last such walk (by any process) is older than FULL_SCAN_INTERVAL. `quick`
        (hooks, where every millisecond counts) skips that walk.
        """
        stamp = await anyio.to_thread.run_sync(self._store.directory_stamp)
        if stamp == self._seen_stamps and quick:
            return
        stored = await self._index.get_meta(DIR_STAMP_KEY)
        walk_due = False
        if not quick:
            last_walk = float(await self._index.get_meta(FULL_SCAN_KEY) or 0)
            walk_due = time.time() - last_walk >= FULL_SCAN_INTERVAL
        if stored != stamp or walk_due:
            await self._refresh_from(stamp)
        self._seen_stamps = stamp

    async def search(
        self,
        text: str,
        filters: SearchFilters = SearchFilters(),
        limit: int | None = DEFAULT_LIMIT,
    ) -> list[Hit]:
        await self.ensure_fresh()
        return await hybrid_search(self._index, text, filters, limit, self.semantic)

    async def list(
        self,
        filters: SearchFilters = SearchFilters(),
        limit: int | None = 20,
        cursor: str | None = None,
    ) -> Page:
        await self.ensure_fresh()
        return await self._index.list_notes(filters, clamp_limit(limit), cursor)

    async def get(self, note_id: str) -> Note:
        """The note with this id, read from its file (the truth), not from the index."""
        wanted = normalize_id(note_id)
        if not is_safe_id(wanted):
            raise NoteNotFoundError(note_id)
        path = await anyio.to_thread.run_sync(self._store.find, wanted)
        if path is None:
            await self.ensure_fresh()
            summary = await self._index.summary(wanted)
            if summary is None:
                raise NoteNotFoundError(note_id)
            path = self.config.home / summary.path
        try:
            return await anyio.to_thread.run_sync(self._store.read, path)
        except FileNotFoundError as exc:
            raise NoteNotFoundError(note_id) from exc

    async def superseded_by(self, note_id: str) -> builtins.list[str]:
        return await self._index.superseded_by(normalize_id(note_id))

    async def history(self, note_id: str, limit: int = 50) -> builtins.list[CommitInfo]:
        note = await self.get(note_id)
        if note.scope != "portable":
            return []
        name = self.note_file(note).name
        return await self._git.note_log([f"{note_type}/{name}" for note_type in NOTE_TYPES], limit)

    # -- writing -------------------------------------------------------------------------

    async def write(self, draft: NoteDraft, *, redact: bool = False) -> Note:
        """Write a new note (or replace the note with `draft.note_id`), commit it, index it.

        `redact`: the text is not the user's own; secrets in it are replaced first (`untrusted`).
        """
        if redact:
            from anamnesis.untrusted import redact_draft  # its rules compile on import: only when asked

            draft = redact_draft(draft)
        now = utc_now()
        note_id = normalize_id(draft.note_id) if draft.note_id else new_ulid()
        supersedes = tuple(dict.fromkeys(normalize_id(s) for s in draft.supersedes))
        if note_id in supersedes:
            raise NoteValidationError("supersedes", "a note cannot supersede itself")
        created_at = now
        if draft.note_id:
            existing = await anyio.to_thread.run_sync(self._store.find, note_id)
            if existing is not None:
                created_at = (await anyio.to_thread.run_sync(self._store.read, existing)).created_at or now
        note = Note(
            id=note_id,
            type=draft.type,
            title=" ".join(draft.title.split()) if "\n" not in draft.title.strip() else draft.title,
            body=normalize_body(draft.body),
            project=draft.project.strip() or GLOBAL_PROJECT,
            machine_id=self.config.machine_id,
            scope=draft.scope,
            prov_source=draft.prov_source,
            confidence=draft.confidence,
            prov_model=draft.prov_model,
            prov_session=draft.prov_session,
            supersedes=supersedes,
            created_at=created_at,
            updated_at=now,
            tags=normalize_tags(draft.tags),
            extra=dict(draft.extra),
        )
        validate_note(note)
        for old in supersedes:
            if not is_safe_id(old) or await anyio.to_thread.run_sync(self._store.find, old) is None:
                raise NoteValidationError("supersedes", f"no note with id {old!r} to supersede")
        await self.save(note, f"anamnesis: write {note.type} {note.id} ({note.title[:60]})")
        return note

    async def save(self, note: Note, message: str | None = None) -> Path:
        """Write `note` as given (atomically), commit it when portable, and index it."""
        await self.save_all([note], message or f"anamnesis: update {note.type} {note.id}")
        return self.note_file(note)

    async def save_all(
        self, notes: Sequence[Note], message: str, progress: ProgressCallback | None = None
    ) -> builtins.list[Path]:
        """Write many notes as given, then commit them in ONE commit and index them.

        For curation and imports: a commit per note would cost ~20 ms each and bury the
        history in noise, where one commit says what the run did and undoes in one step.
        Every note is validated before the first file is written.
        """
        for note in notes:
            validate_note(note)
        async with self._git_lock():
            touched = await self._write_files(notes, progress)
            await self._commit(touched, message)
        await self._indexed(touched)
        return touched

    async def read_for_edit(self, note_id: str) -> NoteVersion | None:
        """The note as its file holds it now and the digest of those bytes (the `base` to give
        `update`), from one read; None when the note has no file (deleted, or never written)."""
        wanted = normalize_id(note_id)
        if not is_safe_id(wanted):
            raise NoteNotFoundError(note_id)
        path = await anyio.to_thread.run_sync(self._store.find, wanted)
        if path is None:
            summary = await self._index.summary(wanted)
            if summary is None:
                return None
            path = self.config.home / summary.path
        return await anyio.to_thread.run_sync(self._read_version, path)

    def _read_version(self, path: Path) -> NoteVersion | None:
        try:
            data = self._store.read_bytes(path)
        except FileNotFoundError:
            return None
        note = self._store.read_text(data.decode("utf-8", errors="replace"), path)
        return NoteVersion(note, file_digest(data), self._store.rel(path))

    async def update(self, note: Note, base: str, message: str | None = None) -> Path:
        """Save `note` only if its file is still the version `base` names (`NO_FILE`: none).

        Otherwise nothing is written and `NoteChangedError` carries both versions. The check,
        the write and the commit happen under the git lock, which every writer of this home
        (this class, a sync, upkeep) holds while it changes notes: nothing lands in between.
        """
        validate_note(note)
        async with self._git_lock():
            current = await self.read_for_edit(note.id)
            digest = current.digest if current is not None else NO_FILE
            if digest != base:
                raise NoteChangedError(note, current.note if current is not None else None, digest)
            touched = await self._write_files([note])
            await self._commit(touched, message or f"anamnesis: update {note.type} {note.id}")
        await self._indexed(touched)
        return self.note_file(note)

    async def _write_files(
        self, notes: Sequence[Note], progress: ProgressCallback | None = None
    ) -> builtins.list[Path]:
        """Write each note's file (and remove its file under another type or scope): paths touched."""

        def write_all() -> builtins.list[Path]:
            touched: dict[Path, None] = {}
            for done, note in enumerate(notes, start=1):
                before = self._existing_paths(note.id)
                touched.setdefault(self._store.write(note), None)
                for old in before:
                    touched.setdefault(old, None)
                if progress is not None:
                    progress(done, len(notes))
            return sorted(touched)

        return await anyio.to_thread.run_sync(write_all)

    async def _indexed(self, touched: Sequence[Path]) -> None:
        await self._index.refresh(paths=[self._store.rel(p) for p in touched])
        self._written.set()

    async def delete(self, note_id: str) -> None:
        """Remove a note's file (history keeps it) and its index row."""
        wanted = normalize_id(note_id)
        if not is_safe_id(wanted):
            raise NoteNotFoundError(note_id)
        async with self._git_lock():
            removed = await anyio.to_thread.run_sync(self._store.delete, wanted)
            if not removed:
                raise NoteNotFoundError(note_id)
            await self._commit(removed, f"anamnesis: delete {wanted}")
        await self._indexed(removed)

    def note_file(self, note: Note) -> Path:
        """Where `note`'s file is (or goes) on disk, for its id, type and scope."""
        return self._store.path_for(note.id, note.type, note.scope)

    def note_path(self, note: Note) -> str:
        """`note_file` relative to the home, as lists, JSON and the CLI show it."""
        return self._store.rel(self.note_file(note))

    def _existing_paths(self, note_id: str) -> builtins.list[Path]:
        return [p for p in self._store.candidates(note_id) if p.exists()]

    @asynccontextmanager
    async def _git_lock(self) -> AsyncIterator[None]:
        async with git_lock(self.config.layout.state_dir):
            yield

    async def _commit(self, paths: Sequence[Path], message: str) -> None:
        """Commit `paths` (those in memory/); call with the git lock held."""
        root = self._git.path
        repo_paths = [p.relative_to(root).as_posix() for p in paths if p.is_relative_to(root)]
        if not repo_paths:
            return
        try:
            await self._git.commit_paths(repo_paths, message)
        except GitError:
            # A git killed mid-commit leaves index.lock behind and every later commit fails.
            # Holding our own lock, a lock file older than STALE_GIT_LOCK_AGE is such a leftover.
            if not await self._git.recover_stale_locks(STALE_GIT_LOCK_AGE):
                raise
            await self._git.commit_paths(repo_paths, message)

    async def commit_pending(self, message: str = "anamnesis: record edits made outside Anamnesis") -> str | None:
        """Commit whatever changed in memory/ by hand; the new head, or None if nothing had."""
        async with self._git_lock():
            return await self._git.commit_all(message)

    # -- maintenance ---------------------------------------------------------------------

    async def reindex(self, full: bool = False, progress: ProgressCallback | None = None) -> RefreshReport:
        """Refresh the index from the files; `full` rebuilds it from every note (in one
        transaction: other processes search the old index until the new one is whole)."""
        return await self._refresh_from(
            await anyio.to_thread.run_sync(self._store.directory_stamp), progress, full=full
        )

    async def _refresh_from(
        self, stamp: str, progress: ProgressCallback | None = None, *, full: bool = False
    ) -> RefreshReport:
        """Refresh every file (`full`: rebuild the index from them) and record `stamp`, read
        BEFORE the refresh: a change made during it then still differs from the record and is
        taken in next time."""
        report = await (self._index.rebuild(progress) if full else self._index.refresh(progress=progress))
        await self._index.set_meta({DIR_STAMP_KEY: stamp, FULL_SCAN_KEY: repr(time.time())})
        return report

    async def state(self) -> MemoryStatus:
        """What `anamnesis status` and MCP `memory_status` report: counts, git, hub, sync, recall."""
        from anamnesis.sync.fleet import SyncState, fleet_status, state_path

        await self.ensure_fresh()
        counts = await self._index.counts()
        dirty = await self._git.status_paths() if await self._git.is_repo() else []
        git = GitState(await self._git.head(), await self._git.branch(), len(dirty))
        record = await anyio.to_thread.run_sync(SyncState.load, state_path(self.config.layout))
        fleet = await fleet_status(self.config)
        sync = SyncStatus(
            last_ok=record.last_ok,
            last_attempt=record.last_attempt,
            last_error=record.last_error if record.consecutive_failures else None,
            withheld=tuple(record.withheld_paths),
            last_pushed=fleet.last_pushed,
            last_heard=fleet.last_heard,
        )
        machines = tuple(FleetMachine(m.machine, m.synced_at, m.pushed_at, m.heard_at) for m in fleet.machines)
        return MemoryStatus.of(self.config, counts, git, await self.recall_status(), sync, machines)

    async def status(self) -> dict[str, Any]:
        """`state()` as the JSON shape `anamnesis status --json` and MCP `memory_status` give."""
        return (await self.state()).as_json()


@asynccontextmanager
async def open_memory(config: Config, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> AsyncIterator[Memory]:
    """The memory of `config`'s home; `HomeNotInitializedError` when `init` has not run.

    Hooks pass a short `busy_timeout_ms`: they must never sit waiting on another writer.
    """
    require_home(config.layout)
    store = NoteStore(config.layout)
    index = await SearchIndex.open(config.layout.index_path, store, busy_timeout_ms)
    try:
        yield Memory(config, store, index, GitRepo(config.layout.memory_dir, config.machine_id))
    finally:
        with anyio.CancelScope(shield=True):
            await index.aclose()
