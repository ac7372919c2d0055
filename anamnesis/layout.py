"""What memory/ may hold: the rule every commit made here and every tree arriving from a hub
is held to.

memory/ is a git work tree that other machines write into through the hub, so anything in it
may have been put there by a compromised or buggy machine. It holds notes
(`<type>/<name>.md`), the repository's README, the `.gitattributes` that `init` writes, and
the fleet files (`.fleet/<machine>.json`), all as regular files. Nothing else is committed
here (an editor backup or a `.env` saved in memory/ stays on this machine, and sync says so),
and nothing else is taken in from a hub: a symbolic link, a submodule, a `.gitattributes`
that could select a filter or merge driver, or a file anywhere else stops the sync before
the work tree changes.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from anamnesis.notes import NOTE_TYPES

FLEET_DIR = ".fleet"
README = "README.md"
GITATTRIBUTES = ".gitattributes"
# The only .gitattributes memory/ may hold: the one `init` writes. Any other could name a
# filter, diff or merge driver the user configured globally, and git would run it.
GITATTRIBUTES_TEXT = "*.md text eol=lf\n"
CONTENT_CHECKED = frozenset({GITATTRIBUTES})  # paths whose content `content_problem` judges
_FILE_MODES = frozenset({"100644", "100755"})
_MODE_NAMES = {"120000": "a symbolic link", "160000": "a submodule", "040000": "a directory"}


def layout_problem(path: str, mode: str = "100644") -> str | None:
    """Why `path` (relative to memory/, git's `mode`) may not be in memory/; None when it may."""
    if mode not in _FILE_MODES:
        return _MODE_NAMES.get(mode, f"an entry of mode {mode}")
    if path_allowed(path):
        return None
    return "outside the note layout"


def path_allowed(path: str) -> bool:
    """True for the paths memory/ may hold (see the module docstring); says nothing of content."""
    parts = PurePosixPath(path).parts
    if len(parts) == 1:
        return parts[0] in (README, GITATTRIBUTES)
    if len(parts) != 2 or parts[1].startswith("."):
        return False
    folder, name = parts
    if folder in NOTE_TYPES:
        return name.endswith(".md")
    return folder == FLEET_DIR and name.endswith(".json")


def content_problem(path: str, data: bytes) -> str | None:
    """Why this content may not be at `path`: only `.gitattributes` is held to its content."""
    if path == GITATTRIBUTES and data != GITATTRIBUTES_TEXT.encode():
        return "a .gitattributes other than the one Anamnesis writes (it could run a filter or merge driver)"
    return None
