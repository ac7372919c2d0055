"""Inter-process locks on files under `state/`, waited for with a deadline.

Many processes share one home (an MCP server per Claude Code session, hooks, the service, the
CLI). Git's own index lock makes concurrent commits fail instead of wait, so every git write
in one home goes through `git_lock(state_dir)`, the one owner of that lock's file and patience.
`flock` locks vanish when their process dies, so a killed process never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio

from anamnesis.errors import BusyError

_FIRST_WAIT = 0.005
_LONGEST_WAIT = 0.1
GIT_LOCK_FILE = "git.lock"  # under state/
GIT_LOCK_TIMEOUT = 60.0  # seconds: a sync's merge or a long commit holds it, never longer than this


@asynccontextmanager
async def file_lock(path: Path, timeout: float, what: str = "this home") -> AsyncIterator[None]:
    """Hold an exclusive lock on `path`; `BusyError` if not had within `timeout` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        wait = _FIRST_WAIT
        with anyio.move_on_after(timeout) as scope:
            while not _try_lock(fd):
                await anyio.sleep(wait)
                wait = min(wait * 2, _LONGEST_WAIT)
        if scope.cancelled_caught:
            raise BusyError(f"another process has held {what} for more than {timeout:g} s")
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def git_lock(state_dir: Path, timeout: float = GIT_LOCK_TIMEOUT) -> AbstractAsyncContextManager[None]:
    """The lock every git write in a home takes (commits, a sync's merge, upkeep); `BusyError` past `timeout`."""
    return file_lock(state_dir / GIT_LOCK_FILE, timeout, "the git repo")


def try_file_lock(path: Path) -> int | None:
    """Take the lock now or not at all: the fd to release with `release_file_lock`, or None."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if _try_lock(fd):
        return fd
    os.close(fd)
    return None


def release_file_lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
