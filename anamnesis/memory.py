"""`open_memory(config)`: the use cases every adapter calls (write, get, list, search, status…).

One `Memory` wraps the notes on disk, the derived index and the git repo of one home. Adapters
(CLI, MCP, hooks, dashboard) never touch those three directly, so they all behave the same.
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
from anamnesis.errors import AnamnesisError, GitError, NoteNotFoundError, NoteValidationError
from anamnesis.gitrepo import STALE_GIT_LOCK_AGE, CommitInfo, GitRepo
from anamnesis.home import require_home
from anamnesis.hybrid import Semantic, hybrid_search
from anamnesis.ids import is_safe_id, new_ulid, normalize_id
from anamnesis.index import BUSY_TIMEOUT_MS, Page, ProgressCallback, RefreshReport, SearchIndex
from anamnesis.locks import file_lock, release_file_lock, try_file_lock
from anamnesis.notes import GLOBAL_PROJECT, NOTE_TYPES, Note, normalize_body, normalize_tags, utc_now, validate_note
from anamnesis.queries import DIR_STAMP_KEY, FULL_SCAN_KEY
from anamnesis.search import DEFAULT_LIMIT, Hit, SearchFilters, clamp_limit
from anamnesis.store import NoteStore
from anamnesis.vectorizer import EmbedProgress, embed_pending

logger = logging.getLogger(__name__)

# Every note is stat'ed again at most this often, across all processes (see ensure_fresh).
FULL_SCAN_INTERVAL = 10.0
GIT_LOCK_TIMEOUT = 60.0
# A long-lived process looks for notes without a vector (written by other processes or pulled)
# at least this often, and at once after its own writes.
VECTOR_POLL_INTERVAL = 30.0


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


class Memory:
    """The memory of one home. Create with `open_memory`."""

    def __init__(self, config: Config, store: NoteStore, index: SearchIndex, git: GitRepo) -> None:
        self.config = config
        self.store = store
        self.index = index
        self.git = git
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
        stamp = await anyio.to_thread.run_sync(self.store.directory_stamp)
        if stamp == self._seen_stamps and quick:
            return
        stored = await self.index.get_meta(DIR_STAMP_KEY)
        walk_due = False
        if not quick:
            last_walk = float(await self.index.get_meta(FULL_SCAN_KEY) or 0)
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
        return await hybrid_search(self.index, text, filters, limit, self.semantic)

    async def list(
        self,
        filters: SearchFilters = SearchFilters(),
        limit: int | None = 20,
        cursor: str | None = None,
    ) -> Page:
        await self.ensure_fresh()
        return await self.index.list_notes(filters, clamp_limit(limit), cursor)

    async def get(self, note_id: str) -> Note:
        """The note with this id, read from its file (the truth), not from the index."""
        wanted = normalize_id(note_id)
        if not is_safe_id(wanted):
            raise NoteNotFoundError(note_id)
        path = await anyio.to_thread.run_sync(self.store.find, wanted)
        if path is None:
            await self.ensure_fresh()
            summary = await self.index.summary(wanted)
            if summary is None:
                raise NoteNotFoundError(note_id)
            path = self.config.home / summary.path
        try:
            return await anyio.to_thread.run_sync(self.store.read, path)
        except FileNotFoundError as exc:
            raise NoteNotFoundError(note_id) from exc

    async def superseded_by(self, note_id: str) -> builtins.list[str]:
        return await self.index.superseded_by(normalize_id(note_id))

    async def history(self, note_id: str, limit: int = 50) -> builtins.list[CommitInfo]:
        note = await self.get(note_id)
        if note.scope != "portable":
            return []
        name = self.store.path_for(note.id, note.type, note.scope).name
        return await self.git.note_log([f"{note_type}/{name}" for note_type in NOTE_TYPES], limit)

    # -- writing -------------------------------------------------------------------------

    async def write(self, draft: NoteDraft) -> Note:
        """Write a new note (or replace the note with `draft.note_id`), commit it, index it."""
        now = utc_now()
        note_id = normalize_id(draft.note_id) if draft.note_id else new_ulid()
        supersedes = tuple(dict.fromkeys(normalize_id(s) for s in draft.supersedes))
        if note_id in supersedes:
            raise NoteValidationError("supersedes", "a note cannot supersede itself")
        created_at = now
        if draft.note_id:
            existing = await anyio.to_thread.run_sync(self.store.find, note_id)
            if existing is not None:
                created_at = (await anyio.to_thread.run_sync(self.store.read, existing)).created_at or now
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
            if not is_safe_id(old) or await anyio.to_thread.run_sync(self.store.find, old) is None:
                raise NoteValidationError("supersedes", f"no note with id {old!r} to supersede")
        await self.save(note, f"anamnesis: write {note.type} {note.id} ({note.title[:60]})")
        return note

    async def save(self, note: Note, message: str | None = None) -> Path:
        """Write `note` as given (atomically), commit it when portable, and index it."""
        await self.save_all([note], message or f"anamnesis: update {note.type} {note.id}")
        return self.store.path_for(note.id, note.type, note.scope)

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

        def write_all() -> builtins.list[Path]:
            touched: dict[Path, None] = {}
            for done, note in enumerate(notes, start=1):
                before = self._existing_paths(note.id)
                touched.setdefault(self.store.write(note), None)
                for old in before:
                    touched.setdefault(old, None)
                if progress is not None:
                    progress(done, len(notes))
            return sorted(touched)

        touched = await anyio.to_thread.run_sync(write_all)
        await self._commit(touched, message)
        await self.index.refresh(paths=[self.store.rel(p) for p in touched])
        self._written.set()
        return touched

    async def delete(self, note_id: str) -> None:
        """Remove a note's file (history keeps it) and its index row."""
        wanted = normalize_id(note_id)
        if not is_safe_id(wanted):
            raise NoteNotFoundError(note_id)
        removed = await anyio.to_thread.run_sync(self.store.delete, wanted)
        if not removed:
            raise NoteNotFoundError(note_id)
        await self._commit(removed, f"anamnesis: delete {wanted}")
        await self.index.refresh(paths=[self.store.rel(p) for p in removed])
        self._written.set()

    def _existing_paths(self, note_id: str) -> builtins.list[Path]:
        return [p for p in self.store.candidates(note_id) if p.exists()]

    async def _commit(self, paths: Sequence[Path], message: str) -> None:
        repo_paths = [p.relative_to(self.git.path).as_posix() for p in paths if p.is_relative_to(self.git.path)]
        if not repo_paths:
            return
        async with file_lock(self.config.layout.state_dir / "git.lock", GIT_LOCK_TIMEOUT, "the git repo"):
            try:
                await self.git.commit_paths(repo_paths, message)
            except GitError:
                # A git killed mid-commit leaves index.lock behind and every later commit fails.
                # Holding our own lock, a lock file older than STALE_GIT_LOCK_AGE is such a leftover.
                if not await self.git.recover_stale_locks(STALE_GIT_LOCK_AGE):
                    raise
                await self.git.commit_paths(repo_paths, message)

    async def commit_pending(self, message: str = "anamnesis: record edits made outside Anamnesis") -> str | None:
        """Commit whatever changed in memory/ by hand; the new head, or None if nothing had."""
        async with file_lock(self.config.layout.state_dir / "git.lock", GIT_LOCK_TIMEOUT, "the git repo"):
            return await self.git.commit_all(message)

    # -- maintenance ---------------------------------------------------------------------

    async def reindex(self, full: bool = False, progress: ProgressCallback | None = None) -> RefreshReport:
        """Refresh the index from the files; `full` empties it first and reads every note."""
        if full:
            await self.index.drop_all()
        return await self._refresh_from(await anyio.to_thread.run_sync(self.store.directory_stamp), progress)

    async def _refresh_from(self, stamp: str, progress: ProgressCallback | None = None) -> RefreshReport:
        """Refresh every file and record `stamp`, read BEFORE the refresh: a change made during
        it then still differs from the record and is taken in next time."""
        report = await self.index.refresh(progress=progress)
        await self.index.set_meta({DIR_STAMP_KEY: stamp, FULL_SCAN_KEY: repr(time.time())})
        return report

    # -- vectors (semantic recall) --------------------------------------------------------

    async def load_model(self) -> str | None:
        """Load the embedding model (once); None when ready, else why search stays lexical."""
        if self.semantic is None:
            return "semantic search is turned off in config.json (search.semantic)"
        if not self.semantic.ready and self.semantic.problem is None:
            await self.semantic.load()
        return self.semantic.problem

    async def embed_pending(self, progress: EmbedProgress | None = None, *, static: bool = True) -> int:
        """Give every note without a vector one (0 when the model is off or unavailable, or
        another process of this home is embedding right now: it will do them); with `static`,
        the hooks' static vectors too (distilling the static table first if there is none)."""
        if await self.load_model() is not None or self.semantic is None or self.semantic.embedder is None:
            return 0
        lock_path = self.config.layout.state_dir / "embedding.lock"
        fd = await anyio.to_thread.run_sync(try_file_lock, lock_path)
        if fd is None:
            return 0
        try:
            return await embed_pending(self.index, self.semantic.embedder, progress, static=static)
        finally:
            release_file_lock(fd)

    async def keep_vectors_fresh(self, start: anyio.Event | None = None) -> None:
        """Run for the life of a long-lived process: load the model once `start` is set, then
        embed what lacks a vector, after each write here and every VECTOR_POLL_INTERVAL."""
        if start is not None:
            await start.wait()
        if await self.load_model() is not None:
            return
        while True:
            self._written = anyio.Event()
            try:
                await self.embed_pending()
            except AnamnesisError as exc:  # a busy index: the next round retries
                logger.info("embedding deferred: %s", exc)
            with anyio.move_on_after(VECTOR_POLL_INTERVAL):
                await self._written.wait()

    async def lend_model(self) -> None:
        """Run for the life of the service: load the model and lend it to this home's other
        processes (`model_lending`), so each Claude Code session need not load its own."""
        from anamnesis.model_lending import lend, socket_path

        path = socket_path(self.config.layout)
        if path is None or await self.load_model() is not None or self.semantic is None:
            return
        assert self.semantic.embedder is not None
        await lend(self.semantic.embedder, path)

    async def borrow_model(self) -> bool:
        """Use the model the service lends, if one answers; then this process loads none."""
        from anamnesis.model_lending import borrowed_vector, socket_path

        path = socket_path(self.config.layout)
        if self.semantic is None or path is None or not await anyio.Path(path).exists():
            return False
        if await borrowed_vector(path, "ping") is None:
            return False
        self.semantic.lender = path
        return True

    async def recall_status(self) -> dict[str, Any]:
        """What `status`, `doctor` and the dashboard say about semantic search."""
        embedded, total = await self.index.embedding_counts()
        problem: str | None
        if self.semantic is None:
            state, problem = "off", "turned off in config.json (search.semantic = false)"
        else:
            problem = self.semantic.problem
            if problem is None and not self.semantic.ready:
                problem = await anyio.to_thread.run_sync(model_problem)
            state = "unavailable" if problem else "ready" if self.semantic.ready else "available"
        lent = self.semantic is not None and self.semantic.lender is not None
        return {"state": state, "problem": problem, "embedded": embedded, "notes": total, "lent": lent}

    async def status(self) -> dict[str, Any]:
        await self.ensure_fresh()
        counts = await self.index.counts()
        dirty = await self.git.status_paths() if await self.git.is_repo() else []
        return {
            "home": str(self.config.home),
            "machine_id": self.config.machine_id,
            "index": str(self.config.layout.index_path),
            **counts,
            "git": {
                "head": await self.git.head(),
                "branch": await self.git.branch(),
                "uncommitted": len(dirty),
            },
            "hub": self.config.remote,
            "semantic": await self.recall_status(),
        }


def semantic_enabled(config: Config) -> bool:
    """config.json `search.semantic` (default true): false keeps search lexical, loads no model."""
    return config.search.semantic


def model_problem() -> str | None:
    """Why the embedding model could not load here (file missing, wrong hash, no runtime), or
    None; checks without loading it (a short-lived process must not pay 0.3 s for `status`)."""
    import importlib.util

    from anamnesis.embedding import model_file, verify
    from anamnesis.errors import ModelUnavailableError

    try:
        verify(model_file())
    except ModelUnavailableError as exc:
        return str(exc)
    for module in ("onnxruntime", "tokenizers", "numpy"):
        if importlib.util.find_spec(module) is None:
            return f"the embedding runtime is not installed: no module named {module!r}"
    return None


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
