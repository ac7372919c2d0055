"""Read a Claude Code transcript (JSONL) incrementally into a `SessionDigest`.

The session-end hook has about a second, and a long session's transcript runs to tens of
megabytes, so a read starts where the last one stopped (`TranscriptCursor`: a byte offset and
the digest so far) and parses only lines that can matter: a cheap substring test rejects tool
results, thinking blocks and bookkeeping lines before `json.loads` sees them.

The format is undocumented and changes between Claude Code versions (see the integration
reference, section 4), so everything is read defensively: a line that is not JSON is counted
and skipped, unknown types are ignored, a torn last line is left for the next read, and a line
too long to hold is skipped except for the file path of an edit, sniffed from its head.
Everything kept is capped, and text is redacted before it leaves this module. What a record's
pieces mean is in `transcript_records`; the whole conversation for a model, in `conversation`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from anamnesis.capture.redact import clip_redacted
from anamnesis.capture.transcript_records import (
    MAX_LINE_BYTES,
    NOISE_PREFIXES,
    REMINDER_RE,
    clean_compact_summary,
    has_tool_result,
    loads,
    open_transcript,
    skip_line,
    slash_command,
    text_of,
)

ASK_CHARS = 2_000
OUTCOME_CHARS = 2_000
SUMMARY_CHARS = 6_000
LATER_ASKS = 5
LATER_ASK_CHARS = 500
MAX_FILES = 500
PATH_CHARS = 1_024
# Raw text kept beyond a cap so that redaction sees a whole secret before the cut.
_MARGIN = 1_024
_HEAD_BYTES = 1_024  # how much of the file start identifies it across reads
_SNIFF_BYTES = 256 * 1024  # how much of an oversized line is searched for an edit's path
_PROMPT_SCAN_CHARS = 65_536

EDIT_TOOLS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path", "NotebookEdit": "notebook_path"}

_EDIT_NEEDLES = tuple(f'"name":"{name}"'.encode() for name in EDIT_TOOLS)
_SNIFF_TOOL_RE = re.compile(rb'"name":"(?:Edit|Write|MultiEdit|NotebookEdit)"')
_SNIFF_PATH_RE = re.compile(rb'"(?:file_path|notebook_path)":"((?:[^"\\]|\\.){1,2048}+)"')


@dataclass(frozen=True, slots=True)
class SessionDigest:
    """What a session did, as far as the transcript has been read. Text fields are redacted."""

    session_id: str | None = None
    cwd: str | None = None
    git_branch: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    ask: str | None = None  # the first real prompt
    command: str | None = None  # the first slash command, for sessions that only ran one
    later_asks: tuple[str, ...] = ()  # the most recent prompts after the first
    prompts: int = 0
    outcome: str | None = None  # the text of the last assistant message that had text
    outcome_message_id: str | None = None  # text blocks of one message arrive line by line
    files_touched: tuple[str, ...] = ()
    files_dropped: int = 0
    compact_summary: str | None = None  # Claude's own summary at the latest compaction
    compactions: int = 0
    bad_lines: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionDigest:
        """The digest saved by `to_dict`; fields of the wrong type fall back to their default."""
        defaults = cls()
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            value = data.get(name)
            default = getattr(defaults, name)
            if isinstance(default, tuple):
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    values[name] = tuple(value)
                else:
                    values[name] = default
            elif isinstance(default, int):
                values[name] = value if isinstance(value, int) and not isinstance(value, bool) else default
            else:
                values[name] = value if isinstance(value, str) else default
        return cls(**values)

    def with_compact_summary(self, text: str) -> SessionDigest:
        """This digest with a compaction summary handed over by the PostCompact hook."""
        cleaned = clean_compact_summary(text)
        return replace(self, compact_summary=clip_redacted(cleaned, SUMMARY_CHARS)) if cleaned else self


@dataclass(frozen=True, slots=True)
class TranscriptCursor:
    """How far a transcript has been read, and what it said up to there."""

    offset: int = 0
    head_len: int = 0
    head_sha: str = ""
    digest: SessionDigest = field(default_factory=SessionDigest)

    def to_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "head_len": self.head_len,
            "head_sha": self.head_sha,
            "digest": self.digest.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TranscriptCursor:
        offset, head_len, head_sha = data.get("offset"), data.get("head_len"), data.get("head_sha")
        digest = data.get("digest")
        if not (isinstance(offset, int) and isinstance(head_len, int) and isinstance(head_sha, str)):
            return cls()
        if offset < 0 or head_len < 0 or not isinstance(digest, Mapping):
            return cls()
        return cls(offset, head_len, head_sha, SessionDigest.from_dict(digest))


@dataclass(frozen=True, slots=True)
class TranscriptRead:
    """The result of one read: the digest, the cursor to save, and how much work it took."""

    digest: SessionDigest
    cursor: TranscriptCursor
    bytes_read: int
    lines_parsed: int
    restarted: bool  # the file was replaced or shrank, so it was read from the start


def read_transcript(
    path: str | os.PathLike[str],
    cursor: TranscriptCursor | None = None,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> TranscriptRead:
    """Read what was appended to the transcript at `path` since `cursor` (blocking).

    A missing file reads as nothing new: at SessionStart the transcript may not exist yet.
    """
    cursor = cursor or TranscriptCursor()
    opened = open_transcript(path)
    if opened is None:
        return TranscriptRead(cursor.digest, cursor, 0, 0, False)
    handle, size = opened
    with handle:
        restarted = False
        if cursor.offset and not _same_file(handle, size, cursor):
            cursor, restarted = TranscriptCursor(), True
        builder = _Builder(cursor.digest)
        handle.seek(cursor.offset)
        offset, parsed = cursor.offset, 0
        # Up to the size at open: what is appended meanwhile is read next time.
        while line := handle.readline(min(max_line_bytes, size - offset)):
            if line.endswith(b"\n"):
                offset += len(line)
                parsed += builder.feed(line)
            elif len(line) >= max_line_bytes:
                rest, ended = skip_line(handle, size - offset - len(line))
                if not ended:
                    break  # an oversized line still being written
                offset += len(line) + rest
                builder.sniff_edit(line[:_SNIFF_BYTES])
            else:
                # The last line has no newline yet. A prefix of a JSON object is never itself
                # a JSON object, so if it parses it is whole; otherwise wait for the rest.
                record = loads(line)
                if isinstance(record, dict):
                    offset += len(line)
                    parsed += 1
                    builder.dispatch(record)
                break
        head_len = min(offset, _HEAD_BYTES)
        handle.seek(0)
        head_sha = hashlib.sha256(handle.read(head_len)).hexdigest()
    digest = builder.freeze()
    new_cursor = TranscriptCursor(offset, head_len, head_sha, digest)
    return TranscriptRead(digest, new_cursor, offset - cursor.offset, parsed, restarted)


def _same_file(handle: Any, size: int, cursor: TranscriptCursor) -> bool:
    """The file still starts as it did and has not shrunk: it is the same, appended to."""
    if size < cursor.offset:
        return False
    handle.seek(0)
    return hashlib.sha256(handle.read(cursor.head_len)).hexdigest() == cursor.head_sha


def _wanted(line: bytes) -> bool:
    """Whether a line can change the digest; a cheap test that may say yes too often, never no."""
    if b'"type":"' not in line:
        return bool(line.strip())  # not the compact form Claude Code writes: parse to find out
    if b'"type":"assistant"' in line:
        return b'"type":"text"' in line or any(needle in line for needle in _EDIT_NEEDLES)
    if b'"type":"user"' in line:
        # A tool result (often the largest line of all) is never a prompt. Structural quotes are
        # unescaped, so this cannot be text inside a prompt.
        return b'"type":"tool_result"' not in line
    return b'"compact_boundary"' in line


class _Builder:
    """Accumulates one read into a digest; raw text is redacted once, when frozen."""

    def __init__(self, digest: SessionDigest) -> None:
        self.d = digest
        self.ask = digest.ask
        self.later = list(digest.later_asks)
        self.outcome_id = digest.outcome_message_id
        self.outcome_parts = [digest.outcome] if digest.outcome else []
        self.outcome_len = len(digest.outcome or "")
        self.files = dict.fromkeys(digest.files_touched)
        self.files_dropped = digest.files_dropped
        self.summary = digest.compact_summary
        self.meta: dict[str, Any] = {}
        self.prompts = digest.prompts
        self.compactions = digest.compactions
        self.bad_lines = digest.bad_lines
        self.command = digest.command

    def feed(self, line: bytes) -> int:
        """Take in one complete line; 1 if it was parsed, 0 if skipped unparsed."""
        if not _wanted(line):
            return 0
        record = loads(line)
        if isinstance(record, dict):
            self.dispatch(record)
        else:
            self.bad_lines += 1
        return 1

    def dispatch(self, record: dict[str, Any]) -> None:
        if record.get("isSidechain") is True:
            return  # a subagent's conversation, not the session's
        self._envelope(record)
        kind = record.get("type")
        if kind == "assistant":
            self._assistant(record)
        elif kind == "user":
            self._user(record)
        elif kind == "system" and record.get("subtype") == "compact_boundary":
            self.compactions += 1

    def _envelope(self, record: dict[str, Any]) -> None:
        for key, name in (("sessionId", "session_id"), ("cwd", "cwd"), ("timestamp", "started_at")):
            value = record.get(key)
            if isinstance(value, str) and value and getattr(self.d, name) is None and name not in self.meta:
                self.meta[name] = value[:PATH_CHARS]
        stamp = record.get("timestamp")
        if isinstance(stamp, str) and stamp:
            self.meta["ended_at"] = stamp[:64]
        branch = record.get("gitBranch")
        if isinstance(branch, str) and branch.strip():
            self.meta["git_branch"] = branch.strip()[:256]

    def _user(self, record: dict[str, Any]) -> None:
        message = record.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if record.get("isCompactSummary") is True:
            self.summary = clean_compact_summary(text_of(content)[: SUMMARY_CHARS * 4]) or self.summary
            return
        if record.get("isMeta") is True or "toolUseResult" in record or has_tool_result(content):
            return
        text = text_of(content)[:_PROMPT_SCAN_CHARS]
        text = REMINDER_RE.sub("", text).strip() if "<" in text else text.strip()
        if not text:
            return
        if text.startswith("<command-name>"):
            if self.command is None:
                self.command = slash_command(text)
            return
        if text.startswith(NOISE_PREFIXES):
            return
        self.prompts += 1
        if self.ask is None:
            self.ask = text[: ASK_CHARS + _MARGIN]
        else:
            self.later = [*self.later, text[: LATER_ASK_CHARS + _MARGIN]][-LATER_ASKS:]

    def _assistant(self, record: dict[str, Any]) -> None:
        message = record.get("message")
        if not isinstance(message, dict):
            return
        message_id = message.get("id") or record.get("uuid") or ""
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            return
        for block in blocks:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                text = block.get("text")
                if isinstance(text, str) and text.strip():
                    self._add_text(str(message_id), text)
            elif block.get("type") == "tool_use":
                key = EDIT_TOOLS.get(str(block.get("name")))
                tool_input = block.get("input")
                if key and isinstance(tool_input, dict):
                    path = tool_input.get(key)
                    if isinstance(path, str) and path.strip():
                        self._add_file(path.strip())

    def _add_text(self, message_id: str, text: str) -> None:
        if message_id != self.outcome_id:
            self.outcome_id, self.outcome_parts, self.outcome_len = message_id, [], 0
        room = OUTCOME_CHARS + _MARGIN - self.outcome_len
        if room > 0:
            self.outcome_parts.append(text[:room])
            self.outcome_len += min(len(text), room) + 1

    def _add_file(self, path: str) -> None:
        path = path[:PATH_CHARS]
        if path in self.files:
            return
        if len(self.files) < MAX_FILES:
            self.files[path] = None
        else:
            self.files_dropped += 1

    def sniff_edit(self, head: bytes) -> None:
        """An oversized line cannot be parsed; an edit's file path sits near its start."""
        if b'"type":"assistant"' not in head or b'"isSidechain":true' in head or not _SNIFF_TOOL_RE.search(head):
            return
        for match in _SNIFF_PATH_RE.finditer(head):
            path = loads(b'"' + match.group(1) + b'"')
            if isinstance(path, str) and path.strip():
                self._add_file(path.strip())

    def freeze(self) -> SessionDigest:
        outcome = "\n".join(self.outcome_parts).strip()
        return replace(
            self.d,
            **self.meta,
            ask=clip_redacted(self.ask, ASK_CHARS) if self.ask else None,
            command=clip_redacted(self.command, 200) if self.command else None,
            later_asks=tuple(clip_redacted(a, LATER_ASK_CHARS) for a in self.later),
            outcome=clip_redacted(outcome, OUTCOME_CHARS) if outcome else None,
            outcome_message_id=self.outcome_id,
            files_touched=tuple(self.files),
            files_dropped=self.files_dropped,
            compact_summary=clip_redacted(self.summary, SUMMARY_CHARS) if self.summary else None,
            prompts=self.prompts,
            compactions=self.compactions,
            bad_lines=self.bad_lines,
        )
