"""The index's read queries as plans: generators that yield `(sql, params)` and receive the rows.

A plan holds the SQL and what to make of its rows, and nothing about how they are fetched, so
one plan serves two drivers: `SearchIndex.run` (aiosqlite, for the CLI, MCP, the dashboard and
the service) and `run_sync` on a plain `sqlite3` connection, which is what lets the two context
hooks answer without importing asyncio, anyio or aiosqlite (~35 ms of every hook). A query the
database rejects is thrown back into the plan at its `yield`, so error handling stays here too.

`search` drives the search plan on an index: the one search every surface runs.

This module imports only the standard library and the value modules.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from anamnesis.errors import QueryError
from anamnesis.notes import NoteHeader
from anamnesis.search import (
    DEFAULT_LIMIT,
    HIGHLIGHT_CLOSE,
    HIGHLIGHT_OPEN,
    MAX_LIMIT,
    FtsQuery,
    Hit,
    SearchFilters,
    build_query,
    clamp_limit,
)

if TYPE_CHECKING:
    from anamnesis.index import SearchIndex

T = TypeVar("T")
Query = tuple[str, Sequence[Any]]
Rows = list[tuple[Any, ...]]
Plan = Generator[Query, Rows, T]

SCHEMA_VERSION = 103  # 0.1.3 used 1-3; ours count from 100 so the two never agree by accident
# 103: note vectors come from the int8-arithmetic model (embedding.MODEL_NAME); older ones go with the rest
# BM25 column weights: title, body, tags. A word in the title says more than one in the body.
WEIGHT_TITLE, WEIGHT_BODY, WEIGHT_TAGS = 3.0, 1.0, 2.0
SNIPPET_TOKENS = 16
# meta keys: the note directories' stamp the index was last brought in step with, and when every
# note file was last stat'ed (`Memory.ensure_fresh`; the hooks read the first without an event loop)
DIR_STAMP_KEY = "dir_stamps"
FULL_SCAN_KEY = "full_scan_at"
# meta key: a new value each time the static table is distilled (processes that keep it compare)
STATIC_TABLE_KEY = "static_table"

SUMMARY_COLUMNS = (
    "n.id, n.type, n.title, n.project, n.scope, n.tags_json, n.created_at, n.updated_at, n.machine_id, n.path"
)


@dataclass(frozen=True, slots=True)
class NoteSummary(NoteHeader):
    """What lists show of a note: no body."""

    machine_id: str
    path: str


def run_sync(connection: sqlite3.Connection, plan: Plan[T]) -> T:
    """Drive `plan` on a blocking `sqlite3` connection; what the plan returns."""
    try:
        query = next(plan)
        while True:
            try:
                rows = connection.execute(query[0], query[1]).fetchall()
            except sqlite3.Error as exc:
                query = plan.throw(exc)
            else:
                query = plan.send(rows)
    except StopIteration as stop:
        result: T = stop.value
        return result


def answer_in_step(path: Path, timeout: float, stamp: Callable[[], str], plan: Plan[T]) -> T | None:
    """`plan`'s answer on a plain read-only `sqlite3` connection to the index at `path`, or None
    when that index is of another schema or not in step with `stamp()` (the note directories'
    stamp now, `NoteStore.directory_stamp`): then the caller takes the long way. For the hooks,
    which must not pay for an event loop; `sqlite3.Error` propagates."""
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        connection.execute("PRAGMA query_only = ON")
        if connection.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return None
        if run_sync(connection, meta_plan(DIR_STAMP_KEY)) != stamp():
            return None
        return run_sync(connection, plan)
    finally:
        connection.close()


async def search(
    index: SearchIndex,
    text: str,
    filters: SearchFilters = SearchFilters(),
    limit: int | None = DEFAULT_LIMIT,
    *,
    max_limit: int = MAX_LIMIT,
) -> list[Hit]:
    """Ranked hits for `text`: strict matches first, then relaxed ones, at most `limit`.

    `max_limit` exists for benchmarks (recall@100); every user-facing caller keeps 50.
    """
    return await index.run(search_plan(text, filters, limit, max_limit))


# -- plans ------------------------------------------------------------------------------------


def search_plan(
    text: str, filters: SearchFilters = SearchFilters(), limit: int | None = DEFAULT_LIMIT, max_limit: int = MAX_LIMIT
) -> Plan[list[Hit]]:
    """Ranked hits for `text`: strict matches first, then relaxed ones, at most `limit`."""
    wanted = clamp_limit(limit, max_limit)
    query = build_query(text)
    if query is None:
        return []
    hits = yield from match_plan(query.strict, filters, wanted, "strict")
    if len(hits) < wanted and len(query.terms) > 1:
        seen = {hit.id for hit in hits}
        relaxed = yield from match_plan(query.relaxed, filters, wanted + len(hits), "relaxed")
        hits.extend(hit for hit in relaxed if hit.id not in seen)
    return hits[:wanted]


def match_plan(expression: str, filters: SearchFilters, limit: int, match: str) -> Plan[list[Hit]]:
    """Notes matching an FTS5 expression (already made safe by `search.build_query`)."""
    ranked = yield from ranked_plan(expression, filters, limit)
    return (yield from hits_plan([(pk, score, match) for pk, score in ranked], expression))


@dataclass(frozen=True, slots=True)
class Within:
    """What the caller knows of the notes a search's filters admit, without asking the index:
    which of some pks they are, and what share of the store."""

    admits: Callable[[list[int]], Sequence[bool]]
    share: float

    def fetch(self, limit: int) -> int:
        """How many FTS5 hits to rank so that `limit` of them are likely admitted."""
        return int(1.5 * limit / max(self.share, 0.01)) + 20


def ranked_plan(
    expression: str, filters: SearchFilters, limit: int, within: Within | None = None
) -> Plan[list[tuple[int, float]]]:
    """(pk, BM25 score, higher is better) of the best `limit` notes matching `expression` within
    `filters`: no snippets, which are the slow part of a deep candidate list (fusion looks at 100).

    With `within`, it ranks in FTS5 alone and keeps the admitted: joining each match to `notes`
    to test the filters was 60% of a relaxed (OR) query that matches half of a 100k store. The
    answer is the same: when fewer than `limit` of the best hits are admitted, it ranks again
    with the join.
    """
    score = f"bm25(notes_fts, {WEIGHT_TITLE}, {WEIGHT_BODY}, {WEIGHT_TAGS})"
    try:
        if within is not None:
            fetched = within.fetch(limit)
            rows = yield (
                f"SELECT rowid, {score} AS score FROM notes_fts WHERE notes_fts MATCH ? ORDER BY score LIMIT ?",
                [expression, fetched],
            )
            admitted = within.admits([int(row[0]) for row in rows])
            kept = [(int(row[0]), -float(row[1])) for row, ok in zip(rows, admitted, strict=True) if ok]
            if len(kept) >= limit or len(rows) < fetched:
                return kept[:limit]
        where, params = filter_sql(filters)
        rows = yield (
            f"SELECT n.pk, {score} AS score FROM notes_fts JOIN notes n ON n.pk = notes_fts.rowid "
            f"WHERE notes_fts MATCH ? {where} ORDER BY score LIMIT ?",
            [expression, *params, limit],
        )
    except sqlite3.OperationalError as exc:
        raise QueryError(f"search expression rejected: {exc}") from exc
    return [(int(row[0]), -float(row[1])) for row in rows]


@dataclass(frozen=True, slots=True)
class Candidates:
    """The lexical candidates fusion starts from: BM25 by pk, strict (AND) matches first in `order`."""

    scores: dict[int, float]
    strict: frozenset[int]
    order: list[int]


def candidates_plan(
    query: FtsQuery, filters: SearchFilters, depth: int, within: Within | None = None
) -> Plan[Candidates]:
    """The strict and the relaxed top `depth` of `query`, without snippets (`within`: see
    `ranked_plan`)."""
    strict = yield from ranked_plan(query.strict, filters, depth, within)
    relaxed = (yield from ranked_plan(query.relaxed, filters, depth, within)) if len(query.terms) > 1 else []
    scores = dict(relaxed)
    scores.update(strict)
    strict_pks = frozenset(pk for pk, _ in strict)
    order = [pk for pk, _ in strict] + [pk for pk, _ in relaxed if pk not in strict_pks]
    return Candidates(scores, strict_pks, order)


def hits_plan(ranked: Sequence[tuple[int, float, str]], expression: str | None) -> Plan[list[Hit]]:
    """`Hit`s for (pk, score, match) in this order; snippets highlight `expression`'s words, and a
    note that does not match it (found by meaning alone) shows the start of its body."""
    if not ranked:
        return []
    pks = [pk for pk, _, _ in ranked]
    marks = ", ".join("?" * len(pks))
    rows = yield (f"SELECT n.pk, {SUMMARY_COLUMNS}, substr(n.body, 1, 200) FROM notes n WHERE n.pk IN ({marks})", pks)
    by_pk = {row[0]: row for row in rows}
    snippets: dict[int, str] = {}
    if expression is not None:
        snippet_rows = yield (
            f"SELECT rowid, snippet(notes_fts, 1, '{HIGHLIGHT_OPEN}', '{HIGHLIGHT_CLOSE}', '…', "
            f"{SNIPPET_TOKENS}) FROM notes_fts WHERE notes_fts MATCH ? AND rowid IN ({marks})",
            [expression, *pks],
        )
        snippets = {row[0]: " ".join(str(row[1]).split()) for row in snippet_rows}
    hits = []
    for pk, score, match in ranked:
        row = by_pk.get(pk)
        if row is None:
            continue  # removed since it was ranked
        snippet = snippets.get(pk) or _opening(str(row[11]))
        hits.append(
            Hit(
                id=row[1],
                type=row[2],
                title=row[3],
                project=row[4],
                scope=row[5],
                tags=tuple(json.loads(row[6])),
                created_at=row[7],
                updated_at=row[8],
                score=float(f"{score:.4g}"),
                snippet=snippet,
                match=match,
            )
        )
    return hits


def _opening(body: str) -> str:
    words = body.split()
    return " ".join(words[:SNIPPET_TOKENS]) + ("…" if len(words) > SNIPPET_TOKENS else "")


def scope_plan(filters: SearchFilters) -> Plan[tuple[list[int], int]]:
    """The pks of every note `filters` admit (the set a vector search ranks within), and how
    many notes the index holds."""
    where, params = filter_sql(filters)
    rows = yield (f"SELECT n.pk FROM notes n WHERE 1 = 1 {where}", params)
    total = yield ("SELECT count(*) FROM notes", ())
    return [int(row[0]) for row in rows], int(total[0][0])


def term_notes_plan(terms: Sequence[str]) -> Plan[list[str | None]]:
    """The pks of the notes holding each term, as comma-separated text (None: no note), one
    FTS5 doclist walk each and no join: the caller counts them within its scope. Joining every
    match to `notes` to test the filters cost about 2 µs a row (10-300 ms for a word in most
    notes of the store); this costs about a tenth of that."""
    if not terms:
        return []
    walk = "(SELECT group_concat(rowid) FROM notes_fts WHERE notes_fts MATCH ?)"
    values = ['"' + term.replace('"', '""') + '"' for term in terms]
    rows = yield ("SELECT " + ", ".join([walk] * len(terms)), values)
    return [None if value is None else str(value) for value in rows[0]]


def terms_matched_plan(terms: Sequence[str], pks: Sequence[int]) -> Plan[dict[int, int]]:
    """How many of `terms` each of the notes `pks` contains (one FTS5 statement)."""
    if not terms or not pks:
        return {}
    marks = ", ".join("?" * len(pks))
    parts: list[str] = []
    params: list[Any] = []
    for term in terms:
        parts.append(f"SELECT rowid FROM notes_fts WHERE notes_fts MATCH ? AND rowid IN ({marks})")
        params.extend(['"' + term.replace('"', '""') + '"', *pks])
    rows = yield (f"SELECT rowid, count(*) FROM ({' UNION ALL '.join(parts)}) GROUP BY rowid", params)
    return {int(row[0]): int(row[1]) for row in rows}


def index_stamp_plan() -> Plan[tuple[int, int, int]]:
    """(vector generation, data version, this connection's changes): equal stamps, same index."""
    rows = yield (
        "SELECT (SELECT generation FROM vector_state), (SELECT data_version FROM pragma_data_version()), "
        "total_changes()",
        (),
    )
    return int(rows[0][0] or 0), int(rows[0][1]), int(rows[0][2])


def vector_keys_plan(known_generation: int | None) -> Plan[tuple[int, Rows | None]]:
    """The vectors' generation, and (pk, content hash) of every vector when it is not
    `known_generation`: enough to see which vectors came, went or changed since."""
    rows = yield ("SELECT generation FROM vector_state", ())
    generation = int(rows[0][0]) if rows else 0
    if generation == known_generation:
        return generation, None
    keys = yield ("SELECT note_pk, hash FROM note_vectors", ())
    return generation, keys


def dense_vectors_plan(pks: Sequence[int]) -> Plan[Rows]:
    """(pk, hash, dense blob) of the vectors of `pks` (at most 500: one `IN` list)."""
    marks = ", ".join("?" * len(pks))
    return (yield (f"SELECT note_pk, hash, dense FROM note_vectors WHERE note_pk IN ({marks})", list(pks)))


def dense_vectors_page_plan(after: int, limit: int) -> Plan[Rows]:
    """(pk, hash, dense blob) of up to `limit` vectors whose pk is above `after`, by pk: every
    vector a page at a time, so a first load never holds all the blobs at once (77 MB at 100k)."""
    return (
        yield (
            "SELECT note_pk, hash, dense FROM note_vectors WHERE note_pk > ? ORDER BY note_pk LIMIT ?",
            (after, limit),
        )
    )


def recent_with_bodies_plan(
    filters: SearchFilters, limit: int, exclude_tags: Sequence[str] = ()
) -> Plan[list[tuple[NoteSummary, str, float]]]:
    """(summary, body, confidence) of the newest notes matching `filters`, for session context."""
    where, params = filter_sql(filters)
    for tag in exclude_tags:
        where += " AND n.pk NOT IN (SELECT note_pk FROM note_tags WHERE tag = ?)"
        params.append(tag)
    rows = yield (
        f"SELECT {SUMMARY_COLUMNS}, n.body, n.confidence FROM notes n WHERE 1 = 1 {where} "
        "ORDER BY n.updated_at DESC, n.id DESC LIMIT ?",
        [*params, limit],
    )
    return [(summary_of(row), row[10], float(row[11])) for row in rows]


def meta_plan(key: str) -> Plan[str | None]:
    rows = yield ("SELECT value FROM meta WHERE key = ?", (key,))
    return str(rows[0][0]) if rows else None


# -- pieces -----------------------------------------------------------------------------------


def filter_sql(filters: SearchFilters) -> tuple[str, list[Any]]:
    """The `AND …` conditions on `notes n` for `filters`, and their parameters."""
    where, params = "", []  # type: ignore[var-annotated]
    if filters.projects:
        where += f" AND n.project IN ({', '.join('?' * len(filters.projects))})"
        params.extend(filters.projects)
    if filters.types:
        where += f" AND n.type IN ({', '.join('?' * len(filters.types))})"
        params.extend(filters.types)
    if filters.scope:
        where += " AND n.scope = ?"
        params.append(filters.scope)
    for tag in filters.tags:
        where += " AND n.pk IN (SELECT note_pk FROM note_tags WHERE tag = ?)"
        params.append(tag)
    if not filters.include_superseded:
        where += " AND NOT EXISTS (SELECT 1 FROM supersessions s WHERE s.superseded_id = n.id)"
    return where, params


def summary_of(row: Sequence[Any]) -> NoteSummary:
    """A `NoteSummary` from the first ten columns of a row selected with SUMMARY_COLUMNS."""
    return NoteSummary(
        id=row[0],
        type=row[1],
        title=row[2],
        project=row[3],
        scope=row[4],
        tags=tuple(json.loads(row[5])),
        created_at=row[6],
        updated_at=row[7],
        machine_id=row[8],
        path=row[9],
    )
