"""The OpenAI-compatible model client, and the optional session summary built on it.

`chat` is the one client: a chat completion POSTed with the standard library (`urllib`, so the
capture path imports nothing heavy), bounded in time and size, returning the reply's text or
raising `ModelError` that says why not. Reflection (`anamnesis.curation.reflect`) uses it too.

`summarize` runs in a detached `anamnesis capture` process, never inside a hook's time budget,
and it is strictly optional: any failure (no answer in time, an HTTP error, a reply that is not
the JSON object asked for) returns None and the caller keeps the heuristic note.

What leaves the machine is redacted first, and bounded: each tool result is cut to 2,000
characters and the conversation to `max_tokens * 4` characters, keeping its first 60 % and
last 40 % (the ask and the outcome). The reply is redacted again before it becomes a note.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import urllib.parse
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from anamnesis.capture.conversation import Turn
from anamnesis.capture.redact import clip_redacted, redact
from anamnesis.config import ReflectionSettings
from anamnesis.errors import ModelError

logger = logging.getLogger(__name__)

RESULT_CHARS = 2_000
TURN_CHARS = 4_000
HEAD_SHARE = 0.6
OUTPUT_TOKENS = 1_024
TITLE_CHARS = 120
BODY_CHARS = 8_000
MAX_RESPONSE_BYTES = 1024 * 1024

SYSTEM_PROMPT = """\
You write the memory of one Claude Code session, for the developer and for Claude in later \
sessions. Read the session below and reply with only a JSON object, no prose around it:
{"skip": boolean, "title": string, "body": string}
Set "skip" to true when the session left nothing worth remembering (a greeting, a question \
answered with nothing learned, work abandoned at once); then title and body may be empty.
Otherwise "title" is one line of at most 80 characters naming the topic and what was done \
(the subject by name: "Nightly billing export: fixed expired S3 credentials", not "Fixed a bug"), \
and "body" is short markdown (at most 15 lines) whose first line says what the session was \
about in words a later search would use: what was asked, what was done and decided and why, which \
files changed, what is left to do, and anything learned about the project or the developer's \
preferences that a later session should know.
Never copy secrets (keys, tokens, passwords, private data) into the reply."""

_LABELS = {
    "user": "User",
    "assistant": "Claude",
    "tool": "Tool call",
    "result": "Tool result",
    "error": "Tool error",
    "summary": "Earlier-context summary",
}


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """A model's verdict on a session; `model` is what the note records as `prov_model`."""

    skip: bool
    title: str
    body: str
    model: str


def model_label(settings: ReflectionSettings) -> str:
    """`provider/model` (e.g. `openai/gpt-4o-mini`) unless the model name already has a `/`."""
    model = settings.model or "unknown"
    if "/" in model or settings.provider in ("", "heuristic"):
        return model
    return f"{settings.provider}/{model}"


def build_input(turns: Iterable[Turn], max_chars: int) -> str:
    """The conversation as redacted text of at most about `max_chars`: head 60 %, tail 40 %.

    Turns are cut first (tool results hardest), budgeted by their raw size, and only the
    turns that are kept are redacted, which bounds the work on a long session.
    """
    max_chars = max(max_chars, 1_000)
    head_budget = int(max_chars * HEAD_SHARE)
    tail_budget = max_chars - head_budget
    head: list[tuple[str, str, int]] = []
    tail: deque[tuple[str, str, int]] = deque()
    head_len = tail_len = elided = 0
    for turn in turns:
        cap = min(RESULT_CHARS if turn.role in ("result", "error") else TURN_CHARS, tail_budget)
        entry = (_LABELS.get(turn.role, turn.role), turn.text, cap)
        size = min(len(turn.text), cap) + 16
        if not tail and head_len + size <= head_budget:
            head.append(entry)
            head_len += size
            continue
        tail.append(entry)
        tail_len += size
        while tail_len > tail_budget and len(tail) > 1:
            _, text, old_cap = tail.popleft()
            tail_len -= min(len(text), old_cap) + 16
            elided += 1
    lines = [_render(entry) for entry in head]
    if elided:
        lines.append(f"[… {elided} turns left out …]")
    lines.extend(_render(entry) for entry in tail)
    return "\n\n".join(lines)


def _render(entry: tuple[str, str, int]) -> str:
    label, text, cap = entry
    return f"{label}: {clip_redacted(text.strip(), cap)}"


def build_request(settings: ReflectionSettings, transcript: str, context: str = "") -> dict[str, Any]:
    """The chat-completion request body; everything in it is redacted."""
    user = f"{redact(context).strip()}\n\nSession transcript (oldest first):\n\n{redact(transcript)}".strip()
    return {
        "model": settings.model,
        "temperature": 0.2,
        "max_tokens": OUTPUT_TOKENS,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
    }


