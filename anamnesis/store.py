"""The canonical notes on disk: where each note lives, atomic writes, reads, deletes, scans.

These functions block (they touch the file system) and are meant to run in a worker thread
(`anyio.to_thread.run_sync`); `Memory` does that. Every id and type is validated before it
becomes part of a path, so nothing a user or a model types can escape the store. Nor can
anything a hub sends: below each scope root the store never follows a symbolic link, to a
directory or to a file (each directory is opened with O_NOFOLLOW, each file too), and it
reads only regular files, so a link planted in memory/ cannot make it read or write
outside the home. Such links are skipped by scans and listed by `unsafe_entries` for doctor.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat as stat_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from anamnesis.atomic import NOFOLLOW, atomic_write, open_dir_below
from anamnesis.config import Layout
from anamnesis.errors import NoteFormatError, NoteValidationError, UnsafePathError
from anamnesis.ids import is_safe_id
from anamnesis.notes import NOTE_TYPES, SCOPES, Note, parse_note, render_note, validate_note

NOTE_SUFFIX = ".md"
_T = TypeVar("_T")
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted as a note must not block the open


@dataclass(frozen=True, slots=True)
class NoteFile:
    """One `<scope dir>/<type>/<name>.md` file as seen by a scan."""

    path: str  # a plain string: a scan of 100k files must not build 100k Path objects
    rel: str  # relative to the home, with forward slashes: the index's key
    scope: str
    type_dir: str
    size: int
    mtime_ns: int


class NoteStore:
    """The notes of one home. The directory a note sits in is authoritative for its scope."""

    def __init__(self, layout: Layout, roots: dict[str, Path] | None = None) -> None:
        self.layout = layout
        self.roots = roots if roots is not None else layout.scope_roots()

    def path_for(self, note_id: str, note_type: str, scope: str) -> Path:
        if not is_safe_id(note_id):
            raise NoteValidationError("id", f"{note_id!r} is not a valid note id")
        if note_type not in NOTE_TYPES:
            raise NoteValidationError("type", f"{note_type!r} is not one of {', '.join(NOTE_TYPES)}")
        if scope not in self.roots:
            raise NoteValidationError("scope", f"{scope!r} is not one of {', '.join(SCOPES)}")
        return self.roots[scope] / note_type / f"{note_id}{NOTE_SUFFIX}"

    def rel(self, path: Path) -> str:
        """The key the index uses for `path`: relative to the home when inside it."""
        try:
            return path.relative_to(self.layout.home).as_posix()
        except ValueError:
            return path.as_posix()

    def candidates(self, note_id: str) -> Iterator[Path]:
        """Every path a note with this id could have, in all scopes and types."""
        for scope in self.roots:
            for note_type in NOTE_TYPES:
                yield self.path_for(note_id, note_type, scope)

    def find(self, note_id: str) -> Path | None:
        """The file of this note, or None. `UnsafePathError` when it is a symbolic link."""
        for path in self.candidates(note_id):
            found = self.lstat(path)
            if found is None:
                continue
            if stat_module.S_ISLNK(found.st_mode):
                raise UnsafePathError(f"{self.rel(path)} is a symbolic link; Anamnesis does not follow links")
            if stat_module.S_ISREG(found.st_mode):
                return path
        return None

    def lstat(self, path: Path) -> os.stat_result | None:
        """`lstat` of `path`, or None when it, or a directory on the way there, is missing or is
        not a real directory (a symbolic link)."""

        def lstat_at(fd: int, name: str) -> os.stat_result | None:
            try:
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return None

        return self._at(path, lstat_at)

    def _at(self, path: Path, action: Callable[[int, str], _T | None]) -> _T | None:
        """`action(directory fd, file name)` for `path`, its directory reached without following
        a link; None when that directory is missing or is reached through a link."""
        root, parts = self._below(path)
        try:
            fd = open_dir_below(root, parts[:-1])
        except (FileNotFoundError, UnsafePathError):
            return None
        try:
            return action(fd, parts[-1])
        finally:
            os.close(fd)

    def read(self, path: Path) -> Note:
        """Parse the note at `path`; its scope comes from the directory it is in."""
        return self.read_text(self.read_bytes(path).decode("utf-8", errors="replace"), path)

    def read_bytes(self, path: Path) -> bytes:
        """The bytes of the regular file at `path`, reached without following any link."""
        root, parts = self._below(path)
        fd = open_dir_below(root, parts[:-1])
        try:
            return read_regular_file(parts[-1], dir_fd=fd, shown=self.rel(path))
        finally:
            os.close(fd)

    def _below(self, path: Path) -> tuple[Path, tuple[str, ...]]:
        """(scope root, the parts of `path` below it); `UnsafePathError` outside every root."""
        for root in self.roots.values():
            if path.is_relative_to(root) and path != root:
                return root, path.relative_to(root).parts
        raise UnsafePathError(f"{path} is not inside the store")

    def read_text(self, text: str, path: Path) -> Note:
        """Parse `text` read from `path`; the directory, not the front-matter, sets the scope."""
        return self.parse_file(text, self.rel(path), self.scope_of(path))

    @staticmethod
    def parse_file(text: str, rel: str, scope: str | None) -> Note:
        """Parse a note file. Its directory sets the scope and its file name the id: a note whose
        `id:` says otherwise is read with the file's id (the next save writes that id), so an
        edit rewrites this file instead of forking a second one."""
        note = parse_note(text, rel)
        stem = rel.rpartition("/")[2].removesuffix(NOTE_SUFFIX)
        if note.id != stem:
            if not is_safe_id(stem):
                raise NoteFormatError(
                    f"its id is {note.id!r} but its file name {stem!r} is not a note id; rename the file to "
                    f"{note.id}{NOTE_SUFFIX}",
                    rel,
                )
            note = note.with_changes(id=stem)
        return note if scope is None or note.scope == scope else note.with_changes(scope=scope)

    def scope_of(self, path: Path) -> str | None:
        for scope, root in self.roots.items():
            if path.is_relative_to(root):
                return scope
        return None

    def write(self, note: Note) -> Path:
        """Write `note` atomically at its path; remove any copy at an old type or scope path."""
        validate_note(note)
        path = self.path_for(note.id, note.type, note.scope)
        atomic_write(path, render_note(note), root=self.roots[note.scope])
        for other in self.candidates(note.id):
            if other != path:
                self._unlink(other)
        return path

    def delete(self, note_id: str) -> list[Path]:
        return [path for path in self.candidates(note_id) if self._unlink(path)]

    def _unlink(self, path: Path) -> bool:
        """Remove the file (or the link itself) at `path`, never through a linked directory."""

        def unlink_at(fd: int, name: str) -> bool:
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                return False
            return True

        return bool(self._at(path, unlink_at))

    def scan(self, stat: bool = True) -> Iterator[NoteFile]:
        """Every `.md` file in a type directory of every scope, with its size and mtime (-1
        without `stat`: for a reader that takes them from the open file)."""
        for scope, root in self.roots.items():
            root_rel = self.rel(root)
            for note_type in NOTE_TYPES:
                directory = root / note_type
                prefix = f"{root_rel}/{note_type}/"
                if not _is_real_dir(directory):
                    continue  # missing, or a link (doctor reports it): never scanned through
                try:
                    entries = os.scandir(directory)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                with entries:
                    for entry in entries:
                        name = entry.name
                        if name.startswith(".") or not name.endswith(NOTE_SUFFIX):
                            continue
                        try:
                            if not entry.is_file(follow_symlinks=False):
                                continue
                            status = entry.stat(follow_symlinks=False) if stat else None
                        except FileNotFoundError:
                            continue  # removed while we looked
                        yield NoteFile(
                            path=entry.path,
                            rel=prefix + name,
                            scope=scope,
                            type_dir=note_type,
                            size=status.st_size if status else -1,
                            mtime_ns=status.st_mtime_ns if status else -1,
                        )

    def directory_stamp(self) -> str:
        """The mtimes of every scope and type directory, as one string: a note added, removed
        or saved by rename (as most editors do) changes it, so comparing it is a cheap check.
        The index keeps the stamp it was last brought in step with (`queries.DIR_STAMP_KEY`)."""
        stamps = []
        for root in self.roots.values():
            for directory in (root, *(root / t for t in NOTE_TYPES)):
                try:
                    stamps.append(os.lstat(directory).st_mtime_ns)
                except FileNotFoundError:
                    stamps.append(0)
        return ",".join(map(str, stamps))

    def stray_files(self) -> Iterator[Path]:
        """Markdown files outside any type directory: a note there is invisible to Anamnesis."""
        for root in self.roots.values():
            if not root.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                here = Path(dirpath)
                in_type_dir = here.parent == root and here.name in NOTE_TYPES
                if in_type_dir:
                    continue
                for name in filenames:
                    if (name.endswith(NOTE_SUFFIX) and not name.startswith(".") and here != root) or (
                        name.endswith(NOTE_SUFFIX) and here == root and name.upper() != "README.MD"
                    ):
                        yield here / name

    def unsafe_entries(self) -> Iterator[str]:
        """Symbolic links and other non-regular entries under every scope root (not .git): the
        store skips them; doctor lists them (relative to the home)."""
        for root in self.roots.values():
            if not root.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                if dirpath == str(root):
                    dirnames[:] = [d for d in dirnames if d != ".git"]
                for name in [*dirnames, *filenames]:
                    full = os.path.join(dirpath, name)
                    with contextlib.suppress(FileNotFoundError):
                        mode = os.lstat(full).st_mode
                        if not (stat_module.S_ISREG(mode) or stat_module.S_ISDIR(mode)):
                            yield self.rel(Path(full))


def file_digest(data: bytes) -> str:
    """The digest of a note file's bytes: what the index keeps per note and an edit names as its base."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _is_real_dir(path: Path) -> bool:
    try:
        return stat_module.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def read_regular_file(name: str, *, dir_fd: int | None = None, shown: str | None = None) -> bytes:
    """The bytes of the regular file `name` (relative to `dir_fd`), never through a link at it.

    `UnsafePathError` for a link, FIFO, device or directory; `FileNotFoundError` when missing.
    """
    return read_regular_file_stat(name, dir_fd=dir_fd, shown=shown)[0]


def read_regular_file_stat(
    name: str, *, dir_fd: int | None = None, shown: str | None = None
) -> tuple[bytes, os.stat_result]:
    """`read_regular_file`, with the file's status as of the read (size and mtime that go with
    these bytes: a full rebuild needs no stat of its own)."""
    try:
        fd = os.open(name, os.O_RDONLY | NOFOLLOW | _NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(f"{shown or name} is a symbolic link; Anamnesis does not follow links") from exc
        raise
    try:
        stat = os.fstat(fd)
        if not stat_module.S_ISREG(stat.st_mode):
            raise UnsafePathError(f"{shown or name} is not a regular file")
        # Plain reads of the size fstat gave, not a buffered file object: a rebuild reads every
        # note, and the wrapper cost a third of the time of reading a small file.
        first = os.read(fd, stat.st_size + 1)
        if len(first) <= stat.st_size:  # short of the size asked: the end of a regular file
            return first, stat
        parts = [first]
        while parts[-1]:
            parts.append(os.read(fd, 1 << 16))
        return b"".join(parts), stat
    finally:
        os.close(fd)
