"""The canonical notes on disk: where each note lives, atomic writes, reads, deletes, scans.

These functions block (they touch the file system) and are meant to run in a worker thread
(`anyio.to_thread.run_sync`); `Memory` does that. Every id and type is validated before it
becomes part of a path, so nothing a user or a model types can escape the store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from anamnesis.config import Layout
from anamnesis.errors import NoteValidationError
from anamnesis.ids import is_safe_id
from anamnesis.notes import NOTE_TYPES, SCOPES, Note, parse_note, render_note, validate_note

NOTE_SUFFIX = ".md"


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
        for path in self.candidates(note_id):
            if path.is_file():
                return path
        return None

    def read(self, path: Path) -> Note:
        """Parse the note at `path`; its scope comes from the directory it is in."""
        return self.read_text(path.read_bytes().decode("utf-8", errors="replace"), path)

    def read_text(self, text: str, path: Path) -> Note:
        """Parse `text` read from `path`; the directory, not the front-matter, sets the scope."""
        return self.parse_file(text, self.rel(path), self.scope_of(path))

    @staticmethod
    def parse_file(text: str, rel: str, scope: str | None) -> Note:
        note = parse_note(text, rel)
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
        atomic_write_text(path, render_note(note))
        for other in self.candidates(note.id):
            if other != path and other.exists():
                other.unlink()
        return path

    def delete(self, note_id: str) -> list[Path]:
        removed = []
        for path in self.candidates(note_id):
            if path.exists():
                path.unlink()
                removed.append(path)
        return removed

    def scan(self) -> Iterator[NoteFile]:
        """Every `.md` file in a type directory of every scope, with its size and mtime."""
        for scope, root in self.roots.items():
            root_rel = self.rel(root)
            for note_type in NOTE_TYPES:
                directory = root / note_type
                prefix = f"{root_rel}/{note_type}/"
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
                            stat = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue  # removed while we looked
                        yield NoteFile(
                            path=entry.path,
                            rel=prefix + name,
                            scope=scope,
                            type_dir=note_type,
                            size=stat.st_size,
                            mtime_ns=stat.st_mtime_ns,
                        )

    def directory_stamp(self) -> str:
        """The mtimes of every scope and type directory, as one string: a note added, removed
        or saved by rename (as most editors do) changes it, so comparing it is a cheap check.
        The index keeps the stamp it was last brought in step with (`queries.DIR_STAMP_KEY`)."""
        stamps = []
        for root in self.roots.values():
            for directory in (root, *(root / t for t in NOTE_TYPES)):
                try:
                    stamps.append(directory.stat().st_mtime_ns)
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


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory, fsync, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # here, not at the top: the hooks read the store's stamps and never write

    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
