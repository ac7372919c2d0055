"""The use cases every adapter calls, through a real home: files, SQLite and git."""

from __future__ import annotations

import base64
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anamnesis.atomic import atomic_write
from anamnesis.config import Config
from anamnesis.errors import NoteNotFoundError, NoteValidationError, QueryError
from anamnesis.ids import is_ulid
from anamnesis.index import SCHEMA_VERSION, encode_cursor
from anamnesis.memory import Memory, NoteDraft, open_memory
from anamnesis.notes import Note, render_note
from anamnesis.search import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN, MAX_LIMIT, SearchFilters

pytestmark = pytest.mark.anyio

PROJECT = "github.com/acme/quotes-api"


def git(memory: Memory, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=memory.config.layout.memory_dir, capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout.strip()


def note_path(memory: Memory, note: Note) -> Path:
    return memory.note_file(note)


def by_hand(memory: Memory, note: Note) -> Path:
    """Write a note file straight to disk, as an editor or another tool would (no index, no git)."""
    path = note_path(memory, note)
    path.write_text(render_note(note), encoding="utf-8")
    return path


def hand_note(note_id: str, **changes: object) -> Note:
    base = Note(
        id=note_id,
        type="semantic",
        title=f"Hand note {note_id}",
        body="Written by hand.",
        machine_id="desktop",
        created_at="2026-11-20T10:00:00Z",
        updated_at="2026-11-20T10:00:00Z",
    )
    return base.with_changes(**changes)


async def found(memory: Memory, text: str, **filters: object) -> list[str]:
    return [hit.id for hit in await memory.search(text, SearchFilters(**filters), limit=50)]  # type: ignore[arg-type]


# -- write and get ---------------------------------------------------------------------------


async def test_written_note_is_filled_in_and_read_back_exactly(memory: Memory) -> None:
    note = await memory.write(
        NoteDraft(
            type="procedural",
            title="  Configs   over scripts ",
            body="We prefer config files.\n\n",
            project=PROJECT,
            tags=["convention", " convention ", "python"],
        )
    )

    assert is_ulid(note.id)
    assert note.title == "Configs over scripts"
    assert note.body == "We prefer config files."
    assert note.machine_id == "desktop"
    assert note.created_at == note.updated_at
    assert note.created_at.endswith("Z")
    assert note.tags == ("convention", "python")
    assert await memory.get(note.id) == note
    assert await memory.get(note.id.lower()) == note
    assert note_path(memory, note).read_text(encoding="utf-8") == render_note(note)


async def test_rewriting_a_note_keeps_its_id_and_creation_time(memory: Memory) -> None:
    first = await memory.write(NoteDraft(type="semantic", title="Database", body="We use MySQL."))

    second = await memory.write(
        NoteDraft(type="semantic", title="Database", body="We moved to Postgres.", note_id=first.id)
    )

    assert second.id == first.id
    assert second.created_at == first.created_at
    assert await memory.get(first.id) == second
    assert await found(memory, "postgres") == [first.id]
    assert await found(memory, "mysql") == []


@pytest.mark.parametrize("note_id", ["01ZZZZZZZZZZZZZZZZZZZZZZZZ", "../memory/semantic/x", "a/b", "", ".git"])
async def test_getting_an_unknown_or_unsafe_id_says_not_found(memory: Memory, note_id: str) -> None:
    with pytest.raises(NoteNotFoundError):
        await memory.get(note_id)


@pytest.mark.parametrize(
    ("draft", "field"),
    [
        (NoteDraft(type="memo", title="t", body="b"), "type"),
        (NoteDraft(type="semantic", title="   ", body="b"), "title"),
        (NoteDraft(type="semantic", title="t", body="b", scope="cloud"), "scope"),
        (NoteDraft(type="semantic", title="t", body="b", note_id="../escape"), "id"),
        (NoteDraft(type="semantic", title="t", body="b", confidence=2.0), "confidence"),
        (NoteDraft(type="semantic", title="t", body="b", supersedes=["01ZZZZZZZZZZZZZZZZZZZZZZZZ"]), "supersedes"),
        # Used to be written and staged before git refused the NUL: a retrying model made duplicates.
        (NoteDraft(type="semantic", title="a\x00b", body="b"), "title"),
        # Used to be committed as an escape the parser then refused on every machine.
        (NoteDraft(type="semantic", title="t", body="b", tags=["ok", "x\ud800"]), "tags"),
        (NoteDraft(type="semantic", title="t", body="b", project="acme\udfff"), "project"),
        (NoteDraft(type="semantic", title="t", body="b", project="p" * 100_000), "project"),
    ],
    ids=[
        *("type", "title", "scope", "id", "confidence", "supersedes"),
        *("nul", "surrogate-tag", "surrogate-project", "long"),
    ],
)
async def test_invalid_write_is_refused_and_leaves_no_trace(memory: Memory, draft: NoteDraft, field: str) -> None:
    head = await memory.head()

    with pytest.raises(NoteValidationError) as caught:
        await memory.write(draft)

    assert caught.value.field == field
    assert sorted(memory.config.home.glob("*/*/*.md")) == []
    assert await memory.head() == head


async def test_a_note_cannot_supersede_itself(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="t", body="b"))

    with pytest.raises(NoteValidationError):
        await memory.write(NoteDraft(type="semantic", title="t", body="b", note_id=note.id, supersedes=[note.id]))


