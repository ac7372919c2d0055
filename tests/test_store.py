"""The notes on disk: paths, atomic writes, scans, moves and deletes, with real files."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from anamnesis.atomic import atomic_write
from anamnesis.config import Layout
from anamnesis.errors import NoteValidationError
from anamnesis.ids import new_ulid
from anamnesis.notes import Note, parse_note, render_note
from anamnesis.store import NoteStore
from tests.conftest import both_backends


@pytest.fixture
def store(tmp_path: Path) -> NoteStore:
    return NoteStore(Layout(tmp_path / "anamnesis"))


def make_note(**changes: object) -> Note:
    base = Note(
        id=new_ulid(),
        type="semantic",
        title="Postgres is the system of record",
        body="We chose Postgres over Mongo.",
        created_at="2026-11-20T10:00:00Z",
        updated_at="2026-11-20T10:00:00Z",
    )
    return base.with_changes(**changes)


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_note_is_written_at_scope_type_id_path_and_reads_back(store: NoteStore) -> None:
    note = make_note()

    path = store.write(note)

    assert path == store.layout.memory_dir / "semantic" / f"{note.id}.md"
    assert path.read_text(encoding="utf-8") == render_note(note)
    assert store.read(path) == note
    assert store.find(note.id) == path


def test_machine_local_note_is_written_outside_the_synced_repo(store: NoteStore) -> None:
    note = make_note(scope="machine-local")

    path = store.write(note)

    assert path == store.layout.local_dir / "semantic" / f"{note.id}.md"
    assert not path.is_relative_to(store.layout.memory_dir)


def test_writes_leave_no_temporary_files(store: NoteStore) -> None:
    note = make_note()
    for i in range(5):
        store.write(note.with_changes(body=f"version {i}"))

    assert files_under(store.layout.home) == [f"memory/semantic/{note.id}.md"]
    assert store.read(store.layout.memory_dir / "semantic" / f"{note.id}.md").body == "version 4"


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "notes" / "a.md"
    target.mkdir(parents=True)  # a directory where the file should go: the final rename fails
    (target / "keep").write_text("old")

    with pytest.raises(IsADirectoryError):
        atomic_write(target, "new content")

    assert files_under(tmp_path / "notes") == ["a.md/keep"]


def test_atomic_write_replaces_the_file_in_one_step(tmp_path: Path) -> None:
    target = tmp_path / "notes" / "a.md"
    target.parent.mkdir()
    target.write_text("old")
    inode_before = target.stat().st_ino

    atomic_write(target, "new")

    assert target.read_text() == "new"
    assert target.stat().st_ino != inode_before  # a rename, never a truncate-and-write


@pytest.mark.parametrize(
    "note_id", ["../x", "a/b", "", ".hidden", "..", "/etc/passwd", "a\\b", "a\x00b", "x/../../y", "-rf", "ü"]
)
def test_ids_that_could_escape_the_store_are_refused(store: NoteStore, note_id: str) -> None:
    with pytest.raises(NoteValidationError) as caught:
        store.path_for(note_id, "semantic", "portable")
    assert caught.value.field == "id"

    with pytest.raises(NoteValidationError):
        store.write(make_note(id=note_id))

    assert not store.layout.home.exists()


@pytest.mark.parametrize("note_type", ["../semantic", "semantic/..", "", "notes", "Semantic"])
def test_types_that_are_not_a_note_type_are_refused(store: NoteStore, note_type: str) -> None:
    with pytest.raises(NoteValidationError) as caught:
        store.path_for("abc", note_type, "portable")

    assert caught.value.field == "type"


def test_unknown_scope_is_refused(store: NoteStore) -> None:
    with pytest.raises(NoteValidationError) as caught:
        store.path_for("abc", "semantic", "../../tmp")

    assert caught.value.field == "scope"


def test_changing_a_notes_type_moves_its_file(store: NoteStore) -> None:
    note = make_note(type="semantic")
    old_path = store.write(note)

    new_path = store.write(note.with_changes(type="procedural"))

    assert new_path == store.layout.memory_dir / "procedural" / f"{note.id}.md"
    assert not old_path.exists()
    assert files_under(store.layout.home) == [f"memory/procedural/{note.id}.md"]


def test_changing_a_notes_scope_moves_it_out_of_the_synced_repo(store: NoteStore) -> None:
    note = make_note()
    store.write(note)

    store.write(note.with_changes(scope="machine-local"))

    assert files_under(store.layout.home) == [f"local/semantic/{note.id}.md"]


def test_directory_decides_the_scope_over_the_front_matter(store: NoteStore) -> None:
    note = make_note(scope="portable")
    path = store.layout.local_dir / "semantic" / f"{note.id}.md"
    atomic_write(path, render_note(note))

    assert store.read(path).scope == "machine-local"


def test_delete_removes_every_copy_of_a_note(store: NoteStore) -> None:
    note = make_note()
    store.write(note)
    stray_copy = store.layout.local_dir / "episodic" / f"{note.id}.md"
    atomic_write(stray_copy, render_note(note.with_changes(type="episodic")))

    removed = store.delete(note.id)

    assert len(removed) == 2
    assert store.find(note.id) is None
    assert store.delete(note.id) == []


def test_scan_sees_notes_in_type_directories_only(store: NoteStore) -> None:
    first, second = make_note(), make_note(type="episodic", scope="machine-local")
    store.write(first)
    store.write(second)
    semantic = store.layout.memory_dir / "semantic"
    (semantic / ".draft.md").write_text("hidden editor file")
    (semantic / f".{first.id}.md.abc.tmp").write_text("a temp file mid-write")
    (semantic / "notes.txt").write_text("not markdown")
    (semantic / "image.png").write_bytes(b"\x89PNG")
    (semantic / "folder.md").mkdir()
    (semantic / "link.md").symlink_to(store.layout.memory_dir / "semantic" / f"{first.id}.md")
    (store.layout.memory_dir / "README.md").write_text("# readme")
    (store.layout.memory_dir / "drafts").mkdir()
    (store.layout.memory_dir / "drafts" / "idea.md").write_text("stray")
    (store.layout.memory_dir / ".git").mkdir()
    (store.layout.memory_dir / ".git" / "x.md").write_text("git internals")

    scanned = {f.rel: f for f in store.scan()}

    assert sorted(scanned) == sorted([f"memory/semantic/{first.id}.md", f"local/episodic/{second.id}.md"])
    local = scanned[f"local/episodic/{second.id}.md"]
    assert (local.scope, local.type_dir) == ("machine-local", "episodic")
    stat = Path(local.path).stat()
    assert (local.size, local.mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def test_markdown_outside_type_directories_is_reported_as_stray(store: NoteStore) -> None:
    store.write(make_note())
    (store.layout.memory_dir / "README.md").write_text("# readme")
    (store.layout.memory_dir / "loose.md").write_text("a note dropped at the top")
    (store.layout.memory_dir / "drafts").mkdir()
    (store.layout.memory_dir / "drafts" / "idea.md").write_text("stray")
    (store.layout.memory_dir / ".git").mkdir()
    (store.layout.memory_dir / ".git" / "x.md").write_text("git internals")

    strays = sorted(p.relative_to(store.layout.home).as_posix() for p in store.stray_files())

    assert strays == ["memory/drafts/idea.md", "memory/loose.md"]


def test_scan_of_a_missing_store_finds_nothing(store: NoteStore) -> None:
    assert list(store.scan()) == []
    assert list(store.stray_files()) == []


@both_backends
@pytest.mark.anyio
async def test_concurrent_writes_of_one_note_leave_one_whole_file(store: NoteStore) -> None:
    note = make_note()
    versions = [note.with_changes(body=f"version {i} " + "x" * 5_000) for i in range(20)]

    async with anyio.create_task_group() as tg:
        for version in versions:
            tg.start_soon(anyio.to_thread.run_sync, store.write, version)

    path = store.layout.memory_dir / "semantic" / f"{note.id}.md"
    assert parse_note(path.read_text(encoding="utf-8")) in versions
    assert files_under(store.layout.home) == [f"memory/semantic/{note.id}.md"]
