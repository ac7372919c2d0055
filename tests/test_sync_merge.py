"""Integrating and pushing, on real git repos without SSH (anyio only: asyncio and trio).

Two clones and a bare repo on disk stand in for two machines and their hub; the hub's history
arrives with a plain `git fetch` from its path, as the SSH transport would bring it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest

from anamnesis.errors import GitError, SyncError
from anamnesis.notes import Note, parse_note, render_note
from anamnesis.sync.gate import plan_push
from anamnesis.sync.merge import integrate
from anamnesis.sync.repo import SyncRepo
from tests.conftest import both_backends

pytestmark = [both_backends, pytest.mark.anyio]
SECRET = "ghp_R8x2Lq9ZtV4mN7pK1sW3yB6cD0fH5jE2aG8u"
NOTE_ID = "01JD3W6Q2M8Z4T9K7B5X0R1C2V"


def note(body: str, *, updated_at: str = "2026-11-20T10:00:00Z", note_id: str = NOTE_ID, machine: str = "x") -> Note:
    return Note(
        id=note_id,
        type="semantic",
        title="Release process",
        body=body,
        machine_id=machine,
        created_at="2026-11-20T10:00:00Z",
        updated_at=updated_at,
        tags=("release",),
    )


class Clone:
    """A machine's memory/ for these tests: write a note file, commit, fetch the hub, push to it."""

    def __init__(self, root: Path, name: str, hub: Path) -> None:
        self.repo = SyncRepo(root / name, name)
        self.hub = hub
        self.name = name

    async def init(self) -> Clone:
        await self.repo.init()
        await self.repo.prepare()
        return self

    def write(self, item: Note) -> str:
        rel = f"{item.type}/{item.id}.md"
        path = self.repo.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_note(item), encoding="utf-8")
        return rel

    async def commit(self, message: str = "edit") -> None:
        await self.repo.commit_all(message)

    async def fetch(self) -> None:
        await self.repo.run("fetch", "-q", str(self.hub), "+refs/heads/*:refs/remotes/hub/*")

    async def push(self, rev: str = "HEAD") -> None:
        await self.repo.run("push", "-q", str(self.hub), f"{rev}:refs/heads/main")
        await self.fetch()

    async def sync(self) -> None:
        await self.fetch()
        await integrate(self.repo, "refs/remotes/hub/main", self.name, "hub")
        await self.push()

    def notes(self) -> dict[str, Note]:
        return {p.name: parse_note(p.read_text()) for p in sorted(self.repo.path.glob("*/*.md"))}


@pytest.fixture
async def clones(tmp_path: Path) -> tuple[Clone, Clone]:
    hub = tmp_path / "hub.git"
    await anyio.run_process(["git", "init", "-q", "--bare", "-b", "main", str(hub)])
    laptop = await Clone(tmp_path, "laptop", hub).init()
    desktop = await Clone(tmp_path, "desktop", hub).init()
    laptop.write(note("Tag, then build, then publish.\n\nAsk Ann before a major release."))
    await laptop.commit("first note")
    await laptop.push()
    await desktop.fetch()
    await integrate(desktop.repo, "refs/remotes/hub/main", "desktop", "hub")
    return laptop, desktop


async def test_a_machine_behind_the_hub_fast_forwards(clones: tuple[Clone, Clone]) -> None:
    laptop, desktop = clones
    assert (await desktop.repo.rev("HEAD")) == (await laptop.repo.rev("HEAD"))
    outcome = await integrate(desktop.repo, "refs/remotes/hub/main", "desktop", "hub")
    assert outcome.head is None  # already there: nothing to do


async def test_same_line_edited_on_both_machines_keeps_both_versions(clones: tuple[Clone, Clone]) -> None:
    laptop, desktop = clones
    laptop.write(
        note(
            "Tag, then build, then publish (laptop).\n\nAsk Ann before a major release.",
            updated_at="2026-11-21T10:00:00Z",
        )
    )
    await laptop.commit()
    await laptop.push()
    desktop.write(
        note(
            "Tag, then build, then publish (desktop).\n\nAsk Ann before a major release.",
            updated_at="2026-11-22T10:00:00Z",
        )
    )
    await desktop.commit()
    await desktop.fetch()
    outcome = await integrate(desktop.repo, "refs/remotes/hub/main", "desktop", "hub")
    assert len(outcome.conflicts) == 1
    conflict = outcome.conflicts[0]
    assert conflict.kept == "local"  # desktop's edit is newer
    notes = desktop.notes()
    assert "(desktop)" in notes[f"{NOTE_ID}.md"].body
    copy = notes[f"{conflict.copy_id}.md"]
    assert "(laptop)" in copy.body
    assert copy.extra["conflict_of"] == NOTE_ID
    assert "conflict" in copy.tags
    assert copy.id != NOTE_ID
    for path in desktop.repo.path.glob("*/*.md"):
        assert "<<<<<<<" not in path.read_text()
    assert await desktop.repo.output("status", "--porcelain") == ""
    parents = await desktop.repo.output("log", "-1", "--format=%P")
    assert len(parents.split()) == 2  # both histories kept


