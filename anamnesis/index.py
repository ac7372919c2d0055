"""The derived SQLite index (aiosqlite): the connection, its lifecycle and the named queries.

Nothing here is precious: the notes on disk are the truth and the index can be dropped and
rebuilt at any time. Its shape serves speed and safety under many processes at once:

- WAL, a busy timeout and short `BEGIN IMMEDIATE` transactions, one per chunk of files;
- FTS5 as an external-content table keyed by the notes table's integer primary key, so a
  delete is a rowid lookup (0.1.3 deleted by an unindexed id column: O(n) per delete);
- refresh compares size and mtime first, then a content hash, and only re-reads what changed;
  a file that does not parse is recorded in `problems` and skipped, never fatal;
- the schema version lives in `PRAGMA user_version`; any other version is dropped and rebuilt.

The schema is in `index_schema`, the refresh machinery (`SearchIndex` inherits it) in
`index_refresh`.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite
import anyio
import anyio.to_thread

from anamnesis.errors import IndexStateError, QueryError
from anamnesis.index_refresh import (
    BULK_MIN,
    CHUNK,
    IndexRefresh,
    Problem,
    ProgressCallback,
    RefreshPlan,
    RefreshReport,
    _is_busy,
)
from anamnesis.index_schema import replace_schema
from anamnesis.queries import (
    SCHEMA_VERSION,
    STATIC_TABLE_KEY,
    SUMMARY_COLUMNS,
    NoteSummary,
    Plan,
    Rows,
    filter_sql,
    meta_plan,
    recent_with_bodies_plan,
    summary_of,
)
from anamnesis.search import SearchFilters
from anamnesis.store import NoteFile, NoteStore

logger = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 15_000

__all__ = [
    "BULK_MIN",
    "BUSY_TIMEOUT_MS",
    "CHUNK",
    "SCHEMA_VERSION",
    "Diagnosis",
    "Page",
    "Problem",
    "ProgressCallback",
    "RefreshPlan",
    "RefreshReport",
    "SearchIndex",
    "decode_cursor",
    "encode_cursor",
]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list, newest first, and the cursor for the next (None at the end)."""

    notes: list[NoteSummary]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """How the index stands against the files, for doctor; `unreadable` maps path to reason."""

    files: list[NoteFile]
    unreadable: dict[str, str]
    changed: int  # files that parse but are new or changed since the index took them in
    removed: int  # rows whose file is gone
    damage: str | None  # what SQLite's integrity checks found, or None


