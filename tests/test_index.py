"""The derived SQLite index: refresh, problems, schema version, rebuild (real files, real SQLite)."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anamnesis.config import Layout
from anamnesis.errors import IndexStateError
from anamnesis.index import BULK_MIN, SCHEMA_VERSION, SearchIndex
from anamnesis.notes import NOTE_TYPES, Note, render_note
from anamnesis.queries import search
from anamnesis.search import SearchFilters
from anamnesis.store import NoteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "store")


@pytest.fixture
async def index(layout: Layout) -> AsyncIterator[SearchIndex]:
    idx = await SearchIndex.open(layout.index_path, NoteStore(layout))
    try:
        yield idx
    finally:
        await idx.aclose()


def make_note(note_id: str, **changes: object) -> Note:
    base = Note(
        id=note_id,
        type="semantic",
        title=f"Note {note_id}",
        body=f"The body of {note_id}.",
        created_at="2026-11-20T10:00:00Z",
        updated_at="2026-11-20T10:00:00Z",
    )
    return base.with_changes(**changes)


def put(layout: Layout, rel: str, content: str | bytes) -> Path:
    """Write a file straight into the store, as a user or another tool would."""
    path = layout.home / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def put_note(layout: Layout, note: Note, type_dir: str | None = None, name: str | None = None) -> Path:
    root = "memory" if note.scope == "portable" else "local"
    return put(layout, f"{root}/{type_dir or note.type}/{name or note.id}.md", render_note(note))


async def ids_found(index: SearchIndex, text: str) -> list[str]:
    return [hit.id for hit in await search(index, text, limit=50)]


def raw(index: SearchIndex, sql: str) -> list[tuple[Any, ...]]:
    """Rows straight from the database file, on a second plain connection: a look behind the API."""
    db = sqlite3.connect(index.path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


async def indexed_paths(index: SearchIndex) -> set[str]:
    return {row[0] for row in raw(index, "SELECT path FROM notes")}


# -- refresh ---------------------------------------------------------------------------------


async def test_refresh_adds_updates_and_removes_what_changed_on_disk(layout: Layout, index: SearchIndex) -> None:
    for name in ("a", "b", "c"):
        put_note(layout, make_note(name))

    first = await index.refresh()
    assert (first.scanned, first.added, first.updated, first.removed) == (3, 3, 0, 0)

    put_note(layout, make_note("a", body="rewritten with zeppelin"))
    (layout.memory_dir / "semantic" / "c.md").unlink()
    second = await index.refresh()

    assert (second.added, second.updated, second.removed) == (0, 1, 1)
    assert await ids_found(index, "zeppelin") == ["a"]
    assert await indexed_paths(index) == {"memory/semantic/a.md", "memory/semantic/b.md"}


async def test_refresh_with_nothing_changed_changes_nothing(layout: Layout, index: SearchIndex) -> None:
    put_note(layout, make_note("a"))
    await index.refresh()

    report = await index.refresh()

    assert not report.changed
    assert report.touched == 0


async def test_a_touched_file_with_the_same_content_is_not_reindexed(layout: Layout, index: SearchIndex) -> None:
    path = put_note(layout, make_note("a"))
    await index.refresh()
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    report = await index.refresh()

    assert (report.touched, report.updated) == (1, 0)
    assert not (await index.refresh()).touched  # the new mtime was recorded


async def test_same_size_edit_is_seen(layout: Layout, index: SearchIndex) -> None:
    path = put_note(layout, make_note("a", body="colour is orange"))
    await index.refresh()
    stat = path.stat()
    path.write_text(path.read_text().replace("orange", "purple"))
    assert path.stat().st_size == stat.st_size

    report = await index.refresh()

    assert report.updated == 1
    assert await ids_found(index, "purple") == ["a"]
    assert await ids_found(index, "orange") == []


async def test_refresh_of_given_paths_looks_at_those_only(layout: Layout, index: SearchIndex) -> None:
    put_note(layout, make_note("a"))
    put_note(layout, make_note("b"))

    report = await index.refresh(paths=["memory/semantic/a.md", "memory/semantic/gone.md", "outside/x.md"])

    assert report.added == 1
    assert await indexed_paths(index) == {"memory/semantic/a.md"}


async def test_refresh_of_a_removed_path_drops_its_row(layout: Layout, index: SearchIndex) -> None:
    path = put_note(layout, make_note("a"))
    await index.refresh()
    path.unlink()

    report = await index.refresh(paths=["memory/semantic/a.md"])

    assert report.removed == 1
    assert await indexed_paths(index) == set()


async def test_refresh_reports_progress_up_to_the_total(layout: Layout, index: SearchIndex) -> None:
    for i in range(7):
        put_note(layout, make_note(f"n{i}"))
    seen: list[tuple[int, int]] = []

    await index.refresh(progress=lambda done, total: seen.append((done, total)))

    assert seen[-1] == (7, 7)


# -- problems --------------------------------------------------------------------------------


async def test_broken_file_is_reported_and_skipped_until_fixed(layout: Layout, index: SearchIndex) -> None:
    put_note(layout, make_note("good"))
    broken = put(layout, "memory/semantic/broken.md", "---\ntitle: [oops\n---\nbody\n")

    report = await index.refresh()

    assert report.added == 1
    assert [(p.path, "front-matter is not valid YAML" in p.reason) for p in report.problems] == [
        ("memory/semantic/broken.md", True)
    ]
    assert (await index.refresh()).problems == report.problems  # still reported, not re-read forever

    broken.write_text(render_note(make_note("broken", body="fixed at last")))
    fixed = await index.refresh()

    assert fixed.problems == []
    assert await ids_found(index, "fixed last") == ["broken"]


async def test_removing_a_broken_file_clears_its_problem(layout: Layout, index: SearchIndex) -> None:
    broken = put(layout, "memory/semantic/broken.md", "no front matter")
    assert len((await index.refresh()).problems) == 1

    broken.unlink()

    assert (await index.refresh()).problems == []


async def test_a_note_that_breaks_leaves_search_and_is_reported(layout: Layout, index: SearchIndex) -> None:
    path = put_note(layout, make_note("a", body="armadillo"))
    await index.refresh()

    path.write_text("---\nid: a\n---\narmadillo\n")
    report = await index.refresh()

    assert [p.reason for p in report.problems] == ["front-matter has no 'type'"]
    assert await ids_found(index, "armadillo") == []


async def test_note_in_the_wrong_type_directory_is_reported(layout: Layout, index: SearchIndex) -> None:
    put_note(layout, make_note("a", type="semantic"), type_dir="episodic")

    report = await index.refresh()

    assert [(p.path, p.reason) for p in report.problems] == [
        ("memory/episodic/a.md", "type 'semantic' but in the episodic/ directory")
    ]


async def test_file_that_is_not_utf8_is_reported(layout: Layout, index: SearchIndex) -> None:
    put(layout, "memory/semantic/latin1.md", "---\nid: a\ntype: semantic\ntitle: café\n---\n".encode("latin-1"))

    report = await index.refresh()

    assert [p.reason for p in report.problems] == ["is not UTF-8 text"]


async def test_two_files_with_one_id_index_one_and_report_the_other(layout: Layout, index: SearchIndex) -> None:
    note = make_note("twin", body="walrus")
    put_note(layout, note)
    put_note(layout, note.with_changes(scope="machine-local"))  # the same file name in the other scope

    report = await index.refresh()

    assert await ids_found(index, "walrus") == ["twin"]
    assert len(report.problems) == 1
    assert report.problems[0].reason.startswith("duplicate id twin")
    assert len(await indexed_paths(index)) == 1


async def test_a_note_moved_to_another_directory_is_not_a_duplicate(layout: Layout, index: SearchIndex) -> None:
    old = put_note(layout, make_note("a", type="semantic", body="narwhal"))
    await index.refresh()

    old.unlink()
    put_note(layout, make_note("a", type="procedural", body="narwhal"))
    report = await index.refresh()

    assert report.problems == []
    assert await indexed_paths(index) == {"memory/procedural/a.md"}
    assert await ids_found(index, "narwhal") == ["a"]


# -- a store full of garbage still reindexes ---------------------------------------------------

_BROKEN_FRONT = [
    "id: [unclosed",
    "title: 'unterminated",
    "\tid: tabbed",
    "id: a\ntype: semantic\ntitle: t\n  bad: indent: here",
    "{{{",
    "- a list\n- not a mapping",
    "just a scalar",
    "id: a\ntype: semantic",  # no title
    "id: a\ntype: memo\ntitle: unknown type",
    "id: ../../escape\ntype: semantic\ntitle: t",
    "id: a\ntype: semantic\ntitle: t\nconfidence: lots",
]


@dataclass(frozen=True)
class Garbage:
    kind: str
    content: bytes


def _not_a_front_matter_start(data: bytes) -> bool:
    return not data.lstrip(b"\xef\xbb\xbf").startswith(b"---")


garbage = st.one_of(
    st.binary(max_size=300).filter(_not_a_front_matter_start).map(lambda b: Garbage("random bytes", b)),
    st.binary(min_size=1, max_size=100).map(lambda b: Garbage("binary", b"\x00\xff" + b)),
    st.just(Garbage("empty", b"")),
    st.tuples(st.sampled_from(_BROKEN_FRONT), st.text(max_size=50)).map(
        lambda t: Garbage("broken yaml", f"---\n{t[0]}\n---\n{t[1]}\n".encode())
    ),
    st.text(max_size=80)
    .filter(lambda t: _not_a_front_matter_start(t.encode()))
    .map(lambda t: Garbage("no front-matter", t.encode())),
    st.text(max_size=80).map(
        lambda t: Garbage("unclosed", f"---\nid: x\ntype: semantic\ntitle: t\n{t.replace('-', '')}".encode())
    ),
    st.just(Garbage("wrong type dir", b"")),
    st.just(Garbage("duplicate id", b"")),
)


@st.composite
def garbage_stores(draw: st.DrawFn) -> tuple[list[Note], list[tuple[str, Garbage]]]:
    good = [
        make_note(
            f"good-{i}",
            type=draw(st.sampled_from(NOTE_TYPES)),
            scope=draw(st.sampled_from(["portable", "machine-local"])),
            title=f"Good note {i}",
            body=f"findme{i} " + draw(st.text(max_size=40)).replace("\r", ""),
        )
        for i in range(draw(st.integers(0, 5)))
    ]
    bad = []
    for j, item in enumerate(draw(st.lists(garbage, max_size=10))):
        root = draw(st.sampled_from(["memory", "local"]))
        type_dir = draw(st.sampled_from(NOTE_TYPES))
        bad.append((f"{root}/{type_dir}/bad-{j}.md", item))
    return good, bad


async def _reindex_garbage_store(home: Path, good: list[Note], bad: list[tuple[str, Garbage]]) -> None:
    layout = Layout(home)
    for note in good:
        put_note(layout, note)
    expected_problems: set[str] = set()
    duplicate_groups: list[set[str]] = []
    for rel, item in bad:
        if item.kind == "wrong type dir":
            _, type_dir, name = rel.split("/")
            wrong_type = next(t for t in NOTE_TYPES if t != type_dir)
            put(layout, rel, render_note(make_note(f"wrong-{name[:-3]}", type=wrong_type)))
            expected_problems.add(rel)
        elif item.kind == "duplicate id":
            if not good:
                continue
            original = good[len(rel) % len(good)]
            root, type_dir, _ = rel.split("/")
            rel = f"{root}/{type_dir}/{original.id}.md"  # the file name is the id
            scope_root = "memory" if original.scope == "portable" else "local"
            if rel == f"{scope_root}/{original.type}/{original.id}.md":
                continue
            copy = original.with_changes(type=type_dir)  # same id and words, a valid note of its own
            put(layout, rel, render_note(copy))
            for group in duplicate_groups:
                if any(original.id in path for path in group):
                    group.add(rel)
                    break
            else:
                scope_root = "memory" if original.scope == "portable" else "local"
                duplicate_groups.append({f"{scope_root}/{original.type}/{original.id}.md", rel})
        else:
            put(layout, rel, item.content)
            expected_problems.add(rel)

    index = await SearchIndex.open(layout.index_path, NoteStore(layout))
    try:
        for full in (False, True):
            report = await (index.rebuild() if full else index.refresh())
            problems = {p.path: p.reason for p in report.problems}

            assert all(problems.values()), problems
            assert expected_problems <= set(problems)
            losers = set(problems) - expected_problems
            indexed = await indexed_paths(index)
            for group in duplicate_groups:
                assert len(group - losers) == 1, (group, problems)
                assert group - losers <= indexed
            assert losers <= set().union(*duplicate_groups)
            assert all("duplicate id" in problems[loser] for loser in losers)
            assert len(indexed) == len(good)
            for i, note in enumerate(good):
                assert [hit.id for hit in await search(index, f"findme{i}")] == [note.id]
            listed = await index.list_notes(SearchFilters(), limit=50)
            assert sorted(s.id for s in listed.notes) == sorted(n.id for n in good)
            again = await index.refresh()
            assert not again.changed
            assert again.problems == report.problems
    finally:
        await index.aclose()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(garbage_stores())
def test_store_sprinkled_with_garbage_still_reindexes_every_good_note(
    store: tuple[list[Note], list[tuple[str, Garbage]]],
) -> None:
    good, bad = store
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(_reindex_garbage_store, Path(tmp) / "home", good, bad, backend="asyncio")


# -- schema and lifecycle --------------------------------------------------------------------


def make_0_1_3_index(path: Path, user_version: int = 3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE memories(id TEXT, type TEXT, title TEXT, body TEXT, path TEXT);
        CREATE VIRTUAL TABLE memories_fts USING fts5(title, body, content='memories');
        CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
            INSERT INTO memories_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
        END;
        CREATE VIEW recent AS SELECT id FROM memories;
        INSERT INTO memories VALUES ('old', 'semantic', 'stale row', 'from the old index', 'x.md');
        """
    )
    db.execute(f"PRAGMA user_version = {user_version}")
    db.commit()
    db.close()


