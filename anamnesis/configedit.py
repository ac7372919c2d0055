"""The one writer of config.json: read, change, check, write atomically, all under a file lock.

Many processes share a home (`peer add` in two terminals, the service making its dashboard
token, `init` naming the machine). Each read-modify-write holds `state/config.lock`, so two at
once both land. A change that leaves a bad value is refused before anything is written, and
keys this release does not know (a hand edit, a newer release) are written back untouched.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from anamnesis.config import CONFIG_FILE, read_config_file, write_config_file
from anamnesis.errors import BusyError
from anamnesis.settings import parse_settings

T = TypeVar("T")

LOCK_FILE = "config.lock"  # under state/
LOCK_WAIT = 10.0  # seconds: an edit takes milliseconds, so a longer wait means something is stuck
_FIRST_WAIT = 0.002
_LONGEST_WAIT = 0.05


def edit_config(home: Path, change: Callable[[dict[str, Any]], T], *, timeout: float = LOCK_WAIT) -> T:
    """Apply `change` to config.json (as a dict it may mutate) and write the result; `change`'s result.

    Blocking (run it in a thread from async code). The file is written only when `change`
    changed something, atomically and with mode 0600 (it may hold an API key). `ConfigError`
    when the changed document has a bad value (nothing is written); `BusyError` when another
    process holds the lock past `timeout` seconds.
    """
    path = home / CONFIG_FILE
    with _config_lock(home / "state" / LOCK_FILE, timeout):
        document = read_config_file(path)
        before = copy.deepcopy(document)
        result = change(document)
        if document != before:
            parse_settings(document, str(path))
            _write(path, document)
    return result


@contextlib.contextmanager
def _config_lock(path: Path, timeout: float) -> Iterator[None]:
    # Imported here: locks brings anyio, and the hooks read settings without it.
    from anamnesis.locks import release_file_lock, try_file_lock

    deadline = time.monotonic() + timeout
    wait = _FIRST_WAIT
    while (fd := try_file_lock(path)) is None:
        if time.monotonic() >= deadline:
            raise BusyError(f"another process has held {path} for more than {timeout:g} s")
        time.sleep(wait)  # blocking by contract: callers run this in a worker thread
        wait = min(wait * 2, _LONGEST_WAIT)
    try:
        yield
    finally:
        release_file_lock(fd)


def _write(path: Path, document: dict[str, Any]) -> None:
    """config.json written whole and atomically, mode 0600 (it may hold an API key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_config_file(path, document)
