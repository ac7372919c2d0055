"""An edit never overwrites a version it has not seen, even when another write lands at the same moment.

The dashboard's save names the version it was made from (`base`); `Memory.update` checks it and
writes under the git lock. These tests make the two races happen for real (Quart's test client,
a real home with git): two saves of one note fired together, and a sync that changes the note
while a save is on its way.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from anamnesis.config import Config
from anamnesis.locks import file_lock
from anamnesis.memory import Memory
from anamnesis.notes import render_note
from tests.test_dashboard import Browser, git, make_app, note_file, write

pytestmark = pytest.mark.anyio

ROUNDS = 3


@pytest.fixture
def browser(config: Config, memory: Memory) -> Browser:
    return Browser(make_app(config, memory).test_client())


async def test_two_saves_of_one_note_from_the_same_version_one_lands_the_other_is_refused(
    browser: Browser, memory: Memory
) -> None:
    note = await write(memory, "Contested note", "v1")
    path = note_file(memory, note)
    await browser.csrf()
    for round_ in range(ROUNDS):
        base = (await browser.json(f"/notes/{note.id}/edit"))["base"]
        answers: dict[str, Any] = {}

        async def save(tab: str, answers: dict[str, Any] = answers, base: str = base, round_: int = round_) -> None:
            body = {"base": base, "title": "Contested note", "body": f"{tab} tab, round {round_}"}
            answers[tab] = await browser.post(f"/notes/{note.id}/edit", json_body=body)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(save, "left")
            tasks.start_soon(save, "right")

        assert sorted(a.status_code for a in answers.values()) == [200, 409]
        saved = next(tab for tab, a in answers.items() if a.status_code == 200)
        refused = next(tab for tab, a in answers.items() if a.status_code == 409)
        shown = await answers[refused].get_json()
        assert shown["form"]["body"] == f"{refused} tab, round {round_}"  # what the user typed, kept
        assert shown["current"]["body"] == f"{saved} tab, round {round_}"  # beside the version that landed
        # The acknowledged edit is what the file holds, and it is in history.
        assert path.read_text().endswith(f"{saved} tab, round {round_}\n")
        rel = path.relative_to(memory.config.layout.memory_dir).as_posix()
        assert f"+{saved} tab, round {round_}" in git(memory, "log", "-p", "-1", "--", rel)
        assert git(memory, "status", "--porcelain") == ""


def _open_handles(path: Path) -> int:
    """How many file descriptors of this process have `path` open (a lock held or waited for)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            continue
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see a lock being waited for")
async def test_a_sync_landing_while_a_save_is_on_its_way_refuses_the_save_with_both_versions(
    browser: Browser, memory: Memory
) -> None:
    note = await write(memory, "Shared note", "The original text.")
    path = note_file(memory, note)
    base = (await browser.json(f"/notes/{note.id}/edit"))["base"]
    await browser.csrf()
    theirs = note.with_changes(body="The text the laptop wrote.", machine_id="laptop")
    lock = memory.config.layout.state_dir / "git.lock"
    answer: dict[str, Any] = {}

    async def save() -> None:
        body = {"base": base, "title": "Shared note", "body": "My text from the open form."}
        answer["response"] = await browser.post(f"/notes/{note.id}/edit", json_body=body)

    # A sync holds the git lock while it brings in another machine's version of the note.
    async with anyio.create_task_group() as tasks, file_lock(lock, 10, "the git repo"):
        tasks.start_soon(save)
        with anyio.fail_after(10):
            while _open_handles(lock) < 2:  # the save has come as far as the lock
                await anyio.sleep(0.005)
        path.write_text(render_note(theirs))
        subprocess.run(["git", "-C", str(path.parent.parent), "commit", "-qam", "sync"], check=True)

    response = answer["response"]
    assert response.status_code == 409
    shown = await response.get_json()
    assert shown["form"]["body"] == "My text from the open form."
    assert shown["current"]["body"] == "The text the laptop wrote."
    assert path.read_text() == render_note(theirs)  # the sync's version stands…
    assert git(memory, "status", "--porcelain") == ""
    assert "My text from the open form." not in git(memory, "log", "-p")  # …and nothing was half-saved
    # Saving again on top of what is there now (the refusal's base) goes through.
    again = await browser.post(
        f"/notes/{note.id}/edit", json_body={"base": shown["base"], "title": "Shared note", "body": "Merged."}
    )
    assert again.status_code == 200
    assert path.read_text().endswith("Merged.\n")
