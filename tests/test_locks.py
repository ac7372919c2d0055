"""Inter-process file locks: one holder at a time, a deadline for waiters, no stale locks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import anyio.abc
import pytest

from anamnesis.errors import BusyError
from anamnesis.locks import file_lock, release_file_lock, try_file_lock
from tests.conftest import both_backends, run_cli_env

pytestmark = [both_backends, pytest.mark.anyio]

HOLDER = """
import sys
from pathlib import Path
from anamnesis.locks import try_file_lock
fd = try_file_lock(Path(sys.argv[1]))
print("held" if fd is not None else "refused", flush=True)
sys.stdin.read()
"""


async def read_line(process: anyio.abc.Process) -> str:
    assert process.stdout is not None
    data = b""
    with anyio.fail_after(30):
        while not data.endswith(b"\n"):
            data += await process.stdout.receive()
    return data.decode().strip()


async def test_second_locker_times_out_with_busy_error(tmp_path: Path) -> None:
    lock = tmp_path / "state" / "git.lock"

    async with file_lock(lock, timeout=5):
        with pytest.raises(BusyError) as caught:
            async with file_lock(lock, timeout=0.05, what="the git repo"):
                pytest.fail("two holders at once")

    assert "the git repo" in str(caught.value)


async def test_lock_is_free_again_when_the_holder_leaves_its_block(tmp_path: Path) -> None:
    lock = tmp_path / "git.lock"
    async with file_lock(lock, timeout=5):
        pass

    async with file_lock(lock, timeout=0.05):
        pass


async def test_lock_is_released_when_the_holder_raises(tmp_path: Path) -> None:
    lock = tmp_path / "git.lock"
    with pytest.raises(RuntimeError):
        async with file_lock(lock, timeout=5):
            raise RuntimeError("boom")

    async with file_lock(lock, timeout=0.05):
        pass


async def test_waiter_gets_the_lock_once_the_holder_releases_it(tmp_path: Path) -> None:
    lock = tmp_path / "git.lock"
    events: list[str] = []
    waiting = anyio.Event()

    async def waiter() -> None:
        waiting.set()
        async with file_lock(lock, timeout=30):
            events.append("waiter has it")

    async with anyio.create_task_group() as tg, file_lock(lock, timeout=5):
        tg.start_soon(waiter)
        await waiting.wait()
        events.append("holder releases")

    assert events == ["holder releases", "waiter has it"]


async def test_lock_held_by_another_process_is_released_when_that_process_is_killed(tmp_path: Path) -> None:
    lock = tmp_path / "state" / "git.lock"
    process = await anyio.open_process(
        [sys.executable, "-c", HOLDER, str(lock)], env=run_cli_env(tmp_path), stderr=subprocess.DEVNULL
    )
    try:
        assert await read_line(process) == "held"

        with pytest.raises(BusyError):
            async with file_lock(lock, timeout=0.05):
                pytest.fail("held by the other process too")
        assert try_file_lock(lock) is None
    finally:
        process.kill()
        with anyio.fail_after(30):
            await process.wait()
        await process.aclose()

    async with file_lock(lock, timeout=5):
        pass


async def test_lock_held_by_another_process_is_released_when_it_exits_normally(tmp_path: Path) -> None:
    lock = tmp_path / "git.lock"
    process = await anyio.open_process([sys.executable, "-c", HOLDER, str(lock)], env=run_cli_env(tmp_path))
    assert await read_line(process) == "held"
    assert process.stdin is not None
    await process.stdin.aclose()  # the holder reads stdin to its end, then exits
    with anyio.fail_after(30):
        assert await process.wait() == 0
    await process.aclose()

    async with file_lock(lock, timeout=5):
        pass


async def test_try_lock_takes_a_free_lock_and_refuses_a_held_one(tmp_path: Path) -> None:
    lock = tmp_path / "sync.lock"

    fd = try_file_lock(lock)
    assert fd is not None
    try:
        assert try_file_lock(lock) is None
        with pytest.raises(BusyError):
            async with file_lock(lock, timeout=0.05):
                pass
    finally:
        release_file_lock(fd)

    again = try_file_lock(lock)
    assert again is not None
    release_file_lock(again)


async def test_lock_file_is_private_to_the_user(tmp_path: Path) -> None:
    lock = tmp_path / "new" / "dir" / "git.lock"

    async with file_lock(lock, timeout=1):
        assert lock.exists()

    assert os.stat(lock).st_mode & 0o077 == 0
