"""`Memory.read_for_edit` and `Memory.update`: a save names the version it was made from and is
refused, with both versions, when the note's file is no longer that version."""

from __future__ import annotations

import subprocess

import pytest

from anamnesis.errors import NoteChangedError
from anamnesis.memory import NO_FILE, Memory, NoteDraft
from anamnesis.notes import render_note

pytestmark = pytest.mark.anyio


def last_commit(memory: Memory) -> str:
    argv = ["git", "-C", str(memory.config.layout.memory_dir), "log", "-1", "-p", "--format=%s"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


async def test_an_update_from_the_version_on_disk_is_saved_and_committed(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Port", body="It listens on 8080."))
    seen = await memory.read_for_edit(note.id)
    assert seen is not None
    assert seen.path == f"memory/semantic/{note.id}.md"

    await memory.update(seen.note.with_changes(body="It listens on 9090."), seen.digest, "edit the port")

    assert (await memory.get(note.id)).body == "It listens on 9090."
    assert "+It listens on 9090." in last_commit(memory)
    after = await memory.read_for_edit(note.id)
    assert after is not None
    assert after.digest != seen.digest


async def test_an_update_from_a_version_changed_since_is_refused_with_both_versions(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Port", body="It listens on 8080."))
    seen = await memory.read_for_edit(note.id)
    assert seen is not None
    theirs = note.with_changes(body="The laptop says 7070.", machine_id="laptop")
    memory.note_file(note).write_text(render_note(theirs))
    mine = seen.note.with_changes(body="It listens on 9090.")

    with pytest.raises(NoteChangedError) as refused:
        await memory.update(mine, seen.digest)

    assert refused.value.yours == mine
    assert refused.value.current is not None
    assert refused.value.current.body == "The laptop says 7070."
    assert memory.note_file(note).read_text() == render_note(theirs)  # nothing overwritten
    now = await memory.read_for_edit(note.id)
    assert now is not None
    assert refused.value.current_digest == now.digest


async def test_an_update_of_a_note_deleted_since_is_refused_and_recreates_nothing(memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Soon gone", body="text"))
    seen = await memory.read_for_edit(note.id)
    assert seen is not None
    await memory.delete(note.id)

    with pytest.raises(NoteChangedError) as refused:
        await memory.update(seen.note.with_changes(body="edited"), seen.digest)

    assert refused.value.current is None
    assert refused.value.current_digest == NO_FILE
    assert not memory.note_file(note).exists()
    assert await memory.read_for_edit(note.id) is None