async def test_changing_a_notes_type_moves_it_and_keeps_it_findable(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Release train", body="Fridays."))

    moved = await memory.write(NoteDraft(type="procedural", title="Release train", body="Fridays.", note_id=note.id))

    assert note_path(memory, moved).exists()
    assert not note_path(memory, note).exists()
    assert (await memory.get(note.id)).type == "procedural"
    assert await found(memory, "release train") == [note.id]
    assert git(memory, "ls-files", "--", "semantic", "procedural") == f"procedural/{note.id}.md"


async def test_deleted_note_is_gone_from_disk_index_and_head(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Temporary", body="ephemeral"))

    await memory.delete(note.id)

    assert await found(memory, "ephemeral") == []
    with pytest.raises(NoteNotFoundError):
        await memory.get(note.id)
    assert git(memory, "ls-files", "--", "semantic") == ""
    with pytest.raises(NoteNotFoundError):
        await memory.delete(note.id)


# -- list ------------------------------------------------------------------------------------


async def test_list_pages_newest_first_with_cursors(memory: Memory) -> None:
    days = [f"2026-11-{day:02}T10:00:00Z" for day in (3, 1, 7, 5, 2, 6, 4)]
    for i, day in enumerate(days):
        await memory.save(hand_note(f"note-{i}", created_at=day, updated_at=day))

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await memory.list(limit=3, cursor=cursor)
        seen.extend(summary.updated_at for summary in page.notes)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break

    assert pages == 3
    assert seen == sorted(days, reverse=True)


async def test_notes_updated_in_the_same_second_page_without_gaps_or_repeats(memory: Memory) -> None:
    same = "2026-11-20T10:00:00Z"
    ids = [f"same-{i}" for i in range(5)]
    for note_id in ids:
        await memory.save(hand_note(note_id, updated_at=same))

    first = await memory.list(limit=2)
    second = await memory.list(limit=2, cursor=first.next_cursor)
    third = await memory.list(limit=2, cursor=second.next_cursor)

    listed = [s.id for page in (first, second, third) for s in page.notes]
    assert listed == sorted(ids, reverse=True)
    assert third.next_cursor is None


async def test_list_filters_by_project_type_and_scope(memory: Memory) -> None:
    ours = await memory.write(NoteDraft(type="procedural", title="ours", body="b", project=PROJECT))
    mine = await memory.write(NoteDraft(type="semantic", title="mine", body="b", scope="machine-local"))
    await memory.write(NoteDraft(type="episodic", title="theirs", body="b", project="github.com/other/repo"))

    async def listed(**filters: object) -> list[str]:
        return [s.id for s in (await memory.list(SearchFilters(**filters))).notes]  # type: ignore[arg-type]

    assert await listed(projects=(PROJECT,)) == [ours.id]
    assert await listed(projects=(PROJECT, "global")) == [mine.id, ours.id]
    assert await listed(types=("semantic",)) == [mine.id]
    assert await listed(scope="machine-local") == [mine.id]


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "!!!!",
        base64.urlsafe_b64encode(b'{"updated_at": "x"}').decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'["only one"]').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe\x00garbage").decode(),
        base64.urlsafe_b64encode(b"[" * 100_000).decode(),
    ],
    ids=["plain text", "not base64", "an object", "numbers", "one value", "not utf-8", "deeply nested"],
)
async def test_forged_cursor_is_refused_with_a_query_error(memory: Memory, cursor: str) -> None:
    await memory.write(NoteDraft(type="semantic", title="t", body="b"))

    with pytest.raises(QueryError):
        await memory.list(cursor=cursor)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cursor=st.one_of(st.text(), st.binary().map(lambda b: base64.urlsafe_b64encode(b).decode())))