async def test_an_edit_against_a_delete_keeps_the_edit_in_either_order(clones: tuple[Clone, Clone]) -> None:
    laptop, desktop = clones
    (laptop.repo.path / f"semantic/{NOTE_ID}.md").unlink()
    await laptop.commit("delete")
    await laptop.push()
    desktop.write(note("Tag, build, publish. Edited after the delete.", updated_at="2026-11-23T10:00:00Z"))
    await desktop.commit()
    await desktop.fetch()
    outcome = await integrate(desktop.repo, "refs/remotes/hub/main", "desktop", "hub")
    assert outcome.kept_edits == [f"semantic/{NOTE_ID}.md"]
    assert "Edited after the delete" in desktop.notes()[f"{NOTE_ID}.md"].body
    await desktop.push()
    await laptop.fetch()
    await integrate(laptop.repo, "refs/remotes/hub/main", "laptop", "hub")
    assert "Edited after the delete" in laptop.notes()[f"{NOTE_ID}.md"].body

    # the other order: the edit reached the hub first, then a machine that deleted it syncs
    laptop.write(note("Edited again on the laptop.", updated_at="2026-11-24T10:00:00Z"))
    await laptop.commit()
    await laptop.push()
    (desktop.repo.path / f"semantic/{NOTE_ID}.md").unlink()
    await desktop.commit("delete")
    await desktop.fetch()
    outcome = await integrate(desktop.repo, "refs/remotes/hub/main", "desktop", "hub")
    assert outcome.kept_edits == [f"semantic/{NOTE_ID}.md"]
    assert desktop.notes()[f"{NOTE_ID}.md"].body == "Edited again on the laptop."


async def test_the_same_new_note_written_twice_is_kept_twice(clones: tuple[Clone, Clone]) -> None:
    laptop, desktop = clones
    other = "01JD3W6Q2M8Z4T9K7B5X0R1C2W"  # e.g. an import with a deterministic id on both machines
    laptop.write(note("Imported on the laptop.", note_id=other))
    await laptop.commit()
    await laptop.push()
    desktop.write(note("Imported on the desktop.", note_id=other))
    await desktop.commit()
    await desktop.fetch()
    outcome = await integrate(desktop.repo, "refs/remotes/hub/main", "desktop", "hub")
    assert len(outcome.conflicts) == 1
    bodies = sorted(n.body for n in desktop.notes().values() if n.id != NOTE_ID)
    assert bodies == ["Imported on the desktop.", "Imported on the laptop."]


async def test_a_machine_with_its_own_history_joins_and_keeps_its_notes(
    tmp_path: Path, clones: tuple[Clone, Clone]
) -> None:
    laptop, _ = clones
    newcomer = await Clone(tmp_path, "newcomer", laptop.hub).init()
    newcomer.write(note("Written before joining.", note_id="01JD3W6Q2M8Z4T9K7B5X0R1C2X"))
    await newcomer.commit()
    await newcomer.sync()
    assert set(newcomer.notes()) == {f"{NOTE_ID}.md", "01JD3W6Q2M8Z4T9K7B5X0R1C2X.md"}
    await laptop.fetch()
    await integrate(laptop.repo, "refs/remotes/hub/main", "laptop", "hub")
    assert set(laptop.notes()) == set(newcomer.notes())


