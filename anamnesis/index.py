"""The derived SQLite index (aiosqlite): schema, incremental refresh, full rebuild, queries.

Nothing here is precious: the notes on disk are the truth and the index can be dropped and
rebuilt at any time. Its shape serves speed and safety under many processes at once:

- WAL, a busy timeout and short `BEGIN IMMEDIATE` transactions, one per chunk of files;
- FTS5 as an external-content table keyed by the notes table's integer primary key, so a
  delete is a rowid lookup (0.1.3 deleted by an unindexed id column: O(n) per delete);
- refresh compares size and mtime first, then a content hash, and only re-reads what changed;
  a file that does not parse is recorded in `problems` and skipped, never fatal;
- the schema version lives in `PRAGMA user_version`; any other version is dropped and rebuilt.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any, TypeVar, cast

import aiosqlite
import anyio
import anyio.to_thread

from anamnesis.errors import BusyError, IndexStateError, NoteFormatError, QueryError, UnsafePathError
from anamnesis.notes import Note
from anamnesis.queries import (
    SCHEMA_VERSION,
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
from anamnesis.store import NoteFile, NoteStore, read_regular_file

logger = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK = 500
BUSY_TIMEOUT_MS = 15_000

ProgressCallback = Callable[[int, int], None]

# Kept apart: a bulk load drops it and builds the FTS table once at the end (see `_bulk_load`).
_FTS_ON_INSERT = """CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts(rowid, title, body, tags) VALUES (new.pk, new.title, new.body, new.tags);
END;"""
BULK_MIN = 2 * CHUNK  # an empty index taking in at least this many notes loads them in bulk

_SCHEMA = f"""
CREATE TABLE notes(
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    tags TEXT NOT NULL,
    tags_json TEXT NOT NULL,
    project TEXT NOT NULL,
    scope TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    prov_source TEXT NOT NULL,
    confidence REAL NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX notes_by_time ON notes(updated_at DESC, id DESC);
CREATE INDEX notes_by_project ON notes(project, type, updated_at DESC);
CREATE TABLE note_tags(note_pk INTEGER NOT NULL, tag TEXT NOT NULL);
CREATE INDEX note_tags_by_tag ON note_tags(tag, note_pk);
CREATE INDEX note_tags_by_note ON note_tags(note_pk);
CREATE TABLE supersessions(note_pk INTEGER NOT NULL, superseded_id TEXT NOT NULL);
CREATE INDEX supersessions_by_old ON supersessions(superseded_id);
CREATE INDEX supersessions_by_note ON supersessions(note_pk);
CREATE TABLE problems(path TEXT PRIMARY KEY, reason TEXT NOT NULL,
                      size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE VIRTUAL TABLE notes_fts USING fts5(
    title, body, tags, content='notes', content_rowid='pk', tokenize='porter unicode61'
);
{_FTS_ON_INSERT}
CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
    INSERT INTO notes_fts(notes_fts, rowid, title, body, tags)
        VALUES ('delete', old.pk, old.title, old.body, old.tags);
    DELETE FROM note_tags WHERE note_pk = old.pk;
    DELETE FROM supersessions WHERE note_pk = old.pk;
    DELETE FROM note_vectors WHERE note_pk = old.pk;
END;
CREATE TRIGGER notes_au AFTER UPDATE OF title, body, tags ON notes BEGIN
    INSERT INTO notes_fts(notes_fts, rowid, title, body, tags)
        VALUES ('delete', old.pk, old.title, old.body, old.tags);
    INSERT INTO notes_fts(rowid, title, body, tags) VALUES (new.pk, new.title, new.body, new.tags);
    DELETE FROM note_vectors WHERE note_pk = old.pk;
END;
CREATE TABLE note_vectors(note_pk INTEGER PRIMARY KEY, hash TEXT NOT NULL,
                          dense BLOB NOT NULL, static BLOB);
CREATE TABLE vector_state(id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL);
INSERT INTO vector_state VALUES (1, 0);
CREATE TRIGGER vectors_ai AFTER INSERT ON note_vectors BEGIN
    UPDATE vector_state SET generation = generation + 1;
END;
CREATE TRIGGER vectors_ad AFTER DELETE ON note_vectors BEGIN
    UPDATE vector_state SET generation = generation + 1;
END;
CREATE TABLE static_pieces(piece TEXT PRIMARY KEY, weight REAL NOT NULL, vector BLOB NOT NULL) WITHOUT ROWID;
PRAGMA user_version = {SCHEMA_VERSION};
"""

_NOTE_COLUMNS = (
    "id, type, title, body, tags, tags_json, project, scope, machine_id, prov_source, "
    "confidence, created_at, updated_at, path, size, mtime_ns, hash"
)


@dataclass(frozen=True, slots=True)
class Problem:
    """A file the index could not take, and why."""

    path: str
    reason: str


@dataclass(slots=True)
class RefreshReport:
    """What one refresh did."""

    scanned: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    touched: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass(frozen=True, slots=True)
class RefreshPlan:
    """Which files differ from the index: `changed` to (re)read, `removed` rows to drop."""

    files: list[NoteFile]
    changed: list[NoteFile]
    removed: list[str]
    removed_problems: list[str]

    @property
    def in_step(self) -> bool:
        return not (self.changed or self.removed or self.removed_problems)


@dataclass(frozen=True, slots=True)
class _Known:
    pk: int
    size: int
    mtime_ns: int
    hash: str


@dataclass(frozen=True, slots=True)
class _Read:
    """The outcome of reading one changed file in the worker thread."""

    file: NoteFile
    digest: str
    note: Note | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list, newest first, and the cursor for the next (None at the end)."""

    notes: list[NoteSummary]
    next_cursor: str | None


class SearchIndex:
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
            await self._recreate(expected_old=version)

    async def _user_version(self) -> int:
        rows = await self._db.execute_fetchall("PRAGMA user_version")
        return int(next(iter(rows))[0])

    async def _recreate(self, expected_old: int | None = None) -> None:
        """Drop every object in the database and create our schema (derived data: no migrations)."""
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            if expected_old is not None and await self._user_version() == SCHEMA_VERSION:
                await db.execute("COMMIT")  # another process got here first
                return
            rows = await db.execute_fetchall(
                "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                "AND type IN ('table', 'view', 'trigger')"
            )
            objects = list(rows)
            for kind, name in objects:
                if kind in ("view", "trigger"):
                    await db.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')
            for kind, name in objects:
                if kind == "table":
                    with contextlib.suppress(sqlite3.OperationalError):  # a shadow table, gone with its FTS table
                        await db.execute(f'DROP TABLE IF EXISTS "{name}"')
            for statement in _split_sql(_SCHEMA):
                await db.execute(statement)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        logger.info("index schema created at version %s", SCHEMA_VERSION)

    async def drop_all(self) -> None:
        """Empty the index completely; the next refresh reads every note again."""
        async with self._write_lock:
            await self._recreate()

    # -- refresh -------------------------------------------------------------------------

    async def plan(self, paths: Iterable[str] | None = None) -> RefreshPlan:
        """Compare the files on disk (all, or just `paths`) with what the index holds."""
        # The index first, then the disk: a row another process adds for a file written after our
        # scan must not look like a file that was removed.
        known = await self._known()
        known_problems = await self._known_problems()
        if paths is None:
            files = await anyio.to_thread.run_sync(lambda: list(self.store.scan()))
        else:
            files = await anyio.to_thread.run_sync(self._stat_paths, list(paths))
        changed = []
        for f in files:
            row = known.get(f.rel)
            if row is not None and row.size == f.size and row.mtime_ns == f.mtime_ns:
                continue
            problem = known_problems.get(f.rel)
            if row is None and problem == (f.size, f.mtime_ns):
                continue  # still the same broken file: already reported
            changed.append(f)
        seen = {f.rel for f in files}
        scope_of_request = set(paths) if paths is not None else None
        removed = [rel for rel in known if rel not in seen and (scope_of_request is None or rel in scope_of_request)]
        removed_problems = [
            rel for rel in known_problems if rel not in seen and (scope_of_request is None or rel in scope_of_request)
        ]
        return RefreshPlan(files, changed, removed, removed_problems)

    def _stat_paths(self, rels: list[str]) -> list[NoteFile]:
        wanted = set(rels)
        files = []
        for rel in wanted:
            path = self.store.layout.home / rel
            scope = self.store.scope_of(path)
            if scope is None or not rel.endswith(".md"):
                continue
            stat = self.store.lstat(path)
            if stat is None or not S_ISREG(stat.st_mode):
                continue  # gone, or a link (never followed; doctor lists it)
            files.append(NoteFile(str(path), rel, scope, path.parent.name, stat.st_size, stat.st_mtime_ns))
        return files

    async def refresh(
        self, paths: Iterable[str] | None = None, progress: ProgressCallback | None = None
    ) -> RefreshReport:
        """Bring the index in step with the files (all, or just `paths` relative to the home)."""
        async with self._write_lock:
            plan = await self.plan(paths)
            report = RefreshReport(scanned=len(plan.files))
            total = len(plan.changed)
            if plan.removed or plan.removed_problems:
                await self._transaction(
                    [
                        ("DELETE FROM notes WHERE path = ?", [(rel,) for rel in plan.removed]),
                        ("DELETE FROM problems WHERE path = ?", [(r,) for r in plan.removed_problems]),
                    ]
                )
                report.removed = len(plan.removed)
            known = await self._known() if plan.changed else {}
            if not known and total >= BULK_MIN:
                await self._bulk_load(plan.changed, report, progress)
            else:
                done = 0
                for start in range(0, total, CHUNK):
                    chunk = plan.changed[start : start + CHUNK]
                    reads = await anyio.to_thread.run_sync(self._read_files, chunk)
                    await self._apply(reads, known, report)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            if report.changed:
                await self._transaction(
                    [
                        (
                            "INSERT OR REPLACE INTO meta(key, value) VALUES ('refreshed_at', datetime('now'))",
                            [()],
                        )
                    ]
                )
            report.problems = await self.problems()
            return report

    def _read_files(self, files: list[NoteFile]) -> list[_Read]:
        reads = []
        for f in files:
            try:
                data = read_regular_file(f.path)
            except FileNotFoundError:
                continue  # gone since the scan; the next refresh drops its row
            except UnsafePathError as exc:
                reads.append(_Read(f, "", None, str(exc)))
                continue
            except OSError as exc:
                reads.append(_Read(f, "", None, f"cannot read: {exc.strerror}"))
                continue
            digest = hashlib.blake2b(data, digest_size=16).hexdigest()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                reads.append(_Read(f, digest, None, "is not UTF-8 text"))
                continue
            try:
                note = self.store.parse_file(text, f.rel, f.scope)
            except NoteFormatError as exc:
                reads.append(_Read(f, digest, None, exc.reason))
                continue
            if note.type != f.type_dir:
                reads.append(_Read(f, digest, None, f"type {note.type!r} but in the {f.type_dir}/ directory"))
                continue
            reads.append(_Read(f, digest, note, None))
        return reads

    async def _bulk_load(self, files: list[NoteFile], report: RefreshReport, progress: ProgressCallback | None) -> None:
        """Fill an empty index (a full rebuild, a machine's first index) in one transaction.

        The FTS table is built once at the end instead of a row at a time through the insert
        trigger (0.14 s against ~0.8 s at 10k), and the next chunk is read and parsed in a worker
        thread while this one is inserted, which puts the second core to work. One transaction:
        a crash leaves the index as it was, trigger included.
        """
        send, receive = anyio.create_memory_object_stream[list[_Read]](1)

        async def read_ahead() -> None:
            async with send:
                for start in range(0, len(files), CHUNK):
                    await send.send(await anyio.to_thread.run_sync(self._read_files, files[start : start + CHUNK]))

        async with self._write_transaction() as db:
            await db.execute("DROP TRIGGER notes_ai")
            done = 0
            async with anyio.create_task_group() as tasks, receive:
                tasks.start_soon(read_ahead)
                async for reads in receive:
                    await self._write_reads(reads, {}, report)
                    done += len(reads)
                    if progress is not None:
                        progress(done, len(files))
            await db.execute("INSERT INTO notes_fts(notes_fts) VALUES ('rebuild')")
            await db.execute(_FTS_ON_INSERT)

    async def _apply(self, reads: list[_Read], known: dict[str, _Known], report: RefreshReport) -> None:
        async with self._write_transaction():
            await self._write_reads(reads, known, report)

    async def _write_reads(self, reads: list[_Read], known: dict[str, _Known], report: RefreshReport) -> None:
        """Rows for what was read: notes added or replaced, problems recorded, moved files touched."""
        touches, problems, notes = [], [], []
        for read in reads:
            row = known.get(read.file.rel)
            if read.error is None and row is not None and row.hash == read.digest:
                touches.append((read.file.size, read.file.mtime_ns, row.pk))
            elif read.error is not None:
                problems.append((read.file.rel, read.error, read.file.size, read.file.mtime_ns))
            else:
                notes.append(read)
        db = self._db
        notes = await self._without_duplicate_ids(notes, problems)
        if touches:
            await db.executemany("UPDATE notes SET size = ?, mtime_ns = ? WHERE pk = ?", touches)
        if problems:
            await db.executemany("DELETE FROM notes WHERE path = ?", [(p[0],) for p in problems])
            await db.executemany("INSERT OR REPLACE INTO problems VALUES (?, ?, ?, ?)", problems)
        if notes:
            await db.executemany("DELETE FROM problems WHERE path = ?", [(r.file.rel,) for r in notes])
            await db.executemany(
                f"INSERT OR REPLACE INTO notes({_NOTE_COLUMNS}) VALUES ({', '.join('?' * 17)})",
                [_note_row(r) for r in notes],
            )
            await db.executemany(
                "INSERT INTO note_tags(note_pk, tag) SELECT pk, ? FROM notes WHERE path = ?",
                [(tag, r.file.rel) for r in notes if r.note for tag in r.note.tags],
            )
            await db.executemany(
                "INSERT INTO supersessions(note_pk, superseded_id) SELECT pk, ? FROM notes WHERE path = ?",
                [(old, r.file.rel) for r in notes if r.note for old in r.note.supersedes],
            )
        report.touched += len(touches)
        for r in notes:
            if r.file.rel in known:
                report.updated += 1
            else:
                report.added += 1

    async def _without_duplicate_ids(self, notes: list[_Read], problems: list[tuple[Any, ...]]) -> list[_Read]:
        """Drop notes whose id another live file already has; record them as problems."""
        if not notes:
            return notes
        ids = [r.note.id for r in notes if r.note]
        existing: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = await self._db.execute_fetchall(
                f"SELECT id, path FROM notes WHERE id IN ({', '.join('?' * len(part))})", part
            )
            existing.update({row[0]: row[1] for row in rows})
        kept: list[_Read] = []
        claimed: dict[str, str] = {}
        stale = []
        for r in notes:
            assert r.note is not None
            other = claimed.get(r.note.id) or existing.get(r.note.id)
            if other is not None and other != r.file.rel:
                if other in claimed.values() or await anyio.Path(self.store.layout.home / other).exists():
                    reason = f"duplicate id {r.note.id}: the same id is already used by {other}"
                    problems.append((r.file.rel, reason, r.file.size, r.file.mtime_ns))
                    await self._db.execute("DELETE FROM notes WHERE path = ?", (r.file.rel,))
                    continue
                stale.append((other,))
            claimed[r.note.id] = r.file.rel
            kept.append(r)
        if stale:
            await self._db.executemany("DELETE FROM notes WHERE path = ?", stale)
        return kept

    async def _begin(self) -> None:
        """Start a write transaction; another writer holding on past the busy timeout is BusyError."""
        try:
            await self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise BusyError(f"the index is locked by another process ({exc})") from exc
            raise

    @asynccontextmanager
    async def _write_transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT around the block; ROLLBACK when it fails."""
        await self._begin()
        try:
            yield self._db
            await self._db.execute("COMMIT")
        except BaseException:
            with anyio.CancelScope(shield=True):  # a cancelled rebuild must still end its transaction
                await self._db.execute("ROLLBACK")
            raise

    async def _transaction(self, statements: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
        async with self._write_transaction() as db:
            for sql, rows in statements:
                if rows:
                    await db.executemany(sql, rows)

    async def _known(self) -> dict[str, _Known]:
        rows = await self._db.execute_fetchall("SELECT path, pk, size, mtime_ns, hash FROM notes")
        return {row[0]: _Known(row[1], row[2], row[3], row[4]) for row in rows}

    async def _known_problems(self) -> dict[str, tuple[int, int]]:
        rows = await self._db.execute_fetchall("SELECT path, size, mtime_ns FROM problems")
        return {row[0]: (row[1], row[2]) for row in rows}

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

    async def get_meta(self, key: str) -> str | None:
        return await self.run(meta_plan(key))

    async def set_meta(self, values: dict[str, str]) -> None:
        # Under the write lock: a background task (embedding) may be writing on this connection.
        async with self._write_lock:
            await self._transaction([("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(values.items()))])

    async def problems(self) -> list[Problem]:
        rows = await self._db.execute_fetchall("SELECT path, reason FROM problems ORDER BY path")
        return [Problem(row[0], row[1]) for row in rows]

    # -- vectors: derived from the notes like the FTS index, filled in the background ------

    async def pending_embeddings(
        self, limit: int, with_static: bool = False, max_chars: int = 2_000
    ) -> list[tuple[int, str, str]]:
        """(pk, content hash, text) of up to `limit` notes that have no vector yet (or, when
        `with_static`, no static vector), newest first."""
        missing = "v.static IS NOT NULL" if with_static else "1"
        rows = await self._db.execute_fetchall(
            "SELECT n.pk, n.hash, n.title || '. ' || substr(n.body, 1, ?) FROM notes n "
            f"WHERE NOT EXISTS (SELECT 1 FROM note_vectors v WHERE v.note_pk = n.pk AND {missing}) "
            "ORDER BY n.updated_at DESC LIMIT ?",
            (max_chars, limit),
        )
        return [(row[0], row[1], row[2]) for row in rows]

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

    async def embedding_counts(self) -> tuple[int, int]:
        """(notes with a vector, notes)."""
        rows = list(
            await self._db.execute_fetchall("SELECT (SELECT count(*) FROM note_vectors), (SELECT count(*) FROM notes)")
        )
        return int(rows[0][0]), int(rows[0][1])

    async def store_static_pieces(self, rows: Sequence[tuple[str, float, bytes]]) -> None:
        """Replace the static (distilled) table: (WordPiece piece, weight, float16 vector)."""
        async with self._write_lock, self._write_transaction() as db:
            await db.execute("DELETE FROM static_pieces")
            await db.executemany("INSERT INTO static_pieces VALUES (?, ?, ?)", rows)

    async def static_pieces(self) -> list[tuple[str, float, bytes]]:
        """The static table: (piece, weight, float16 vector), in no particular order."""
        rows = await self._db.execute_fetchall("SELECT piece, weight, vector FROM static_pieces")
        return [(row[0], float(row[1]), bytes(row[2])) for row in rows]

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Raw read access for benchmarks and diagnostics (the floor a search is compared with)."""
        return list(await self._db.execute_fetchall(sql, params))


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """SQLite's "database is locked" / "database table is locked" / SQLITE_BUSY, by message."""
    return "locked" in str(exc) or "busy" in str(exc)


def _split_sql(script: str) -> list[str]:
    """Statements of the schema script; trigger bodies contain `;` so split on `END;` too."""
    statements, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        in_trigger = text.upper().startswith("CREATE TRIGGER")
        if (in_trigger and line.strip() == "END;") or (not in_trigger and line.rstrip().endswith(";")):
            statements.append(text)
            current = []
    return statements


def _note_row(read: _Read) -> tuple[Any, ...]:
    note = read.note
    assert note is not None
    return (
        note.id,
        note.type,
        note.title,
        note.body,
        " ".join(note.tags),
        json.dumps(list(note.tags)),
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
