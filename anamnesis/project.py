"""Which project a working directory belongs to, by a key that is the same on every machine.

The same repository lives at different paths on different machines, so the key is (DESIGN
section 5): a `.anamnesis/project` marker walking up from cwd, else the normalized `origin` URL,
else the git top-level directory name, else the cwd basename, else `global`.

Reads files only (no `git` subprocess): this runs on every hook, where milliseconds count.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from anamnesis.notes import GLOBAL_PROJECT

MARKER = Path(".anamnesis") / "project"
_SCP_RE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")
_SECTION_RE = re.compile(r'^\s*\[\s*remote\s+"origin"\s*\]\s*$')


def normalize_remote_url(url: str) -> str:
    """`https://u@github.com/acme/api.git`, `git@github.com:acme/api` → `github.com/acme/api`."""
    url = url.strip()
    if not url:
        return ""
    if "://" in url:
        rest = url.split("://", 1)[1]
        host_part, _, path = rest.partition("/")
        host = host_part.rsplit("@", 1)[-1].split(":", 1)[0]
    elif (match := _SCP_RE.match(url)) is not None:
        host, path = match.group(1), match.group(2)
    else:  # a local path used as a remote
        host, path = "", url
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    key = f"{host}/{path}" if host else path
    return key.strip("/").lower()


def resolve_project(cwd: Path, home: Path | None = None) -> str:
    """The project key for `cwd`; see the module docstring for the order of rules."""
    cwd = cwd.absolute()
    stop = home.absolute() if home is not None else None
    marker = _find_marker(cwd, stop)
    if marker:
        return marker
    git_dir, top = _find_git(cwd)
    if git_dir is not None and top is not None:
        origin = _origin_url(git_dir)
        if origin and (key := normalize_remote_url(origin)):
            return key
        if top.name:
            return top.name.lower()
    if cwd.name and (stop is None or cwd != stop):
        return cwd.name.lower()
    return GLOBAL_PROJECT


def _find_marker(cwd: Path, stop: Path | None) -> str | None:
    for directory in (cwd, *cwd.parents):
        if stop is not None and directory == stop:
            return None  # the home's own .anamnesis is the store, not a marker
        candidate = directory / MARKER
        try:
            text = candidate.read_text(encoding="utf-8").strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
            continue
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            return text.splitlines()[0].strip()
    return None


def _find_git(cwd: Path) -> tuple[Path | None, Path | None]:
    """(the git dir holding config, the work tree top) for `cwd`, or (None, None)."""
    for directory in (cwd, *cwd.parents):
        dot_git = directory / ".git"
        if dot_git.is_dir():
            return dot_git, directory
        if dot_git.is_file():
            try:
                line = dot_git.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                return None, directory
            if line.startswith("gitdir:"):
                git_dir = (directory / line.split(":", 1)[1].strip()).resolve()
                common = git_dir / "commondir"  # a linked worktree keeps config in the main repo
                if common.is_file():
                    with contextlib.suppress(OSError):
                        git_dir = (git_dir / common.read_text(encoding="utf-8").strip()).resolve()
                return git_dir, directory
            return None, directory
    return None, None


def _origin_url(git_dir: Path) -> str | None:
    try:
        lines = (git_dir / "config").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    in_origin = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            in_origin = _SECTION_RE.match(stripped) is not None
            continue
        if in_origin and "=" in stripped:
            key, value = stripped.split("=", 1)
            if key.strip().lower() == "url":
                return value.strip().strip('"')
    return None