@pytest.mark.parametrize("user_version", [3, 1, 0, SCHEMA_VERSION + 1])
async def test_index_with_another_schema_version_is_dropped_and_rebuilt(layout: Layout, user_version: int) -> None:
    make_0_1_3_index(layout.index_path, user_version)
    put_note(layout, make_note("a", body="pelican"))

    index = await SearchIndex.open(layout.index_path, NoteStore(layout))
    try:
        report = await index.refresh()
        names = {row[0] for row in raw(index, "SELECT name FROM sqlite_master")}
        version = raw(index, "PRAGMA user_version")[0][0]
        found = await ids_found(index, "pelican")
    finally:
        await index.aclose()

    assert report.added == 1
    assert found == ["a"]
    assert version == SCHEMA_VERSION
    assert not {"memories", "memories_fts", "memories_ai", "recent"} & names


async def test_reopening_an_index_keeps_its_rows(layout: Layout) -> None:
    put_note(layout, make_note("a", body="pelican"))
    first = await SearchIndex.open(layout.index_path, NoteStore(layout))
    await first.refresh()
    await first.aclose()

    second = await SearchIndex.open(layout.index_path, NoteStore(layout))
    try:
        assert not (await second.refresh()).changed
        assert await ids_found(second, "pelican") == ["a"]
    finally:
        await second.aclose()


