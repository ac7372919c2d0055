"""The session's whole conversation as bounded turns, for a model to summarize.

Unlike the hook's incremental digest (`transcript`), this reads every line, tool calls and
results included, and is run by the detached summarizer, where time is not short.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from anamnesis.capture.transcript_records import (
    MAX_LINE_BYTES,
    NOISE_PREFIXES,
    REMINDER_RE,
    clean_compact_summary,
    loads,
    open_transcript,
    skip_line,
    slash_command,
    text_of,
)


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
                skipped, _ended = skip_line(handle, size - read)
                read += skipped
                continue
            record = loads(line)
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
            yield Turn("summary", clean_compact_summary(text_of(content))[:max_text])
            return
        if record.get("isMeta") is True:
            return
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    label = "error" if block.get("is_error") is True else "result"
                    yield Turn(label, _result_text(block.get("content"))[:max_text])
        text = text_of(content).strip()
        if text.startswith("<command-name>"):
            command = slash_command(text)
            if command:
                yield Turn("user", command)
        elif text and not text.startswith(NOISE_PREFIXES):
            yield Turn("user", REMINDER_RE.sub("", text[:max_text]).strip())
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