async def test_any_cursor_gives_a_page_or_a_query_error(memory: Memory, cursor: str) -> None:
    try:
        page = await memory.list(cursor=cursor)
    except QueryError:
        return
    assert isinstance(page.notes, list)


async def test_a_cursor_from_one_list_continues_it(memory: Memory) -> None:
    await memory.save(hand_note("b", updated_at="2026-11-02T00:00:00Z"))
    await memory.save(hand_note("a", updated_at="2026-11-01T00:00:00Z"))

    page = await memory.list(cursor=encode_cursor("2026-11-02T00:00:00Z", "b"))

    assert [s.id for s in page.notes] == ["a"]


# -- search ----------------------------------------------------------------------------------


async def test_a_word_in_the_title_ranks_above_the_same_word_in_the_body(memory: Memory) -> None:
    in_body = await memory.write(
        NoteDraft(type="semantic", title="Cluster notes", body="Staging runs on kubernetes in the lab.")
    )
    in_title = await memory.write(
        NoteDraft(type="semantic", title="Kubernetes notes", body="Staging runs on nomad in the lab.")
    )

    assert await found(memory, "kubernetes") == [in_title.id, in_body.id]


async def test_search_filters_by_project_type_and_scope(memory: Memory) -> None:
    ours = await memory.write(NoteDraft(type="procedural", title="Deploy", body="deploy daily", project=PROJECT))
    glob = await memory.write(NoteDraft(type="semantic", title="Deploy", body="deploy carefully"))
    theirs = await memory.write(
        NoteDraft(type="procedural", title="Deploy", body="deploy weekly", project="github.com/other/repo")
    )
    local = await memory.write(
        NoteDraft(type="episodic", title="Deploy", body="deploy here", scope="machine-local", project=PROJECT)
    )

    assert set(await found(memory, "deploy", projects=(PROJECT,))) == {ours.id, local.id}
    assert set(await found(memory, "deploy", projects=(PROJECT, "global"))) == {ours.id, glob.id, local.id}
    assert set(await found(memory, "deploy", types=("procedural",))) == {ours.id, theirs.id}
    assert await found(memory, "deploy", scope="machine-local") == [local.id]
    assert set(await found(memory, "deploy", scope="portable")) == {ours.id, glob.id, theirs.id}


async def test_search_filters_by_tag(memory: Memory) -> None:
    tagged = await memory.write(NoteDraft(type="semantic", title="Lint", body="ruff everywhere", tags=["python"]))
    await memory.write(NoteDraft(type="semantic", title="Lint", body="eslint everywhere", tags=["js"]))

    assert await found(memory, "lint", tags=("python",)) == [tagged.id]


