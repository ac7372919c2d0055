"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every file Anamnesis writes (notes, config.json, cursors, state records, known_hosts, Claude
Code's settings) goes through `atomic_write`: a temp file in the same directory, written and
fsynced, renamed over the target, then the directory fsynced so the rename survives a crash.
On any failure the temp file is removed and the old file is untouched. The mode is always
chosen, never left to the umask: config.json may hold an API key.

Below a `root`, directories are reached without following a symbolic link (`open_dir_below`),
because a hub or another machine may plant a link in the synced tree. Standard library only:
the values layer (config) and the hooks use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_module
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from anamnesis.errors import UnsafePathError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
DEFAULT_MODE = 0o644


def open_dir_below(root: Path, parts: Sequence[str], *, create: bool = False) -> int:
    """A descriptor of `root/parts…`, each part opened without following a symbolic link.

    `root` itself is trusted (the user may link their home or memory/ elsewhere); below it, a
    link or a non-directory is `UnsafePathError`, a missing directory `FileNotFoundError`
    (or, with `create`, made). The caller closes the descriptor.
    """
    if create:
        root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | _DIRECTORY)
    try:
        for part in parts:
            try:
                child = os.open(part, os.O_RDONLY | _DIRECTORY | NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, os.O_RDONLY | _DIRECTORY | NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePathError(
                        f"{root.joinpath(part)} is a symbolic link or not a directory; Anamnesis does not follow it"
                    ) from exc
                raise
            os.close(fd)
            fd = child
            root = root / part
    except BaseException:
        os.close(fd)
        raise
    return fd


def atomic_write(
    path: Path, data: str | bytes, *, mode: int | None = DEFAULT_MODE, root: Path | None = None, durable: bool = True
) -> None:
    """Replace `path` with `data` (text is written as UTF-8), all or nothing.

    `mode` is the new file's permission bits; None keeps those of the file being replaced
    (for files the user owns, such as Claude Code's settings), `DEFAULT_MODE` for a new one.
    Missing directories are created. With `root`, every directory from `root` down to the
    file is reached without following a symbolic link, and a link at the target is refused,
    not replaced. `durable=False` skips both fsyncs, for a cache that may be lost in a crash
    but must never be read half-written (an fsync costs 10-30 ms on a busy disk).
    """
    base = root if root is not None else path.parent
    dir_fd = open_dir_below(base, path.parent.relative_to(base).parts, create=True)
    try:
        if root is not None and _is_link(path.name, dir_fd):
            raise UnsafePathError(f"{path} is a symbolic link; Anamnesis does not write through links")
        if mode is None:
            mode = _existing_mode(path.name, dir_fd)
        tmp_name = f".{path.name}.{os.urandom(6).hex()}.tmp"
        fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600, dir_fd=dir_fd)
        try:
            # Text is encoded as it is written, so text that cannot be encoded fails here, after
            # the temp file exists: the cleanup below is what keeps the directory clean.
            handle: IO[Any] = (
                os.fdopen(fd, "w", encoding="utf-8", newline="\n") if isinstance(data, str) else os.fdopen(fd, "wb")
            )
            with handle:
                handle.write(data)
                handle.flush()
                os.fchmod(handle.fileno(), mode)
                if durable:
                    os.fsync(handle.fileno())
            os.replace(tmp_name, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name, dir_fd=dir_fd)
            raise
        if durable:
            with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
                os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat_module.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _existing_mode(name: str, dir_fd: int) -> int:
    """The permission bits of the file `name` in `dir_fd`, or `DEFAULT_MODE` when there is none."""
    try:
        return stat_module.S_IMODE(os.stat(name, dir_fd=dir_fd).st_mode)
    except FileNotFoundError:
        return DEFAULT_MODE
