"""Rows the index writes for note files: one read's outcome, a note's row, and the rows of a bulk load.

Kept apart from the refresh's control flow so the per-note work (run in a worker thread) reads
as plain data in, tuples out.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from anamnesis.notes import Note
from anamnesis.store import NoteFile

NOTE_COLUMNS = (
    "id, type, title, body, tags, tags_json, project, scope, machine_id, prov_source, "
    "confidence, created_at, updated_at, path, size, mtime_ns, hash"
)


@dataclass(frozen=True, slots=True)
class FileRead:
    """The outcome of reading one changed file in the worker thread."""

    file: NoteFile
    digest: str
    note: Note | None
    error: str | None


def note_row(read: FileRead) -> tuple[Any, ...]:
    """The `notes` row of a read that parsed, in `NOTE_COLUMNS` order."""
    note = read.note
    assert note is not None
    return (
        note.id,
        note.type,
        note.title,
        note.body,
        " ".join(note.tags),
        _tags_json(note.tags),
        note.project,
        read.file.scope,
        note.machine_id,
        note.prov_source,
        note.confidence,
        note.created_at,
        note.updated_at,
        read.file.rel,
        read.file.size,
        read.file.mtime_ns,
        read.digest,
    )


@functools.lru_cache(maxsize=4096)
def _tags_json(tags: tuple[str, ...]) -> str:
    """The tags as a JSON list; notes share a few tag sets, so a rebuild encodes each once."""
    return json.dumps(list(tags))


@dataclass(slots=True)
class BulkChunk:
    """The rows one chunk of files adds to an empty index, primary keys already given."""

    files: int
    notes: list[tuple[Any, ...]] = field(default_factory=list)
    tags: list[tuple[int, str]] = field(default_factory=list)
    supersessions: list[tuple[int, str]] = field(default_factory=list)
    problems: list[tuple[str, str, int, int]] = field(default_factory=list)
    cleared: list[tuple[str]] = field(default_factory=list)

    def statements(self) -> list[tuple[str, Sequence[tuple[Any, ...]]]]:
        return [
            ("DELETE FROM problems WHERE path = ?", self.cleared),
            ("INSERT OR REPLACE INTO problems VALUES (?, ?, ?, ?)", self.problems),
            (f"INSERT INTO notes(pk, {NOTE_COLUMNS}) VALUES ({', '.join('?' * 18)})", self.notes),
            ("INSERT INTO note_tags(note_pk, tag) VALUES (?, ?)", self.tags),
            ("INSERT INTO supersessions(note_pk, superseded_id) VALUES (?, ?)", self.supersessions),
        ]


class BulkRows:
    """Turns the reads of an empty index's files into rows, chunk after chunk, in file order.

    The index is empty, so a note's primary key is a counter and a duplicate id can only be one
    this load already took: neither needs a query, and the inserts need no lookups.
    """

    def __init__(self, stale_problems: bool) -> None:
        self._stale_problems = stale_problems  # problem rows of files that may parse now
        self._claimed: dict[str, str] = {}
        self._pk = 0
        self.added = 0

    def build(self, reads: list[FileRead]) -> BulkChunk:
        chunk = BulkChunk(files=len(reads))
        for read in reads:
            file, note = read.file, read.note
            if read.error is not None or note is None:
                chunk.problems.append((file.rel, read.error or "unreadable", file.size, file.mtime_ns))
                continue
            other = self._claimed.setdefault(note.id, file.rel)
            if other != file.rel:
                reason = f"duplicate id {note.id}: the same id is already used by {other}"
                chunk.problems.append((file.rel, reason, file.size, file.mtime_ns))
                continue
            self._pk += 1
            chunk.notes.append((self._pk, *note_row(read)))
            chunk.tags.extend((self._pk, tag) for tag in note.tags)
            chunk.supersessions.extend((self._pk, old) for old in note.supersedes)
            if self._stale_problems:
                chunk.cleared.append((file.rel,))
        self.added += len(chunk.notes)
        return chunk