async def test_a_note_with_a_secret_is_withheld_and_its_history_never_pushed(clones: tuple[Clone, Clone]) -> None:
    laptop, desktop = clones
    leaky = "01JD3W6Q2M8Z4T9K7B5X0R1C2Y"
    laptop.write(note(f"CI token is {SECRET}", note_id=leaky))
    laptop.write(note("A clean note written alongside.", note_id="01JD3W6Q2M8Z4T9K7B5X0R1C2Z"))
    await laptop.commit()
    theirs = await laptop.repo.rev("refs/remotes/hub/main")
    plan = await plan_push(laptop.repo, theirs, "laptop")
    assert [w.note_id for w in plan.withheld] == [leaky]
    assert plan.withheld[0].kinds == ("github-token",)
    assert plan.rev is not None
    await laptop.push(plan.rev)
    assert f"{leaky}.md" in laptop.notes()  # still here, just not on the hub
    assert await laptop.repo.output("status", "--porcelain") == ""
    hub_objects = await laptop.repo.output("--git-dir", str(laptop.hub), "rev-list", "--objects", "--all")
    hub_texts = await laptop.repo.blobs([line.split()[0] for line in hub_objects.splitlines()])
    assert not any(SECRET.encode() in data for data in hub_texts.values())
    await desktop.fetch()
    await integrate(desktop.repo, "refs/remotes/hub/main", "desktop", "hub")
    assert set(desktop.notes()) == {f"{NOTE_ID}.md", "01JD3W6Q2M8Z4T9K7B5X0R1C2Z.md"}

    # nothing new: nothing to push, no new commit
    head = await laptop.repo.rev("HEAD")
    again = await plan_push(laptop.repo, await laptop.repo.rev("refs/remotes/hub/main"), "laptop")
    assert again.rev is None
    assert await laptop.repo.rev("HEAD") == head

    # fixed: the clean version goes, the secret's history still does not
    laptop.write(note("CI token lives in the password manager.", note_id=leaky))
    await laptop.commit()
    fixed = await plan_push(laptop.repo, await laptop.repo.rev("refs/remotes/hub/main"), "laptop")
    assert fixed.withheld == []
    assert fixed.rev is not None
    await laptop.push(fixed.rev)
    hub_objects = await laptop.repo.output("--git-dir", str(laptop.hub), "rev-list", "--objects", "--all")
    hub_texts = await laptop.repo.blobs([line.split()[0] for line in hub_objects.splitlines()])
    assert not any(SECRET.encode() in data for data in hub_texts.values())
    await desktop.fetch()
    await integrate(desktop.repo, "refs/remotes/hub/main", "desktop", "hub")
    assert desktop.notes()[f"{leaky}.md"].body == "CI token lives in the password manager."


async def test_a_file_saved_by_hand_in_the_way_of_a_merge_is_never_overwritten(clones: tuple[Clone, Clone]) -> None:
    laptop, desktop = clones
    laptop.write(note("Laptop's version.", updated_at="2026-11-21T10:00:00Z"))
    await laptop.commit()
    await laptop.push()
    desktop.write(note("Saved by an editor, not committed yet.", updated_at="2026-11-22T10:00:00Z"))
    await desktop.fetch()
    with pytest.raises(GitError, match="would be overwritten"):
        await integrate(desktop.repo, "refs/remotes/hub/main", "desktop", "hub")
    assert desktop.notes()[f"{NOTE_ID}.md"].body == "Saved by an editor, not committed yet."
    await desktop.commit()  # what the engine does next, then merges again
    outcome = await integrate(desktop.repo, "refs/remotes/hub/main", "desktop", "hub")
    assert len(outcome.conflicts) == 1
    assert {n.body for n in desktop.notes().values()} >= {"Laptop's version.", "Saved by an editor, not committed yet."}


async def test_conflict_markers_from_a_merge_run_by_hand_never_reach_the_hub(clones: tuple[Clone, Clone]) -> None:
    laptop, _ = clones
    laptop.write(note("<<<<<<< HEAD\nTag first.\n=======\nBuild first.\n>>>>>>> other\n"))
    await laptop.commit()
    plan = await plan_push(laptop.repo, await laptop.repo.rev("refs/remotes/hub/main"), "laptop")
    assert [w.kinds for w in plan.withheld] == [("unresolved-conflict-markers",)]
    assert plan.rev is None  # the only change is the one held back


async def test_stale_git_locks_are_removed_and_fresh_ones_kept(clones: tuple[Clone, Clone]) -> None:
    laptop, _ = clones
    stale = laptop.repo.git_dir / "index.lock"
    stale.write_text("")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = laptop.repo.git_dir / "refs" / "heads" / "main.lock"
    fresh.write_text("")
    removed = await laptop.repo.recover_stale_locks(60)
    assert removed == [".git/index.lock"]
    assert fresh.exists()


async def test_a_hand_started_merge_or_a_detached_head_stops_the_sync_with_the_fix(clones: tuple[Clone, Clone]) -> None:
    laptop, _ = clones
    await laptop.repo.check_state()
    (laptop.repo.git_dir / "MERGE_HEAD").write_text((await laptop.repo.rev("HEAD")) or "")
    with pytest.raises(SyncError, match="merge --abort"):
        await laptop.repo.check_state()
    (laptop.repo.git_dir / "MERGE_HEAD").unlink()
    await laptop.repo.run("checkout", "-q", "--detach")
    with pytest.raises(SyncError, match="switch main"):
        await laptop.repo.check_state()
