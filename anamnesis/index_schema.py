"""The derived index's SQLite schema: tables, FTS5, triggers and the schema version.

Derived data has no migrations: `SearchIndex` drops every object and runs this script again
whenever `PRAGMA user_version` differs from `SCHEMA_VERSION`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING

from anamnesis.queries import SCHEMA_VERSION

if TYPE_CHECKING:
    import aiosqlite

# Kept apart: a bulk load drops it and builds the FTS table once at the end (see `_bulk_load`).
_FTS_ON_INSERT = """CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts(rowid, title, body, tags) VALUES (new.pk, new.title, new.body, new.tags);
END;"""

# Indexes a bulk load drops and builds again at the end (name, what it indexes).
SECONDARY_INDEXES = (
    ("notes_by_time", "notes(updated_at DESC, id DESC)"),
    ("notes_by_project", "notes(project, type, updated_at DESC)"),
    ("note_tags_by_tag", "note_tags(tag, note_pk)"),
    ("note_tags_by_note", "note_tags(note_pk)"),
    ("supersessions_by_old", "supersessions(superseded_id)"),
    ("supersessions_by_note", "supersessions(note_pk)"),
)
_INDEX_STATEMENTS = "\n".join(f"CREATE INDEX {name} ON {definition};" for name, definition in SECONDARY_INDEXES)

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
CREATE TABLE note_tags(note_pk INTEGER NOT NULL, tag TEXT NOT NULL);
CREATE TABLE supersessions(note_pk INTEGER NOT NULL, superseded_id TEXT NOT NULL);
{_INDEX_STATEMENTS}
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


async def replace_schema(db: aiosqlite.Connection) -> None:
    """Drop every table, view and trigger and create ours, inside the caller's transaction.

    The vectors' generation carries on from the old index's: a long-lived process that kept
    vectors compares generations, and one that restarted at 0 could climb back to the number
    it holds while the pks now belong to other notes."""
    rows = await db.execute_fetchall(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND type IN ('table', 'view', 'trigger')"
    )
    objects = list(rows)
    generation = 0
    if ("table", "vector_state") in objects:
        with contextlib.suppress(sqlite3.OperationalError):  # an older schema's table
            found = list(await db.execute_fetchall("SELECT max(generation) FROM vector_state"))
            generation = int(found[0][0] or 0) if found else 0
    for kind, name in objects:
        if kind in ("view", "trigger"):
            await db.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')
    for kind, name in objects:
        if kind == "table":
            with contextlib.suppress(sqlite3.OperationalError):  # a shadow table, gone with its FTS table
                await db.execute(f'DROP TABLE IF EXISTS "{name}"')
    for statement in _split_sql(_SCHEMA):
        await db.execute(statement)
    await db.execute("UPDATE vector_state SET generation = ?", (generation + 1,))