async def test_strict_matches_come_first_then_relaxed_ones_fill_in(memory: Memory) -> None:
    both = await memory.write(NoteDraft(type="semantic", title="Alpha and beta", body="both words"))
    alpha = await memory.write(NoteDraft(type="semantic", title="Alpha only", body="one word"))
    beta = await memory.write(NoteDraft(type="semantic", title="Beta only", body="the other word"))
    await memory.write(NoteDraft(type="semantic", title="Gamma", body="neither"))

    hits = await memory.search("alpha beta", limit=10)

    assert [(hit.id, hit.match) for hit in hits[:1]] == [(both.id, "strict")]
    assert {hit.id for hit in hits[1:]} == {alpha.id, beta.id}
    assert {hit.match for hit in hits[1:]} == {"relaxed"}
    assert [hit.id for hit in await memory.search("alpha beta", limit=1)] == [both.id]


async def test_stopwords_in_a_question_do_not_stop_a_match(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="procedural", title="API deploys", body="Deploy the API with make."))

    hits = await memory.search("how do we deploy the api?")

    assert [(hit.id, hit.match) for hit in hits] == [(note.id, "strict")]


async def test_a_query_of_only_stopwords_still_finds_the_note_that_has_them(memory: Memory) -> None:
    hamlet = await memory.write(NoteDraft(type="semantic", title="Hamlet", body="To be or not to be."))
    await memory.write(NoteDraft(type="semantic", title="Other", body="Unrelated words entirely."))

    assert (await found(memory, "to be or not to be"))[:1] == [hamlet.id]


async def test_a_query_without_words_finds_nothing(memory: Memory) -> None:
    await memory.write(NoteDraft(type="semantic", title="Something", body="anything"))

    assert await memory.search("?! -- ***") == []


@pytest.mark.parametrize("text", ["title:x", "NEAR(a b", '"', "deploy*", "^a", "a AND OR", "\x00", "🎉"])
async def test_fts5_syntax_in_a_search_is_harmless(memory: Memory, text: str) -> None:
    await memory.write(NoteDraft(type="semantic", title="Title x", body="a b deploy"))

    await memory.search(text)


async def test_search_returns_at_most_fifty_results(memory: Memory) -> None:
    for i in range(MAX_LIMIT + 10):
        by_hand(memory, hand_note(f"common-{i:02}", body=f"a common word, number {i}"))

    assert len(await memory.search("common", limit=1000)) == MAX_LIMIT
    assert len(await memory.search("common", limit=None)) == 8
    with pytest.raises(QueryError):
        await memory.search("common", limit=0)


async def test_hits_carry_a_snippet_with_the_matched_words_marked(memory: Memory) -> None:
    note = await memory.write(
        NoteDraft(
            type="procedural",
            title="Releases",
            body="Before a release we run the full suite, then blue-green deploy to production.",
            tags=["ops"],
            project=PROJECT,
        )
    )

    [hit] = await memory.search("deploy")

    assert hit.id == note.id
    assert (hit.title, hit.type, hit.project, hit.scope, hit.tags) == (
        "Releases",
        "procedural",
        PROJECT,
        "portable",
        ("ops",),
    )
    assert f"{HIGHLIGHT_OPEN}deploy{HIGHLIGHT_CLOSE}" in hit.snippet
    assert "**deploy**" in hit.snippet_with("**", "**")
    assert hit.score > 0


async def test_superseded_note_leaves_search_and_list_but_can_still_be_read(memory: Memory) -> None:
    old = await memory.write(NoteDraft(type="semantic", title="Database", body="We use MySQL for quotes."))
    new = await memory.write(
        NoteDraft(type="semantic", title="Database", body="We use Postgres for quotes.", supersedes=[old.id])
    )

    assert await found(memory, "quotes") == [new.id]
    assert [s.id for s in (await memory.list()).notes] == [new.id]
    assert await memory.get(old.id) == old
    assert await memory.superseded_by(old.id) == [new.id]
    assert set(await found(memory, "quotes", include_superseded=True)) == {old.id, new.id}


# -- notes changed by hand -------------------------------------------------------------------


async def test_note_added_by_hand_is_found_by_next_search(memory: Memory) -> None:
    await memory.search("warm up the index")
    note = hand_note("by-hand", body="a platypus appeared")

    by_hand(memory, note)

    assert await found(memory, "platypus") == [note.id]
    assert await memory.get(note.id) == note


