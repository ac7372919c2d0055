"""The same note changed on two machines between syncs, over the real SSH hub: nothing is lost,
nothing gets stuck, and no conflict marker reaches a file, a commit or the hub."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from anamnesis.memory import NoteDraft, open_memory
from anamnesis.notes import Note, parse_note
from tests.hubserver import Hub, Machine, make_machine

pytestmark = pytest.mark.anyio
BODY = "Release steps.\n\nTag the commit.\n\nBuild the wheel.\n\nPublish to the index."


@pytest.fixture
async def pair(tmp_path: Path, hub: Hub) -> tuple[Machine, Machine, Note]:
    """Two synced machines sharing one note."""
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    shared = await laptop.write("Release process", BODY, type="procedural", tags=["release"])
    await laptop.sync()
    await desktop.sync()
    return laptop, desktop, shared


async def edit(machine: Machine, note: Note, body: str, tags: tuple[str, ...] | None = None) -> None:
    async with open_memory(machine.config) as memory:
        await memory.write(
            NoteDraft(type=note.type, title=note.title, body=body, tags=tags or note.tags, note_id=note.id)
        )


async def delete(machine: Machine, note: Note) -> None:
    async with open_memory(machine.config) as memory:
        await memory.delete(note.id)


def notes(machine: Machine) -> list[Note]:
    return [parse_note(text) for text in machine.note_files().values()]


async def hub_history(hub: Hub) -> bytes:
    return (await anyio.run_process(["git", "--git-dir", str(hub.repo()), "log", "-p", "--all"])).stdout


async def test_edits_to_different_parts_of_one_note_merge_on_both_machines(pair: tuple[Machine, Machine, Note]) -> None:
    laptop, desktop, shared = pair
    await edit(laptop, shared, BODY.replace("Tag the commit.", "Tag the commit (signed)."))
    await edit(
        desktop,
        shared,
        BODY.replace("Publish to the index.", "Publish to the index, then announce."),
        tags=("release", "ci"),
    )
    await laptop.sync()
    report = await desktop.sync()
    assert report.conflicts == []
    await laptop.sync()
    for machine in (laptop, desktop):
        (merged,) = notes(machine)
        assert "Tag the commit (signed)." in merged.body
        assert "then announce." in merged.body
        assert merged.tags == ("release", "ci")
    assert await laptop.tree() == await desktop.tree()


async def test_the_same_lines_edited_on_two_machines_leave_both_versions_on_both(
    hub: Hub, pair: tuple[Machine, Machine, Note]
) -> None:
    laptop, desktop, shared = pair
    await edit(laptop, shared, BODY.replace("Build the wheel.", "Build the wheel with uv."))
    await edit(desktop, shared, BODY.replace("Build the wheel.", "Build the wheel with hatch."))
    await laptop.sync()
    report = await desktop.sync()
    assert len(report.conflicts) == 1
    conflict = report.conflicts[0]
    assert conflict.note_id == shared.id
    await laptop.sync()
    for machine in (laptop, desktop):
        by_id = {n.id: n for n in notes(machine)}
        assert set(by_id) == {shared.id, conflict.copy_id}
        bodies = {n.body for n in by_id.values()}
        assert any("with uv" in b for b in bodies)
        assert any("with hatch" in b for b in bodies)
        copy = by_id[conflict.copy_id or ""]
        assert copy.extra["conflict_of"] == shared.id
        assert "conflict" in copy.tags
        assert "conflict" not in by_id[shared.id].tags
    assert await laptop.tree() == await desktop.tree()
    assert b"<<<<<<<" not in await hub_history(hub)
    for machine in (laptop, desktop):
        assert "<<<<<<<" not in await machine.git("log", "-p", "--all")

    # after the conflict, later notes still reach the other machine, both ways
    await laptop.write("After the conflict", "laptop keeps syncing")
    await desktop.write("Also after", "desktop keeps syncing")
    await laptop.sync()
    await desktop.sync()
    await laptop.sync()
    assert {n.title for n in notes(laptop)} == {n.title for n in notes(desktop)}
    assert {"After the conflict", "Also after"} <= {n.title for n in notes(laptop)}


async def test_an_edit_against_a_delete_keeps_the_edit_on_both_machines(pair: tuple[Machine, Machine, Note]) -> None:
    laptop, desktop, shared = pair
    await delete(laptop, shared)
    await edit(desktop, shared, BODY + "\n\nEdited while the laptop deleted it.")
    await laptop.sync()
    report = await desktop.sync()
    assert report.kept_edits == [f"procedural/{shared.id}.md"]
    await laptop.sync()
    for machine in (laptop, desktop):
        (kept,) = notes(machine)
        assert kept.id == shared.id
        assert "Edited while the laptop deleted it." in kept.body
    await laptop.write("Next note", "still syncing")
    await laptop.sync()
    await desktop.sync()
    assert {n.title for n in notes(desktop)} == {"Release process", "Next note"}


async def test_a_delete_that_syncs_second_still_loses_to_the_edit(pair: tuple[Machine, Machine, Note]) -> None:
    laptop, desktop, shared = pair
    await edit(laptop, shared, BODY + "\n\nEdited first.")
    await delete(desktop, shared)
    await laptop.sync()
    await desktop.sync()
    await laptop.sync()
    for machine in (laptop, desktop):
        (kept,) = notes(machine)
        assert kept.body.endswith("Edited first.")


async def test_machines_appending_to_one_note_at_once_merge_without_conflict_copies(tmp_path: Path, hub: Hub) -> None:
    """Several machines append a line to the same note every round and all sync at once."""
    machines = [await make_machine(tmp_path, f"m{i}", hub) for i in range(4)]
    shared = await machines[0].write("Running log", "## Log\n- started", type="episodic")
    for machine in machines:
        await machine.sync()
    for round_ in range(3):
        for machine in machines:
            await machine.append(shared.id, f"- {machine.name} round {round_}")
        async with anyio.create_task_group() as tasks:
            for machine in machines:
                tasks.start_soon(machine.sync)
    for _ in range(2):  # let every machine see the last merge
        for machine in machines:
            await machine.sync()

    bodies = set()
    for machine in machines:
        (note,) = notes(machine)  # one note: no conflict copy anywhere
        bodies.add(note.body)
        for other in machines:
            for round_ in range(3):
                assert f"- {other.name} round {round_}" in note.body
    assert len(bodies) == 1  # the same lines in the same order on every machine
