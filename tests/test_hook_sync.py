"""SessionStart starts a sync in the background when the last one is older than the interval.

A new session on the laptop should see what the desktop wrote since, without waiting for the
service's next cycle and without the hook itself waiting on the network.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

from tests.hubserver import Hub, Machine, make_machine

pytestmark = pytest.mark.anyio


async def session_start(machine: Machine, cwd: Path) -> str:
    payload = {"session_id": "s-1", "cwd": str(cwd), "hook_event_name": "SessionStart", "source": "startup"}
    result = await anyio.run_process(
        [sys.executable, "-m", "anamnesis", "hook", "session-start"],
        input=json.dumps(payload).encode(),
        env={**os.environ, "ANAMNESIS_HOME": str(machine.home)},
        check=False,
    )
    assert result.returncode == 0
    assert result.stderr == b""
    return result.stdout.decode()


async def test_session_start_pulls_the_other_machines_notes_in_the_background(tmp_path: Path, hub: Hub) -> None:
    desktop = await make_machine(tmp_path, "desktop", hub)
    laptop = await make_machine(tmp_path, "laptop", hub)
    await desktop.write("Release notes live in CHANGES.md", "Append one line per user-visible change.")
    await desktop.sync()

    await session_start(laptop, tmp_path)  # returns at once; the sync runs detached
    with anyio.fail_after(60):
        while not any("CHANGES.md" in text for text in laptop.note_files().values()):
            await anyio.sleep(0.05)
    marker = laptop.home / "state" / "sync-requested"
    started = marker.stat().st_mtime_ns

    # Within the interval, a second session does not start another sync.
    await session_start(laptop, tmp_path)
    assert marker.stat().st_mtime_ns == started


async def test_without_a_hub_session_start_starts_no_sync(tmp_path: Path) -> None:
    laptop = await make_machine(tmp_path, "laptop", None)
    await session_start(laptop, tmp_path)
    assert not (laptop.home / "state" / "sync-requested").exists()
    assert not (laptop.home / "state" / "sync.json").exists()
