"""The pieces of a Claude Code transcript (JSONL) that every reader of it needs.

Opening one safely (its path comes from a hook's payload), stepping past a line too long to
hold, parsing a line that may not be JSON, and reading what a record's content says: its text,
a slash command, Claude's compaction summary. Both readers build on this: the incremental
digest of `transcript` (for the hook) and the whole `conversation` (for the summarizer).
"""

from __future__ import annotations

import json
import os
import re
import stat
from typing import IO, Any

MAX_LINE_BYTES = 8 * 1024 * 1024

NOISE_PREFIXES = (
    "<command-message>",
    "<local-command-",
    "<system-reminder>",
    "<task-notification>",
    "<bash-input>",
    "<bash-stdout>",
    "<bash-stderr>",
    "<user-memory-input>",
    "Caveat:",
    "[Request interrupted",
    "This session is being continued",
)

REMINDER_RE = re.compile(r"<(system-reminder|ide_[a-z_]{1,40})>.*?</\1>", re.DOTALL)
_COMMAND_NAME_RE = re.compile(r"<command-name>\s*(/?[^<\s]{1,100})\s*</command-name>")
_COMMAND_ARGS_RE = re.compile(r"<command-args>([^<]{0,2000})</command-args>")


def open_transcript(path: str | os.PathLike[str]) -> tuple[IO[bytes], int] | None:
    """The transcript at `path`, open for reading, and its size now; None when it is not a
    regular file we can read (missing, a directory, a FIFO, a device, a socket).

    The path comes from a hook's payload: a FIFO would block `open` until a writer appears and
    `/dev/zero` never ends, so the open never waits (O_NONBLOCK) and only a regular file is read,
    no further than the size it had when opened.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb"), info.st_size


def skip_line(handle: Any, limit: int) -> tuple[int, bool]:
    """Read past the rest of an oversized line, at most `limit` bytes: (bytes skipped, whether
    a newline ended it)."""
    skipped = 0
    while chunk := handle.readline(min(1024 * 1024, limit - skipped)):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            return skipped, True
    return skipped, False


def loads(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text")
        return "\n".join(t for t in texts if isinstance(t, str))
    return ""


def has_tool_result(content: Any) -> bool:
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)


def slash_command(text: str) -> str | None:
    """`/name args` from a slash-command record (`<command-name>/name</command-name>…`)."""
    name = _COMMAND_NAME_RE.search(text)
    if name is None:
        return None
    args = _COMMAND_ARGS_RE.search(text)
    command = name.group(1) if name.group(1).startswith("/") else "/" + name.group(1)
    return f"{command} {args.group(1).strip()}".strip() if args else command


_SUMMARY_PREAMBLE_ENDS = (
    "The summary below covers the earlier portion of the conversation.",
    "The conversation is summarized below:",
)
_SUMMARY_TRAILERS = (
    "If you need specific details from before compaction",
    "Please continue the conversation from where we left",
)


def clean_compact_summary(text: str) -> str:
    """Claude's compaction summary without the boilerplate around it (and its local path)."""
    text = REMINDER_RE.sub("", text).strip()
    if text.startswith("This session is being continued"):
        for end in _SUMMARY_PREAMBLE_ENDS:
            at = text.find(end)
            if at != -1:
                text = text[at + len(end) :]
                break
        else:
            text = text.split("\n", 1)[1] if "\n" in text else ""
    for trailer in _SUMMARY_TRAILERS:
        at = text.find(trailer)
        if at != -1:
            text = text[:at]
    text = text.strip()
    if text.lower().startswith("summary:"):
        text = text[len("summary:") :].strip()
    return text
