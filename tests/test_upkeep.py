"""Upkeep keeps a store that lives for years packed, its history indexed and its state pruned.

Real repositories grown through `Memory.write` (a commit per note, as the product grows them),
real git, real files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from anamnesis.config import Config
from anamnesis.doctor import run_doctor
from anamnesis.gitrepo import GitRepo
from anamnesis.locks import file_lock
from anamnesis.memory import Memory, NoteDraft
from anamnesis.upkeep import (
    LOG_MAX_BYTES,
    LOOSE_OBJECT_LIMIT,
    STATE_MAX_AGE,
    footprint,
    last_upkeep,
    prune_state,
    run_upkeep,
)

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parent.parent


async def _grow(memory: Memory, notes: int) -> list[str]:
    ids = []
    for i in range(notes):
        note = await memory.write(NoteDraft(type="semantic", title=f"Fact {i}", body=f"fact number {i} of many"))
        ids.append(note.id)
    return ids


def _old(path: Path, age: float) -> None:
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


async def test_upkeep_packs_what_every_write_left_loose_and_indexes_history(memory: Memory, config: Config) -> None:
    ids = await _grow(memory, LOOSE_OBJECT_LIMIT // 3 + 10)  # a blob, two trees and a commit each
    repo = GitRepo(config.layout.memory_dir, config.machine_id)
    grown = await footprint(repo)
    assert grown.loose_objects > LOOSE_OBJECT_LIMIT
    assert not grown.commit_graph
    history_before = await memory.history(ids[3])

    record = await run_upkeep(config)

    assert record is not None
    assert record.error is None
    assert record.repacked
    assert record.before == grown
    assert record.after.loose_objects == 0
    assert record.after.packs == 1
    assert record.after.commit_graph
    assert record.after.pack_bytes < grown.loose_bytes
    assert await memory.history(ids[3]) == history_before
    fsck = await repo.run("fsck", "--no-progress", "--connectivity-only", check=False)
    assert fsck.returncode == 0, fsck.stderr
    assert last_upkeep(config.layout) == record
    [finding] = [f for f in await run_doctor(config) if f.check == "upkeep"]
    assert finding.level == "ok"
    assert "0 loose objects, 1 packs" in finding.message
    assert "history index present" in finding.message


async def test_upkeep_runs_at_most_hourly_and_one_at_a_time(memory: Memory, config: Config) -> None:
    assert await run_upkeep(config) is not None
    assert await run_upkeep(config) is None  # not due yet
    async with file_lock(config.layout.state_dir / "upkeep.lock", 1.0):
        assert await run_upkeep(config, force=True) is None  # another process is at it
    assert await run_upkeep(config, force=True) is not None


async def test_a_commit_during_upkeep_waits_for_the_git_lock_and_lands(memory: Memory, config: Config) -> None:
    await _grow(memory, LOOSE_OBJECT_LIMIT // 3 + 10)
    written: list[str] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_upkeep, config)
        for i in range(5):
            written.append((await memory.write(NoteDraft(type="procedural", title=f"During {i}", body="x y z"))).id)
    repo = GitRepo(config.layout.memory_dir, config.machine_id)
    fsck = await repo.run("fsck", "--no-progress", check=False)
    assert fsck.returncode == 0, fsck.stderr
    for note_id in written:
        assert len(await memory.history(note_id)) == 1
    assert (await repo.run("status", "--porcelain")).stdout == b""


async def test_upkeep_killed_halfway_leaves_nothing_that_stops_the_next_run(memory: Memory, config: Config) -> None:
    await _grow(memory, LOOSE_OBJECT_LIMIT // 3 + 10)
    git_dir = config.layout.memory_dir / ".git"
    # A repack SIGKILLed wherever it was when the signal came:
    repack = subprocess.Popen(["git", "-C", str(config.layout.memory_dir), "repack", "-d", "--geometric=2", "-q"])
    repack.send_signal(signal.SIGKILL)
    repack.wait(timeout=30)
    # ... and what a kill at the worst moment leaves: a temporary pack and git's own locks.
    leftovers = [
        git_dir / "objects" / "pack" / ".tmp-1234-pack-deadbeef.pack",
        git_dir / "objects" / "info" / "commit-graphs" / "commit-graph-chain.lock",
        git_dir / "index.lock",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
        _old(path, 3600)

    record = await run_upkeep(config, force=True)

    assert record is not None
    assert record.error is None, record.error
    assert record.after.loose_objects == 0
    assert record.after.commit_graph
    assert not any(path.exists() for path in leftovers)
    note = await memory.write(NoteDraft(type="semantic", title="After upkeep", body="commits still work"))
    assert len(await memory.history(note.id)) == 1


async def test_per_session_state_is_forgotten_after_45_days_and_logs_stay_bounded(config: Config) -> None:
    state = config.layout.state_dir
    (state / "sessions").mkdir(parents=True)
    (state / "reflection").mkdir(parents=True)
    old_session, new_session = state / "sessions" / "old.json", state / "sessions" / "new.json"
    decided, pending = state / "reflection" / "decided.json", state / "reflection" / "pending.json"
    for path, status in ((old_session, None), (new_session, None), (decided, "accepted"), (pending, "pending")):
        path.write_text(json.dumps({"status": status} if status else {"shown": []}), encoding="utf-8")
    for path in (old_session, decided, pending):
        _old(path, STATE_MAX_AGE + 86400)
    log = state / "hooks.log"
    lines = [f"2026-01-01T00:00:00 stop pid=1 line {i:07d}\n" for i in range(LOG_MAX_BYTES // 30)]
    log.write_text("".join(lines), encoding="utf-8")

    assert prune_state(config.layout) == 3

    assert not old_session.exists()
    assert not decided.exists()
    assert new_session.exists()
    assert pending.exists()  # a proposal still waiting for the user is never forgotten
    kept = log.read_text(encoding="utf-8")
    assert len(kept) <= LOG_MAX_BYTES // 4
    assert kept.endswith(lines[-1])
    assert kept.startswith("2026-01-01T00:00:00")  # from a line's start


async def test_the_upkeep_command_reports_what_it_did(memory: Memory, config: Config) -> None:
    await _grow(memory, 3)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with anyio.fail_after(120):
        done = await anyio.run_process([sys.executable, "-m", "anamnesis", "upkeep", "--json"], env=env, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["after"]["commit_graph"] is True
    assert report["error"] is None


async def test_a_full_repack_comes_monthly_and_geometric_roll_ups_in_between(memory: Memory, config: Config) -> None:
    await _grow(memory, LOOSE_OBJECT_LIMIT // 3 + 10)
    first = await run_upkeep(config)
    assert first is not None
    assert first.full_repack_at is not None  # a store never fully repacked gets one first
    await _grow(memory, LOOSE_OBJECT_LIMIT // 3 + 10)

    second = await run_upkeep(config, force=True)

    assert second is not None
    assert second.repacked
    assert second.full_repack_at == first.full_repack_at  # not again within the month
    assert second.after.loose_objects == 0
    assert second.after.packs == 2  # the month's big pack stays; the new objects roll up beside it