class SearchIndex(IndexRefresh):
    """One connection to the derived index of a store. Use `open_index`."""

    def __init__(
        self, db: aiosqlite.Connection, store: NoteStore, path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> None:
        self._db = db
        self._busy_timeout_ms = busy_timeout_ms
        self.store = store
        self.path = path
        self._write_lock = anyio.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path, store: NoteStore, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> SearchIndex:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Shielded: a connection cancelled half-open keeps aiosqlite's thread alive with no one
        # to close it, and its late reply then lands on a closed event loop.
        with anyio.CancelScope(shield=True):
            try:
                db = await aiosqlite.connect(path, isolation_level=None)
            except sqlite3.Error as exc:
                raise IndexStateError(f"cannot open the index at {path}: {exc}") from exc
        index = cls(db, store, path, busy_timeout_ms)
        try:
            await index._prepare()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await db.close()
            raise
        return index

    async def aclose(self) -> None:
        await self._db.close()

    async def _prepare(self) -> None:
        db = self._db
        await db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        pause = 0.005
        while True:
            try:
                await db.execute("PRAGMA journal_mode = WAL")
                await db.execute("PRAGMA synchronous = NORMAL")
                await db.execute("PRAGMA recursive_triggers = ON")
                version = await self._user_version()
                break
            except sqlite3.OperationalError as exc:
                # Switching a new file to WAL while other processes open it too can be refused
                # at once, without SQLite's busy handler: retry within the same budget.
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise IndexStateError(f"the index at {self.path} is unreadable: {exc}") from exc
                await anyio.sleep(pause)
                pause = min(pause * 2, 0.1)
            except sqlite3.DatabaseError as exc:
                raise IndexStateError(f"the index at {self.path} is unreadable: {exc}") from exc
        if version != SCHEMA_VERSION:
            await self._recreate()

    async def _user_version(self) -> int:
        rows = await self._db.execute_fetchall("PRAGMA user_version")
        return int(next(iter(rows))[0])

    async def _recreate(self) -> None:
        """Drop every object in the database and create our schema (derived data: no migrations)."""
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            if await self._user_version() == SCHEMA_VERSION:
                await db.execute("COMMIT")  # another process got here first
                return
            await replace_schema(db)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        logger.info("index schema created at version %s", SCHEMA_VERSION)

    # -- queries -------------------------------------------------------------------------

    async def run(self, plan: Plan[T]) -> T:
        """Drive a read plan of `anamnesis.queries` on this connection; what the plan returns."""
        try:
            query = next(plan)
            while True:
                try:
                    rows = cast(Rows, list(await self._db.execute_fetchall(query[0], query[1])))
                except sqlite3.Error as exc:
                    query = plan.throw(exc)
                else:
                    query = plan.send(rows)
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def list_notes(self, filters: SearchFilters, limit: int, cursor: str | None = None) -> Page:
        """A page of notes, newest first (`updated_at`, then id), continuing after `cursor`."""
        where, params = filter_sql(filters)
        if cursor:
            after_time, after_id = decode_cursor(cursor)
            where += " AND (n.updated_at < ? OR (n.updated_at = ? AND n.id < ?))"
            params += [after_time, after_time, after_id]
        sql = f"SELECT {SUMMARY_COLUMNS} FROM notes n WHERE 1 = 1 {where} ORDER BY n.updated_at DESC, n.id DESC LIMIT ?"
        rows = list(await self._db.execute_fetchall(sql, [*params, limit + 1]))
        notes = [summary_of(row) for row in rows[:limit]]
        next_cursor = encode_cursor(notes[-1].updated_at, notes[-1].id) if len(rows) > limit else None
        return Page(notes, next_cursor)

    async def recent_with_bodies(
        self, filters: SearchFilters, limit: int, exclude_tags: Sequence[str] = ()
    ) -> list[tuple[NoteSummary, str, float]]:
        """(summary, body, confidence) of the newest notes matching `filters`, for session context."""
        return await self.run(recent_with_bodies_plan(filters, limit, exclude_tags))

    async def summary(self, note_id: str) -> NoteSummary | None:
        rows = list(
            await self._db.execute_fetchall(f"SELECT {SUMMARY_COLUMNS} FROM notes n WHERE n.id = ?", (note_id,))
        )
        return summary_of(rows[0]) if rows else None

    async def superseded_by(self, note_id: str) -> list[str]:
        rows = await self._db.execute_fetchall(
            "SELECT n.id FROM supersessions s JOIN notes n ON n.pk = s.note_pk WHERE s.superseded_id = ?",
            (note_id,),
        )
        return [row[0] for row in rows]

    async def counts(self) -> dict[str, Any]:
        db = self._db

        async def grouped(column: str) -> dict[str, int]:
            rows = await db.execute_fetchall(
                f"SELECT {column}, count(*) FROM notes GROUP BY {column} ORDER BY count(*) DESC, {column}"
            )
            return {row[0]: row[1] for row in rows}

        total = next(iter(await db.execute_fetchall("SELECT count(*) FROM notes")))[0]
        superseded = next(
            iter(
                await db.execute_fetchall(
                    "SELECT count(*) FROM notes WHERE id IN (SELECT superseded_id FROM supersessions)"
                )
            )
        )[0]
        problems = next(iter(await db.execute_fetchall("SELECT count(*) FROM problems")))[0]
        refreshed = list(await db.execute_fetchall("SELECT value FROM meta WHERE key = 'refreshed_at'"))
        return {
            "total": total,
            "superseded": superseded,
            "by_type": await grouped("type"),
            "by_scope": await grouped("scope"),
            "by_project": await grouped("project"),
            "problems": problems,
            "refreshed_at": refreshed[0][0] if refreshed else None,
        }

    async def notes_written_by(self, machine_id: str) -> int:
        """How many portable notes `machine_id` wrote last (what the fleet view shows per machine)."""
        rows = await self._db.execute_fetchall(
            "SELECT count(*) FROM notes WHERE machine_id = ? AND scope = 'portable'", (machine_id,)
        )
        return int(next(iter(rows))[0])

    async def paths_from(self, prov_source: str) -> list[str]:
        """Paths (relative to the home) of the notes whose provenance is `prov_source`."""
        rows = await self._db.execute_fetchall("SELECT path FROM notes WHERE prov_source = ?", (prov_source,))
        return [str(row[0]) for row in rows]

    async def diagnose(self) -> Diagnosis:
        """Compare the files with the rows, parse what is not indexed yet, check the database."""
        plan = await self.plan()
        unreadable = {p.path: p.reason for p in await self.problems()}
        reads = await anyio.to_thread.run_sync(self._read_files, plan.changed)
        unreadable.update({read.file.rel: read.error for read in reads if read.error is not None})
        changed = sum(1 for read in reads if read.error is None)
        return Diagnosis(plan.files, unreadable, changed, len(plan.removed), await self._damage())

    async def _damage(self) -> str | None:
        try:
            rows = list(await self._db.execute_fetchall("PRAGMA quick_check"))
            verdict = rows[0][0] if rows else "no answer"
            if verdict != "ok":
                return str(verdict)
            await self._db.execute_fetchall("INSERT INTO notes_fts(notes_fts) VALUES('integrity-check')")
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return None

    async def get_meta(self, key: str) -> str | None:
        return await self.run(meta_plan(key))

    async def set_meta(self, values: dict[str, str]) -> None:
        # Under the write lock: a background task (embedding) may be writing on this connection.
        async with self._write_lock:
            await self._transaction([("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(values.items()))])

    # -- vectors: derived from the notes like the FTS index, filled in the background ------

    async def pending_embeddings(self, with_static: bool = False) -> list[int]:
        """The pks of the notes that have no vector yet (or, `with_static`, no static vector),
        newest first. One walk of the notes by time, about 1.4 µs a note (0.14 s at 100k), so a
        pass walks once and reads the texts batch by batch (`embedding_texts`): walking again
        for each batch made embedding a large store quadratic."""
        missing = "v.static IS NOT NULL" if with_static else "1"
        rows = await self._db.execute_fetchall(
            "SELECT n.pk FROM notes n "
            f"WHERE NOT EXISTS (SELECT 1 FROM note_vectors v WHERE v.note_pk = n.pk AND {missing}) "
            "ORDER BY n.updated_at DESC"
        )
        return [int(row[0]) for row in rows]

    async def embedding_texts(self, pks: Sequence[int], max_chars: int = 2_000) -> list[tuple[int, str, str]]:
        """(pk, content hash, the text to embed) of the notes `pks` still in the index, in that order."""
        found: dict[int, tuple[int, str, str]] = {}
        for start in range(0, len(pks), 500):
            chunk = list(pks[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            rows = await self._db.execute_fetchall(
                f"SELECT pk, hash, title || '. ' || substr(body, 1, ?) FROM notes WHERE pk IN ({marks})",
                (max_chars, *chunk),
            )
            found.update((int(row[0]), (int(row[0]), str(row[1]), str(row[2]))) for row in rows)
        return [found[pk] for pk in pks if pk in found]

    async def store_embeddings(self, rows: Sequence[tuple[int, str, bytes, bytes | None]]) -> None:
        """Store (pk, hash, dense, static) vectors; a note changed since it was read keeps none."""
        async with self._write_lock:
            await self._transaction(
                [
                    (
                        "INSERT OR REPLACE INTO note_vectors(note_pk, hash, dense, static) "
                        "SELECT pk, hash, ?, ? FROM notes WHERE pk = ? AND hash = ?",
                        [(dense, static, pk, digest) for pk, digest, dense, static in rows],
                    )
                ]
            )

    async def note_count(self) -> int:
        rows = list(await self._db.execute_fetchall("SELECT count(*) FROM notes"))
        return int(rows[0][0])

    async def embedding_counts(self) -> tuple[int, int]:
        """(notes with a vector, notes)."""
        rows = list(
            await self._db.execute_fetchall("SELECT (SELECT count(*) FROM note_vectors), (SELECT count(*) FROM notes)")
        )
        return int(rows[0][0]), int(rows[0][1])

    async def store_static_pieces(self, rows: Sequence[tuple[str, float, bytes]]) -> None:
        """Replace the static (distilled) table: (WordPiece piece, weight, float16 vector), and
        give it a new `STATIC_TABLE_KEY` meta value (what a process that kept a copy compares)."""
        async with self._write_lock, self._write_transaction() as db:
            await db.execute("DELETE FROM static_pieces")
            await db.executemany("INSERT INTO static_pieces VALUES (?, ?, ?)", rows)
            await db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (STATIC_TABLE_KEY, uuid.uuid4().hex)
            )

    async def static_pieces(self) -> list[tuple[str, float, bytes]]:
        """The static table: (piece, weight, float16 vector), in no particular order."""
        rows = await self._db.execute_fetchall("SELECT piece, weight, vector FROM static_pieces")
        return [(row[0], float(row[1]), bytes(row[2])) for row in rows]


def encode_cursor(updated_at: str, note_id: str) -> str:
    raw = json.dumps([updated_at, note_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The position a cursor names; `QueryError` for anything this module did not produce."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return value[0], value[1]
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: a forged '[[[[…'
        pass
    raise QueryError("the cursor is not one this list returned; start again without a cursor")
