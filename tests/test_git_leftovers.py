"""A git killed mid-commit leaves `.git/index.lock`: writing notes must not fail forever after."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from anamnesis.errors import GitError
from anamnesis.memory import Memory, NoteDraft

pytestmark = pytest.mark.anyio


def leave_lock(memory: Memory, age_seconds: float) -> Path:
    lock = (memory.config.layout.memory_dir / ".git") / "index.lock"
    lock.write_bytes(b"")
    then = time.time() - age_seconds
    os.utime(lock, (then, then))
    return lock


def committed_files(memory: Memory) -> str:
    return subprocess.run(
        ["git", "-C", str(memory.config.layout.memory_dir), "ls-files"], capture_output=True, text=True, check=True
    ).stdout


async def test_a_lock_left_long_ago_is_cleared_and_the_note_committed(memory: Memory) -> None:
    lock = leave_lock(memory, age_seconds=3600)
    note = await memory.write(NoteDraft(type="semantic", title="Survives a killed git", body="Still committed."))
    assert not lock.exists()
    assert f"semantic/{note.id}.md" in committed_files(memory)


async def test_a_fresh_lock_is_left_to_its_owner_and_the_note_stays_on_disk(memory: Memory) -> None:
    """A lock this young may belong to the user's own git, running right now: never taken."""
    lock = leave_lock(memory, age_seconds=0)
    with pytest.raises(GitError, match=r"index\.lock"):
        await memory.write(NoteDraft(type="semantic", title="Waits for the user's git", body="On disk."))
    assert lock.exists()
    written = list((memory.config.layout.memory_dir / "semantic").glob("*.md"))
    assert len(written) == 1
    lock.unlink()
    assert await memory.commit_pending() is not None
    assert f"semantic/{written[0].name}" in committed_files(memory)
