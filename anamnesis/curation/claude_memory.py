"""Claude Code's own memory files: where they are, what note each reads as, whose project.

Claude Code keeps what it learns about a project in `<config dir>/projects/<slug>/memory/*.md`
(the config dir is `CLAUDE_CONFIG_DIR`, else `~/.claude`; the slug is the project's path with
`/` and `.` turned into `-`). A file may open with front-matter (`name`, `description`, `type`:
user | feedback | project | reference) or be plain markdown; `MEMORY.md` is Claude's index of
the others (older versions kept memories in it directly).

Reading is careful, because these files become notes that sync to every machine: symbolic
links are never followed (a link could point at a key or a password file), files are read up to
a cap, and names read from disk are only ever displayed or stored escaped, never joined into a
path we write. Blocking functions: call them in a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from anamnesis.notes import GLOBAL_PROJECT, MAX_BODY_CHARS, MAX_TITLE_CHARS, normalize_body
from anamnesis.project import resolve_project
from anamnesis.store import NOTE_SUFFIX

INDEX_FILE = "MEMORY.md"
KIND_TYPES = {"feedback": "procedural", "user": "semantic", "project": "semantic", "reference": "semantic"}
MAX_SOURCE_BYTES = 4 * MAX_BODY_CHARS  # what we read of one file before deciding it is too long
MAX_PROBE_DIRS = 200  # directories listed to match one slug to a path: bounded, whatever the disk
TRANSCRIPT_PROBE_BYTES = 64 * 1024
TRANSCRIPTS_PROBED = 3

Resolver = Callable[[str, Path], tuple[str, str]]

_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_LINK_RE = re.compile(r"\]\(([^)\s]+\.md)(?:#[^)]*)?\)")
_SLUG_CHARS_RE = re.compile(r"[^A-Za-z0-9]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True, slots=True)
class ClaudeMemoryFile:
    """One `projects/<slug>/memory/<name>.md`, read; `key` is its path relative to the config dir."""

    key: str
    slug: str  # the folder's name, printable
    folder: Path  # the folder itself
    name: str
    text: str
    sha256: str
    mtime: str


@dataclass(frozen=True, slots=True)
class ClaudeNote:
    """What a memory file says, as a note would: `kind` is Claude Code's own type."""

    type: str
    title: str
    body: str
    kind: str | None


def slug_of(path: str) -> str:
    """A path as Claude Code names its project folder, on the comparable side: every character
    but a letter or digit becomes `-` (Claude Code turns `/` and `.` into `-`; newer versions
    any other character too, so both spellings compare equal this way)."""
    return _SLUG_CHARS_RE.sub("-", path)


def scan_claude_memory(claude_dir: Path) -> tuple[list[ClaudeMemoryFile], list[tuple[str, str]]]:
    """Every memory file under `claude_dir/projects`, and (file, reason) for those not read."""
    projects = claude_dir / "projects"
    files: list[ClaudeMemoryFile] = []
    problems: list[tuple[str, str]] = []
    for slug_entry in list_dir(projects):
        if slug_entry.is_symlink():
            problems.append((f"projects/{display_name(slug_entry.name)}", "a symbolic link: not followed"))
            continue
        if not _is_real_dir(slug_entry):
            continue
        slug = display_name(slug_entry.name)
        memory_dir = Path(slug_entry.path) / "memory"
        if memory_dir.is_symlink() or not memory_dir.is_dir():
            if memory_dir.is_symlink():
                problems.append((f"projects/{slug}/memory", "a symbolic link: not followed"))
            continue
        for entry in list_dir(memory_dir):
            name = display_name(entry.name)
            key = f"projects/{slug}/memory/{name}"
            if entry.name.startswith(".") or not entry.name.endswith(NOTE_SUFFIX):
                continue
            if entry.is_symlink():
                problems.append((key, "a symbolic link: not followed"))
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                raw = read_capped(Path(entry.path))
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except OSError as exc:
                problems.append((key, f"cannot be read: {exc.strerror or exc}"))
                continue
            if raw is None:
                problems.append((key, f"longer than {MAX_SOURCE_BYTES} bytes: not a memory file"))
                continue
            text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
            files.append(
                ClaudeMemoryFile(
                    key=key,
                    slug=slug,
                    folder=Path(slug_entry.path),
                    name=name,
                    text=text,
                    sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    mtime=datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                )
            )
    files.sort(key=lambda f: f.key)
    return files, problems


def list_dir(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of `directory` by name; none when it is missing or unreadable."""
    try:
        with os.scandir(directory) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError:
        return []


def _is_real_dir(entry: os.DirEntry[str]) -> bool:
    return _is_dir(entry, follow_symlinks=False)


def _is_dir(entry: os.DirEntry[str], *, follow_symlinks: bool = True) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow_symlinks)
    except OSError:
        return False


def read_capped(path: Path) -> bytes | None:
    """The file's bytes, or None when it is longer than MAX_SOURCE_BYTES (never read whole)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_SOURCE_BYTES + 1)
    return None if len(data) > MAX_SOURCE_BYTES else data


def display_name(name: str) -> str:
    """A file name as text we can store and print: undecodable bytes and control characters shown
    escaped, so a hostile name cannot break a line of output or the note's front-matter."""
    readable = os.fsencode(name).decode("utf-8", errors="backslashreplace")
    return _CONTROL_RE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), readable)


