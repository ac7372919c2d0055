"""The read-only questions adapters ask of a `Memory` beyond notes: counts, index health, git.

`Memory` inherits `MemoryInspect`, so doctor, the dashboard's health and fleet pages, curation,
the hooks and the sync engine ask the memory, and only `Memory` (with the index modules) holds
the store, the index and the repository.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from anamnesis.config import Config
from anamnesis.errors import NoteFormatError
from anamnesis.evaluation import EvalCase, EvalReport, GateReport, run_eval, run_gate
from anamnesis.gitrepo import GitRepo
from anamnesis.hybrid import Semantic
from anamnesis.ids import is_safe_id, normalize_id
from anamnesis.index import Diagnosis, Problem, RefreshReport, SearchIndex
from anamnesis.notes import Note
from anamnesis.queries import NoteSummary, Plan
from anamnesis.search import SearchFilters
from anamnesis.store import NoteStore

T = TypeVar("T")


class MemoryInspect:
    """Counts, index health, provenance and git facts of one home."""

    config: Config
    semantic: Semantic | None
    _store: NoteStore
    _index: SearchIndex
    _git: GitRepo

    # -- the index ---------------------------------------------------------------------------

    async def run(self, plan: Plan[T]) -> T:
        """Answer a read plan of `anamnesis.queries` (or one built from them, like `context`'s)."""
        return await self._index.run(plan)

    async def counts(self) -> dict[str, Any]:
        """Notes in the index: total, superseded, by type, scope and project; problems; last refresh."""
        return await self._index.counts()

    async def problems(self) -> list[Problem]:
        """Note files the index could not take, and why."""
        return await self._index.problems()

    async def summary(self, note_id: str) -> NoteSummary | None:
        """What the index holds about one note (no body), or None."""
        return await self._index.summary(normalize_id(note_id))

    async def recent_with_bodies(
        self, filters: SearchFilters, limit: int, exclude_tags: Sequence[str] = ()
    ) -> list[tuple[NoteSummary, str, float]]:
        """(summary, body, confidence) of the newest notes matching `filters`; `limit` -1: all."""
        return await self._index.recent_with_bodies(filters, limit, exclude_tags)

    async def notes_written_by(self, machine_id: str) -> int:
        return await self._index.notes_written_by(machine_id)

    async def notes_from(self, prov_source: str) -> list[Note]:
        """The notes whose provenance is `prov_source`, read from their files; a file gone or
        broken since the index looked is skipped (doctor reports it)."""
        paths = [self.config.home / rel for rel in await self._index.paths_from(prov_source)]

        def read_all() -> list[Note]:
            found = []
            for path in paths:
                try:
                    found.append(self._store.read(path))
                except (OSError, NoteFormatError):
                    continue
            return found

        return await anyio.to_thread.run_sync(read_all)

    async def refresh_paths(self, paths: Iterable[str]) -> RefreshReport:
        """Take in these files (relative to the home), as after a pull that changed just them."""
        return await self._index.refresh(paths=paths)

    async def diagnose(self) -> Diagnosis:
        """The index against the files, and the database's own integrity checks (for doctor)."""
        return await self._index.diagnose()

    async def evaluate(self, cases: Sequence[EvalCase], *, semantic: bool = False) -> EvalReport:
        """Recall and MRR of `cases` here: lexical, or with `semantic` the search every surface runs."""
        return await run_eval(self._index, cases, semantic=self.semantic if semantic else None)

    async def evaluate_gate(self, cases: Sequence[EvalCase], unrelated: Sequence[tuple[str, str]]) -> GateReport:
        """How the prompt hook's gate does on `cases` and on `unrelated` prompts here."""
        return await run_gate(self._index, cases, unrelated)

    # -- the files -----------------------------------------------------------------------------

    def note_exists(self, note_id: str) -> bool:
        """Whether a note with this id has a file. Blocking: call it from a worker thread."""
        wanted = normalize_id(note_id)
        return is_safe_id(wanted) and self._store.find(wanted) is not None

    async def directory_stamp(self) -> str:
        """The note directories' mtimes in one string: it changes when a note is added or removed."""
        return await anyio.to_thread.run_sync(self._store.directory_stamp)

    async def stray_files(self) -> list[Path]:
        """Markdown files outside any type directory (invisible to Anamnesis)."""
        return await anyio.to_thread.run_sync(lambda: list(self._store.stray_files()))

    async def unsafe_entries(self) -> list[str]:
        """Symbolic links and other non-regular entries in the store (never read or written through)."""
        return await anyio.to_thread.run_sync(lambda: list(self._store.unsafe_entries()))

    # -- git -----------------------------------------------------------------------------------

    async def head(self) -> str | None:
        """The commit memory/ is at, or None before the first."""
        return await self._git.head()

    async def branch(self) -> str | None:
        return await self._git.branch()

    async def uncommitted(self) -> list[tuple[str, str]]:
        """(status, path) of every change in memory/ not committed yet."""
        return await self._git.status_paths()

    async def text_at(self, sha: str, path: str) -> str:
        """A file of memory/ (path inside the repository) as commit `sha` has it; empty if none."""
        return await self._git.file_at(sha, path)

    async def commit_summary(self, rev: str) -> tuple[str, str] | None:
        """(subject, author time) of a commit, or None when this machine does not have it yet."""
        return await self._git.commit_summary(rev)

    async def ahead_behind(self, rev: str) -> tuple[int | None, int | None]:
        """(commits `rev` has that this machine lacks, commits this machine has that `rev` lacks)."""
        return await self._git.ahead_behind(rev)