async def test_an_index_file_that_is_not_a_database_raises_index_state_error(layout: Layout) -> None:
    layout.home.mkdir(parents=True)
    layout.index_path.write_bytes(b"this is not a sqlite database at all" * 100)

    with pytest.raises(IndexStateError):
        await SearchIndex.open(layout.index_path, NoteStore(layout))


async def test_a_rebuild_reads_every_note_again_while_others_still_search_the_old_index(
    layout: Layout, index: SearchIndex
) -> None:
    for name in ("a", "b"):
        put_note(layout, make_note(name))
    await index.refresh()
    put_note(layout, make_note("c"))
    seen_meanwhile: list[int] = []

    def progress(done: int, total: int) -> None:  # mid-rebuild, another process reads the index
        other = sqlite3.connect(layout.index_path)
        try:
            seen_meanwhile.append(other.execute("SELECT count(*) FROM notes").fetchone()[0])
        finally:
            other.close()

    report = await index.rebuild(progress)

    assert report.added == 3
    assert seen_meanwhile == [2]  # the old index, whole: never an empty one
    assert await indexed_paths(index) == {f"memory/semantic/{name}.md" for name in "abc"}


async def test_two_connections_see_each_others_refresh(layout: Layout, index: SearchIndex) -> None:
    other = await SearchIndex.open(layout.index_path, NoteStore(layout))
    try:
        put_note(layout, make_note("a", body="capybara"))
        await other.refresh()

        assert await ids_found(index, "capybara") == ["a"]
        assert not (await index.refresh()).changed
    finally:
        await other.aclose()


