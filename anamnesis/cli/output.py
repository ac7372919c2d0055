"""What the CLI prints: the stable JSON shapes, the human format, and a progress bar.

JSON shapes (documented in the README; keys are only ever added, never renamed):
- note summary: id, type, title, project, scope, tags, created_at, updated_at, machine_id
- note (get): a summary plus body, prov_source, confidence, prov_model, prov_session,
  supersedes, superseded_by, user_id, workspace_id, path, extra
- search hit: a summary (no machine_id) plus score, snippet (matched words in «»), match
- failure (any `--json` command, exit status 1): ok (false), error, error_type
"""

from __future__ import annotations

import json
import re
from typing import Any, TextIO, cast

from anamnesis.notes import Note
from anamnesis.queries import NoteSummary
from anamnesis.search import Hit
from anamnesis.shapes import MARK_CLOSE, MARK_OPEN

_BOLD, _DIM, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"


# What a terminal must never receive from a note (which may come from any machine of the
# fleet): C0 and C1 control characters, which start escape sequences that retitle or clear the
# terminal, rewrite the clipboard or hide text, and bidirectional overrides, which reorder
# what is shown. Newline and tab stay; so do the three styles this module writes itself.
_OWN_STYLES = frozenset(("\x1b[1m", "\x1b[2m", "\x1b[0m"))
_UNSAFE_RE = re.compile("\x1b\\[[0-2]m|[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """`text` with every character a terminal would act on shown as an escape (`\\x1b`)."""
    return _UNSAFE_RE.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _OWN_STYLES:
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class TerminalSafe:
    """A text stream for human output: everything written passes through `terminal_safe`.

    The CLI wraps stdout and stderr in one of these; JSON, `get --raw` and the progress bar
    write to `raw` (`unfiltered`), since they are data or our own control sequences.
    """

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        return self.raw.write(terminal_safe(text))

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding…
        return getattr(self.raw, name)


def human_stream(stream: TextIO) -> TextIO:
    return cast(TextIO, TerminalSafe(stream))


def unfiltered(stream: TextIO) -> TextIO:
    """The stream under a `TerminalSafe`, for data that must pass byte for byte."""
    return stream.raw if isinstance(stream, TerminalSafe) else stream


def print_json(stream: TextIO, value: Any) -> None:
    unfiltered(stream).write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


class Style:
    """Bold and dim only on a terminal; plain text in a pipe."""

    def __init__(self, stream: TextIO) -> None:
        self.enabled = stream.isatty()

    def bold(self, text: str) -> str:
        return f"{_BOLD}{text}{_RESET}" if self.enabled else text

    def dim(self, text: str) -> str:
        return f"{_DIM}{text}{_RESET}" if self.enabled else text


def format_hit(rank: int, hit: Hit, style: Style) -> str:
    head = f"{rank:>2}. {style.bold(hit.title)}  {style.dim(f'[{hit.type}] {hit.project}  {hit.id}')}"
    snippet = hit.snippet_with(_BOLD, _RESET) if style.enabled else hit.snippet_with(MARK_OPEN, MARK_CLOSE)
    return f"{head}\n    {snippet}" if snippet else head


def format_summary(note: NoteSummary, style: Style) -> str:
    tags = f"  #{' #'.join(note.tags)}" if note.tags else ""
    return (
        f"{note.updated_at[:10]}  {style.bold(note.title)}{tags}\n"
        f"            {style.dim(f'[{note.type}] {note.project} ({note.scope})  {note.id}')}"
    )


def format_note(note: Note, path: str, superseded_by: list[str], style: Style) -> str:
    lines = [
        style.bold(note.title),
        style.dim(
            f"{note.id}  [{note.type}] {note.project} ({note.scope})  from {note.machine_id or '?'}  "
            f"updated {note.updated_at}"
        ),
    ]
    if note.tags:
        lines.append(style.dim("tags: " + ", ".join(note.tags)))
    if note.supersedes:
        lines.append(style.dim("supersedes: " + ", ".join(note.supersedes)))
    if superseded_by:
        lines.append(style.dim("retired, superseded by: " + ", ".join(superseded_by)))
    lines.append(style.dim(f"file: {path}"))
    lines.append("")
    lines.append(note.body)
    return "\n".join(lines)


class ProgressBar:
    """A one-line bar on a terminal's stderr; silent when stderr is a pipe or a file."""

    WIDTH = 30

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = unfiltered(stream)  # its \r redraws the line: our own control character
        self.label = label
        self.enabled = stream.isatty()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        filled = self.WIDTH * done // total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total}")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def semantic_line(semantic: dict[str, Any], embedded: int | None = None) -> str:
    """One line on semantic search: its state, how many notes have a vector, and why not."""
    counts = f"{semantic['embedded']}/{semantic['notes']} notes embedded"
    fresh = f" ({embedded} just now)" if embedded else ""
    if semantic["state"] in ("ready", "available"):
        return f"semantic search on: {counts}{fresh}"
    return f"semantic search {semantic['state']}, search is lexical only: {semantic['problem']} ({counts})"
