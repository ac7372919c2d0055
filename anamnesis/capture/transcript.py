"""Read a Claude Code transcript (JSONL) incrementally into a `SessionDigest`.

The session-end hook has about a second, and a long session's transcript runs to tens of
megabytes, so a read starts where the last one stopped (`TranscriptCursor`: a byte offset and
the digest so far) and parses only lines that can matter: a cheap substring test rejects tool
results, thinking blocks and bookkeeping lines before `json.loads` sees them.

The format is undocumented and changes between Claude Code versions (see the integration
reference, section 4), so everything is read defensively: a line that is not JSON is counted
and skipped, unknown types are ignored, a torn last line is left for the next read, and a line
too long to hold is skipped except for the file path of an edit, sniffed from its head.
Everything kept is capped, and text is redacted before it leaves this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import IO, Any

from anamnesis.capture.redact import clip_redacted

ASK_CHARS = 2_000
OUTCOME_CHARS = 2_000
SUMMARY_CHARS = 6_000
LATER_ASKS = 5
LATER_ASK_CHARS = 500
MAX_FILES = 500
PATH_CHARS = 1_024
MAX_LINE_BYTES = 8 * 1024 * 1024
# Raw text kept beyond a cap so that redaction sees a whole secret before the cut.
_MARGIN = 1_024
_HEAD_BYTES = 1_024  # how much of the file start identifies it across reads
_SNIFF_BYTES = 256 * 1024  # how much of an oversized line is searched for an edit's path
_PROMPT_SCAN_CHARS = 65_536

EDIT_TOOLS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path", "NotebookEdit": "notebook_path"}
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

_EDIT_NEEDLES = tuple(f'"name":"{name}"'.encode() for name in EDIT_TOOLS)
_SNIFF_TOOL_RE = re.compile(rb'"name":"(?:Edit|Write|MultiEdit|NotebookEdit)"')
_SNIFF_PATH_RE = re.compile(rb'"(?:file_path|notebook_path)":"((?:[^"\\]|\\.){1,2048}+)"')
_REMINDER_RE = re.compile(r"<(system-reminder|ide_[a-z_]{1,40})>.*?</\1>", re.DOTALL)
_COMMAND_NAME_RE = re.compile(r"<command-name>\s*(/?[^<\s]{1,100})\s*</command-name>")
_COMMAND_ARGS_RE = re.compile(r"<command-args>([^<]{0,2000})</command-args>")


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
                rest, ended = _skip_line(handle, size - offset - len(line))
                if not ended:
                    break  # an oversized line still being written
                offset += len(line) + rest
                builder.sniff_edit(line[:_SNIFF_BYTES])
            else:
                # The last line has no newline yet. A prefix of a JSON object is never itself
                # a JSON object, so if it parses it is whole; otherwise wait for the rest.
                record = _loads(line)
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


def _skip_line(handle: Any, limit: int) -> tuple[int, bool]:
    """Read past the rest of an oversized line, at most `limit` bytes: (bytes skipped, whether
    a newline ended it)."""
    skipped = 0
    while chunk := handle.readline(min(1024 * 1024, limit - skipped)):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            return skipped, True
    return skipped, False


def _loads(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


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
        record = _loads(line)
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
            self.summary = clean_compact_summary(_text_of(content)[: SUMMARY_CHARS * 4]) or self.summary
            return
        if record.get("isMeta") is True or "toolUseResult" in record or _has_tool_result(content):
            return
        text = _text_of(content)[:_PROMPT_SCAN_CHARS]
        text = _REMINDER_RE.sub("", text).strip() if "<" in text else text.strip()
        if not text:
            return
        if text.startswith("<command-name>"):
            if self.command is None:
                self.command = _command(text)
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
            path = _loads(b'"' + match.group(1) + b'"')
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


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text")
        return "\n".join(t for t in texts if isinstance(t, str))
    return ""


def _has_tool_result(content: Any) -> bool:
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)


def _command(text: str) -> str | None:
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
    text = _REMINDER_RE.sub("", text).strip()
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


# --- the conversation as text, for a model to summarize ----------------------------------------


@dataclass(frozen=True, slots=True)
class Turn:
    """One step of the conversation: `user`, `assistant`, `tool` (a call), `result` or `summary`."""

    role: str
    text: str


def conversation(path: str | os.PathLike[str], *, max_text: int = 65_536) -> Iterator[Turn]:
    """The session's conversation from the start, as raw (unredacted) turns of bounded size.

    Unlike `read_transcript` this reads every line, tool results included; it is for the
    detached summarizer, not the hook.
    """
    opened = open_transcript(path)
    if opened is None:
        return
    handle, size = opened
    with handle:
        read = 0
        while line := handle.readline(min(MAX_LINE_BYTES, size - read)):
            read += len(line)
            if not line.endswith(b"\n") and len(line) >= MAX_LINE_BYTES:
                skipped, _ended = _skip_line(handle, size - read)
                read += skipped
                continue
            record = _loads(line)
            if isinstance(record, dict) and record.get("isSidechain") is not True:
                yield from _turns(record, max_text)


def _turns(record: dict[str, Any], max_text: int) -> Iterator[Turn]:
    kind = record.get("type")
    message = record.get("message")
    if kind not in ("user", "assistant") or not isinstance(message, dict):
        return
    content = message.get("content")
    if kind == "user":
        if record.get("isCompactSummary") is True:
            yield Turn("summary", clean_compact_summary(_text_of(content))[:max_text])
            return
        if record.get("isMeta") is True:
            return
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    label = "error" if block.get("is_error") is True else "result"
                    yield Turn(label, _result_text(block.get("content"))[:max_text])
        text = _text_of(content).strip()
        if text.startswith("<command-name>"):
            command = _command(text)
            if command:
                yield Turn("user", command)
        elif text and not text.startswith(NOISE_PREFIXES):
            yield Turn("user", _REMINDER_RE.sub("", text[:max_text]).strip())
        return
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"].strip():
            yield Turn("assistant", block["text"][:max_text])
        elif block.get("type") == "tool_use":
            yield Turn("tool", _tool_call(block)[:max_text])


def _tool_call(block: dict[str, Any]) -> str:
    name = str(block.get("name") or "tool")
    tool_input = block.get("input")
    if not isinstance(tool_input, dict):
        return name
    for key in ("file_path", "notebook_path", "command", "pattern", "url", "description"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return f"{name} {value[:500]}"
    return f"{name} {json.dumps(tool_input, ensure_ascii=False)[:500]}"


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return (
            "\n".join(b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
            or "[non-text result]"
        )
    return ""