async def test_index_uses_wal_so_readers_do_not_block_writers(index: SearchIndex) -> None:
    mode = raw(index, "PRAGMA journal_mode")[0][0]

    assert mode == "wal"


async def test_counts_describe_the_index(layout: Layout, index: SearchIndex) -> None:
    put_note(layout, make_note("a", type="procedural"))
    put_note(layout, make_note("b", scope="machine-local", project="github.com/acme/api"))
    put_note(layout, make_note("c", supersedes=("a",)))
    put(layout, "memory/semantic/broken.md", "broken")
    await index.refresh()

    counts = await index.counts()

    assert counts["total"] == 3
    assert counts["superseded"] == 1
    assert counts["by_type"] == {"semantic": 2, "procedural": 1}
    assert counts["by_scope"] == {"portable": 2, "machine-local": 1}
    assert counts["by_project"] == {"global": 2, "github.com/acme/api": 1}
    assert counts["problems"] == 1
    assert counts["refreshed_at"]


# -- bulk load: an empty index taking in many notes at once --------------------------------------


def _many_notes(layout: Layout, count: int) -> list[Note]:
    from anamnesis.ids import new_ulid

    notes = [
        make_note(new_ulid(), title=f"Bulk note {i}", body=f"bulk body {i} mentions zebra{i % 97} once", tags=("bulk",))
        for i in range(count)
    ]
    for note in notes:
        put_note(layout, note)
    return notes