def convert_claude_memory(text: str, name: str) -> ClaudeNote:
    """The type, title and body of a note made from one Claude Code memory file."""
    meta: dict[str, Any] = {}
    body = text
    if text.startswith("---\n"):
        end = text.find("\n---", 3)
        if end != -1 and text[end + 4 : end + 5] in ("", "\n"):
            try:
                loaded = yaml.safe_load(text[4:end])
            except yaml.YAMLError:
                loaded = None
            if isinstance(loaded, dict) or loaded is None:  # None: an empty front-matter block
                meta = loaded or {}
                body = text[end + 5 :]
    kind = _meta_text(meta.get("type"))
    nested = meta.get("metadata")
    if kind is None and isinstance(nested, dict):
        kind = _meta_text(nested.get("type"))
    kind = kind.lower() if kind else None
    body = normalize_body(body).strip("\n")
    title = _meta_text(meta.get("name"))
    if title is None:
        lines = body.split("\n")
        heading = next((i for i, line in enumerate(lines) if line.strip()), None)
        match = _HEADING_RE.match(lines[heading]) if heading is not None else None
        if match and heading is not None:
            title = match.group(1)
            body = "\n".join(lines[heading + 1 :]).strip("\n")
    if title is None:
        stem = name[: -len(NOTE_SUFFIX)] if name.endswith(NOTE_SUFFIX) else name
        title = stem.replace("_", " ").replace("-", " ")
    description = _meta_text(meta.get("description"))
    if description and description not in body:
        body = f"{description}\n\n{body}" if body else description
    return ClaudeNote(
        type=KIND_TYPES.get(kind or "", "semantic"),
        title=_one_line(title) or "Claude Code memory",
        body=body,
        kind=kind,
    )


def _meta_text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _one_line(text: str) -> str:
    line = " ".join(_CONTROL_RE.sub(" ", text).split())
    return line if len(line) <= MAX_TITLE_CHARS else line[: MAX_TITLE_CHARS - 1].rstrip() + "…"


def is_index_only(text: str) -> bool:
    """True for a MEMORY.md that only lists the other memory files (Claude Code's index)."""
    lines = [line for line in text.split("\n") if line.strip() and not _HEADING_RE.match(line)]
    return all(_LINK_RE.search(line) for line in lines)


class ProjectResolver:
    """The project key of a Claude Code project folder (a slug), found once per slug."""

    def __init__(self, user_home: Path | None) -> None:
        self.user_home = user_home
        self._known: dict[Path, tuple[str, str]] = {}
        self._probes = 0

    def __call__(self, slug: str, folder: Path) -> tuple[str, str]:
        """(project key, how it was found) for the project folder `folder` named `slug`."""
        if folder not in self._known:
            self._probes = 0
            self._known[folder] = self._resolve(slug, folder)
        return self._known[folder]

    def _resolve(self, slug: str, folder: Path) -> tuple[str, str]:
        cwd = self._cwd_from_transcripts(slug, folder)
        how = "the working directory in its transcripts"
        if cwd is None:
            cwd = self._matching_directory(slug)
            how = "a directory on this machine"
        if cwd is not None:
            return resolve_project(cwd, self.user_home), f"{how} ({cwd})"
        fallback = re.sub("-+", "-", slug_of(slug)).strip("-").lower() or GLOBAL_PROJECT
        return _one_line(fallback), "the folder name (no such directory here)"

    def _cwd_from_transcripts(self, slug: str, folder: Path) -> Path | None:
        """The `cwd` Claude Code wrote in this folder's newest transcripts, if it fits the slug."""
        transcripts = []
        for entry in list_dir(folder):
            try:
                if entry.name.endswith(".jsonl") and entry.is_file(follow_symlinks=False):
                    transcripts.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
            except OSError:
                continue
        for _, path in sorted(transcripts, reverse=True)[:TRANSCRIPTS_PROBED]:
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                with os.fdopen(fd, "rb") as handle:
                    head = handle.read(TRANSCRIPT_PROBE_BYTES)
            except OSError:
                continue
            for line in head.decode("utf-8", errors="replace").split("\n"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                cwd = record.get("cwd") if isinstance(record, dict) else None
                # A cwd that does not spell this folder's slug belongs to another folder: ignored.
                if isinstance(cwd, str) and cwd.startswith("/") and slug_of(cwd) == slug_of(slug):
                    found = Path(cwd)
                    if ".." not in found.parts:
                        return found
        return None

    def _matching_directory(self, slug: str) -> Path | None:
        """An existing directory whose path turns into `slug`, walking down from `/`.

        A slug is ambiguous (`-a-b` is `/a/b` or `/a-b`), so every matching entry is tried,
        depth first; at most MAX_PROBE_DIRS directories are listed.
        """
        wanted = slug_of(slug)
        if not wanted.startswith("-"):
            return None

        def walk(directory: Path, rest: str) -> Path | None:
            if not rest:
                return directory
            if self._probes >= MAX_PROBE_DIRS:
                return None
            self._probes += 1
            for entry in list_dir(directory):
                part = "-" + slug_of(entry.name)
                if rest.startswith(part) and (len(rest) == len(part) or rest[len(part)] == "-"):
                    if not _is_dir(entry):  # a link to a directory is fine here: we only look
                        continue
                    found = walk(Path(entry.path), rest[len(part) :])
                    if found is not None:
                        return found
            return None

        return walk(Path("/"), wanted)