async def test_note_saved_by_an_editor_is_found_by_next_search(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Pets", body="We have a cat."))
    await memory.search("cat")

    # Editors save by writing a new file and renaming it over the old one.
    atomic_write(note_path(memory, note), render_note(note.with_changes(body="We have a dog.")))

    assert await found(memory, "dog") == [note.id]
    assert await found(memory, "cat") == []


def edit_in_place(path: Path, old: str, new: str) -> None:
    """Rewrite a file in place (same inode, same size), as some editors and `sed -i`-less tools do."""
    assert len(old) == len(new)
    size = path.stat().st_size
    with path.open("r+", encoding="utf-8") as handle:
        text = handle.read()
        handle.seek(0)
        handle.write(text.replace(old, new))
    assert path.stat().st_size == size


async def test_note_edited_in_place_by_hand_is_found_once_the_periodic_walk_is_due(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Pets", body="We have a cat."))
    assert await found(memory, "cat") == [note.id]

    edit_in_place(note_path(memory, note), "We have a cat.", "We have a yak.")
    # An edit in place changes no directory, so only the walk over every file (due every
    # FULL_SCAN_INTERVAL seconds, across processes) sees it: mark the last walk as long ago
    # rather than wait for it.
    db = sqlite3.connect(memory.config.layout.index_path)
    db.execute("UPDATE meta SET value = '0' WHERE key = 'full_scan_at'")
    db.commit()
    db.close()

    assert await found(memory, "yak") == [note.id]
    assert await found(memory, "cat") == []
    assert (await memory.get(note.id)).body == "We have a yak."


async def test_note_edited_in_place_by_hand_is_taken_in_by_reindex(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Pets", body="We have a cat."))
    assert await found(memory, "cat") == [note.id]
    edit_in_place(note_path(memory, note), "We have a cat.", "We have a yak.")

    report = await memory.reindex()

    assert report.updated == 1
    assert await found(memory, "yak") == [note.id]


async def test_note_file_deleted_by_hand_disappears(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Gone soon", body="a dodo"))
    assert await found(memory, "dodo") == [note.id]

    note_path(memory, note).unlink()

    assert await found(memory, "dodo") == []
    assert [s.id for s in (await memory.list()).notes] == []
    with pytest.raises(NoteNotFoundError):
        await memory.get(note.id)


async def test_broken_file_is_reported_by_status_and_does_not_stop_search(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Fine", body="an okapi"))
    (memory.config.layout.memory_dir / "semantic" / "broken.md").write_text("---\nid: [\n---\n")

    assert await found(memory, "okapi") == [note.id]
    assert (await memory.status())["problems"] == 1


# -- reindex ---------------------------------------------------------------------------------


async def test_full_reindex_reads_every_note_again(memory: Memory) -> None:
    notes = [await memory.write(NoteDraft(type="semantic", title=f"Note {i}", body="a tapir")) for i in range(3)]
    (memory.config.layout.local_dir / "episodic" / "broken.md").write_text("nonsense")

    report = await memory.reindex(full=True)

    assert report.added == 3
    assert [p.path for p in report.problems] == ["local/episodic/broken.md"]
    assert set(await found(memory, "tapir")) == {n.id for n in notes}


async def test_incremental_reindex_after_nothing_changed_does_nothing(memory: Memory) -> None:
    await memory.write(NoteDraft(type="semantic", title="Stable", body="b"))

    report = await memory.reindex()

    assert not report.changed


async def test_index_from_0_1_3_is_dropped_and_rebuilt_from_the_notes(config: Config) -> None:
    db = sqlite3.connect(config.layout.index_path)
    db.executescript(
        """
        CREATE TABLE memories(id TEXT, title TEXT, body TEXT);
        CREATE VIRTUAL TABLE memories_fts USING fts5(title, body);
        INSERT INTO memories VALUES ('x', 'stale', 'row from 0.1.3');
        PRAGMA user_version = 3;
        """
    )
    db.close()
    note = hand_note("from-0-1-3", body="an axolotl")
    path = config.layout.memory_dir / "semantic" / f"{note.id}.md"
    path.write_text(render_note(note), encoding="utf-8")

    async with open_memory(config) as memory:
        assert await found(memory, "axolotl") == [note.id]
    db = sqlite3.connect(config.layout.index_path)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()

    assert "memories" not in tables
    assert version == SCHEMA_VERSION


# -- git -------------------------------------------------------------------------------------


async def test_every_write_is_committed_with_the_machine_as_author(memory: Memory) -> None:
    first = await memory.write(NoteDraft(type="semantic", title="One", body="b"))
    await memory.write(NoteDraft(type="semantic", title="One, edited", body="b2", note_id=first.id))
    second = await memory.write(NoteDraft(type="procedural", title="Two", body="b"))
    await memory.write(NoteDraft(type="episodic", title="Three", body="b"))
    await memory.delete(second.id)

    authors = git(memory, "log", "--format=%an").splitlines()
    assert authors == ["desktop"] * 6  # four writes, one delete, and `init` before them
    assert git(memory, "status", "--porcelain") == ""
    on_disk = sorted(
        p.relative_to(memory.config.layout.memory_dir).as_posix()
        for p in memory.config.layout.memory_dir.glob("*/*.md")
    )
    assert sorted(git(memory, "ls-files", "--", "*/*.md").splitlines()) == on_disk


async def test_machine_local_notes_are_never_committed(memory: Memory) -> None:
    head = await memory.head()

    note = await memory.write(NoteDraft(type="semantic", title="Local", body="b", scope="machine-local"))

    assert await memory.head() == head
    assert not note_path(memory, note).is_relative_to(memory.config.layout.memory_dir)
    assert await memory.history(note.id) == []


async def test_history_lists_a_notes_commits_newest_first(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Evolving", body="v1"))
    await memory.write(NoteDraft(type="semantic", title="Evolving", body="v2", note_id=note.id))
    await memory.write(NoteDraft(type="procedural", title="Evolving", body="v3", note_id=note.id))

    history = await memory.history(note.id)

    assert len(history) == 3
    assert {c.author for c in history} == {"desktop"}
    assert history[-1].subject.startswith(f"anamnesis: write semantic {note.id}")


async def test_history_follows_a_type_change_with_the_path_of_each_version(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Moves", body="first"))
    await memory.write(NoteDraft(type="procedural", title="Moves", body="second", note_id=note.id))

    newest, oldest = await memory.history(note.id)

    assert newest.path == f"procedural/{note.id}.md"
    assert oldest.path == f"semantic/{note.id}.md"
    assert not newest.deleted


async def test_a_near_copy_of_a_note_has_only_its_own_history(memory: Memory) -> None:
    """`git log --follow` detects copies: a look-alike note must not inherit another's past."""
    body = "Run the database migrations before deploying the quotes service, every time, no exceptions."
    original = await memory.write(NoteDraft(type="procedural", title="Migrate before deploy", body=body))
    await memory.write(NoteDraft(type="procedural", title="Migrate before deploy", body=body, note_id=original.id))
    copy = await memory.write(NoteDraft(type="procedural", title="Migrate before deploy", body=body + " Always."))

    history = await memory.history(copy.id)

    assert len(history) == 1
    assert copy.id in history[0].subject


async def test_pending_hand_edits_are_committed_on_request(memory: Memory) -> None:
    by_hand(memory, hand_note("hand-made"))

    head = await memory.commit_pending()

    assert head is not None
    assert git(memory, "log", "-1", "--format=%an") == "desktop"
    assert await memory.commit_pending() is None


async def test_status_counts_notes_and_reports_a_clean_repo(memory: Memory) -> None:
    await memory.write(NoteDraft(type="semantic", title="A", body="b"))
    await memory.write(NoteDraft(type="procedural", title="B", body="b", scope="machine-local"))

    status = await memory.status()

    assert status["total"] == 2
    assert status["machine_id"] == "desktop"
    assert status["git"]["branch"] == "main"
    assert status["git"]["uncommitted"] == 0
    assert status["by_scope"] == {"portable": 1, "machine-local": 1}