async def test_an_empty_index_loads_many_notes_in_bulk_and_stays_consistent(layout: Layout, index: SearchIndex) -> None:
    notes = _many_notes(layout, BULK_MIN + 10)
    put(layout, "memory/semantic/broken.md", "no front matter here")
    seen: list[tuple[int, int]] = []

    report = await index.refresh(progress=lambda done, total: seen.append((done, total)))

    assert report.added == len(notes)
    assert [p.path for p in report.problems] == ["memory/semantic/broken.md"]
    assert seen[-1] == (len(notes) + 1, len(notes) + 1)
    assert (await index.diagnose()).damage is None  # FTS table and rows agree
    assert sorted(await ids_found(index, "zebra3")) == sorted(n.id for i, n in enumerate(notes) if i % 97 == 3)
    assert len(await ids_found(index, "bulk")) == 50  # every note is in the FTS table (search caps at 50)
    # The insert trigger is back: a note written afterwards is found like any other.
    late = make_note("01JD3W6Q2M8Z4T9K7B5X0R1C2V", title="Late arrival", body="a quokka appeared")
    put_note(layout, late)
    await index.refresh()
    assert await ids_found(index, "quokka") == [late.id]


async def test_a_bulk_load_cancelled_halfway_leaves_the_index_as_it_was(layout: Layout, index: SearchIndex) -> None:
    _many_notes(layout, BULK_MIN + 10)

    with anyio.CancelScope() as scope:
        await index.refresh(progress=lambda done, total: scope.cancel())

    assert scope.cancelled_caught
    assert await indexed_paths(index) == set()
    report = await index.refresh()  # and the next refresh takes everything in, trigger and all
    assert report.added == BULK_MIN + 10
    assert (await index.diagnose()).damage is None
    assert len(await ids_found(index, "zebra1")) > 0