def parse_summary(content: str, model: str) -> ModelSummary | None:
    """The summary in the reply's text, or None unless it is exactly the JSON object asked for."""
    try:
        reply = parse_json_content(content)
    except ModelError:
        return None
    if not isinstance(reply, dict):
        return None
    skip, title, body = reply.get("skip"), reply.get("title"), reply.get("body")
    if not isinstance(skip, bool) or not isinstance(title, str) or not isinstance(body, str):
        return None
    title = " ".join(title.split())
    if not skip and (not title or not body.strip()):
        return None
    return ModelSummary(
        skip=skip,
        title=clip_redacted(title, TITLE_CHARS),
        body=clip_redacted(body.strip(), BODY_CHARS),
        model=model,
    )


def reply_content(raw: bytes) -> str:
    """The assistant's text in a chat-completion response; `ModelError` when there is none."""
    try:
        envelope = json.loads(raw)
        content = envelope["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
        raise ModelError("the endpoint's response is not a chat completion") from exc
    if not isinstance(content, str):
        raise ModelError("the model's reply has no text")
    return content


def parse_json_content(content: str) -> Any:
    """The reply's text as JSON (a ```json fence forgiven, nothing else); `ModelError` otherwise."""
    try:
        return json.loads(_strip_fence(content))
    except (ValueError, RecursionError) as exc:
        raise ModelError("the model's reply is not valid JSON") from exc


def _strip_fence(content: str) -> str:
    """Models often wrap JSON in a ```json fence even when told not to; nothing else is forgiven."""
    text = content.strip()
    if text.startswith("```") and text.endswith("```") and "\n" in text:
        text = text[text.index("\n") + 1 : -3]
    return text.strip()


async def summarize(settings: ReflectionSettings, transcript: str, context: str = "") -> ModelSummary | None:
    """Ask the configured model to summarize `transcript`; None on any failure or if unconfigured."""
    if not settings.configured or not settings.base_url:
        return None
    try:
        content = await chat(settings, build_request(settings, transcript, context))
    except ModelError as exc:
        logger.warning("%s; keeping the heuristic note", exc)
        return None
    summary = parse_summary(content, model_label(settings))
    if summary is None:
        logger.warning("the model's reply was not the JSON object asked for; keeping the heuristic note")
    return summary


async def chat(settings: ReflectionSettings, request: dict[str, Any]) -> str:
    """POST one chat completion (`request` is its body) and return the reply's text.

    Raises `ModelError` saying why there is none: no model configured, the endpoint unreachable
    or answering an HTTP error, no answer within the timeout, or a response that is too large
    or not a chat completion. Whatever the caller puts in `request` leaves the machine as is:
    redact it first.
    """
    if not settings.configured or not settings.base_url:
        raise ModelError("no model is configured (set ANAMNESIS_REFLECTION_PROVIDER, _MODEL and _BASE_URL)")
    url = settings.base_url.rstrip("/") + "/chat/completions"
    body = json.dumps(request, ensure_ascii=False).encode("utf-8")
    # urllib's timeout is per socket operation; this bounds the whole exchange.
    with anyio.move_on_after(settings.timeout * 2 + 5):
        raw = await anyio.to_thread.run_sync(
            _post, url, body, settings.api_key, settings.timeout, abandon_on_cancel=True
        )
        return reply_content(raw)
    raise ModelError(f"the model did not answer within {settings.timeout:g} s")


def _post(url: str, body: bytes, api_key: str | None, timeout: float) -> bytes:
    """POST `body` and return the response body; `ModelError` on any transport failure."""
    # Imported here: `urllib.request` pulls in `http.client` and `email` (~0.1 s), which the
    # hooks that import this package never need.
    import http.client
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "anamnesis"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only, checked by config
    # A model on this machine must not be sent through an HTTP proxy from the environment.
    proxies = urllib.request.ProxyHandler({} if _is_loopback(url) else None)
    opener = urllib.request.build_opener(proxies)
    try:
        with opener.open(request, timeout=timeout) as response:
            raw: bytes = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise ModelError(f"the model endpoint answered HTTP {exc.code}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(cause, TimeoutError):
            raise ModelError(f"the model did not answer within {timeout:g} s") from None
        raise ModelError(f"the model endpoint could not be reached ({type(cause).__name__})") from None
    if len(raw) > MAX_RESPONSE_BYTES:
        raise ModelError(f"the model's reply was larger than {MAX_RESPONSE_BYTES} bytes")
    return raw


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