def _contents(index: SearchIndex) -> dict[str, object]:
    """Everything a query can see, without the primary keys a load happens to give."""
    return {
        "notes": sorted(
            tuple(row)
            for row in raw(index, "SELECT id, type, title, body, tags, project, scope, path, hash FROM notes")
        ),
        "tags": sorted(
            tuple(row) for row in raw(index, "SELECT n.id, t.tag FROM note_tags t JOIN notes n ON n.pk = t.note_pk")
        ),
        "supersessions": sorted(
            tuple(row)
            for row in raw(index, "SELECT n.id, s.superseded_id FROM supersessions s JOIN notes n ON n.pk = s.note_pk")
        ),
        "problems": sorted(tuple(row) for row in raw(index, "SELECT path, reason FROM problems")),
    }


async def test_a_bulk_load_gives_the_index_that_taking_the_notes_in_a_few_at_a_time_gives(
    layout: Layout, index: SearchIndex, tmp_path: Path
) -> None:
    notes = _many_notes(layout, BULK_MIN + 10)
    newer = make_note("01JD3W6Q2M8Z4T9K7B5X0R1C2V", title="Newer", tags=("a", "b"), supersedes=(notes[0].id,))
    put_note(layout, newer)
    put_note(layout, replace(notes[1], scope="machine-local"))  # the same id in a second file
    put(layout, "memory/episodic/broken.md", "no front matter here")

    report = await index.refresh()  # empty: one bulk load

    # Of two files with one id the first scanned wins, so the other index scans in the same order.
    paths = [f.rel for f in (await index.plan()).files]

    assert report.added == len(notes) + 1
    one_at_a_time = await SearchIndex.open(tmp_path / "other.db", NoteStore(layout))
    try:
        for start in range(0, len(paths), 100):
            await one_at_a_time.refresh(paths[start : start + 100])
        assert _contents(index) == _contents(one_at_a_time)
    finally:
        await one_at_a_time.aclose()
    duplicate = [p for p in report.problems if "duplicate id" in p.reason]
    assert len(duplicate) == 1
    assert await index.superseded_by(notes[0].id) == [newer.id]


async def test_a_bulk_load_clears_the_problem_of_a_file_that_parses_now(layout: Layout, index: SearchIndex) -> None:
    broken = put(layout, "memory/semantic/01JD3W6Q2M8Z4T9K7B5X0R1C2V.md", "no front matter yet")
    await index.refresh()
    assert [p.path for p in await index.problems()] == ["memory/semantic/01JD3W6Q2M8Z4T9K7B5X0R1C2V.md"]
    _many_notes(layout, BULK_MIN)
    broken.write_text(render_note(make_note("01JD3W6Q2M8Z4T9K7B5X0R1C2V", title="Fixed at last")))

    report = await index.refresh()  # still no notes in the index: the bulk path

    assert report.added == BULK_MIN + 1
    assert report.problems == []
    assert await ids_found(index, "fixed") == ["01JD3W6Q2M8Z4T9K7B5X0R1C2V"]
