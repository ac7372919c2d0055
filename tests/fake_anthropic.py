"""A scripted Anthropic Messages API on 127.0.0.1, to drive the real Claude Code offline.

Point Claude Code at it with `ANTHROPIC_BASE_URL=fake.url` and it runs a real session (hooks,
MCP servers, transcript) against a model whose every turn the test wrote. Each turn is either a
fixed `Reply` or a function of the request body, so a scripted model can look at what Claude
Code sent (the tools offered, the system prompt where SessionStart context lands, the last
tool result) before it answers. Every request body is recorded for assertions afterwards.

Claude Code also sends side requests (titles, summaries, quota probes) that are not turns of
the conversation under test; `is_turn` tells them apart (by default: the request offers tools)
and they get `default` without consuming the script.

The server is stdlib `http.server` in a thread, so it serves while the test blocks on the
`claude` subprocess, whatever the async backend.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any

Body = dict[str, Any]
MODEL = "claude-sonnet-4-5"


@dataclass(frozen=True, slots=True)
class Reply:
    """One assistant message: Anthropic content blocks and why the turn stopped."""

    content: tuple[Mapping[str, Any], ...]
    stop_reason: str = "end_turn"


Turn = Reply | Callable[[Body], Reply]


def text(message: str) -> Reply:
    return Reply(({"type": "text", "text": message},), "end_turn")


_tool_ids = count(1)


def tool_use(name: str, arguments: Mapping[str, Any], *, say: str | None = None) -> Reply:
    """A turn that calls a tool (for MCP tools, `mcp__<server>__<tool>`)."""
    block = {"type": "tool_use", "id": f"toolu_fake{next(_tool_ids):06d}", "name": name, "input": dict(arguments)}
    blocks: tuple[Mapping[str, Any], ...] = ({"type": "text", "text": say}, block) if say else (block,)
    return Reply(blocks, "tool_use")


def offers_tools(body: Body) -> bool:
    return bool(body.get("tools"))


def tool_names(body: Body) -> list[str]:
    return [str(tool.get("name")) for tool in body.get("tools", [])]


def tool_results(body: Body) -> list[Body]:
    """The `tool_result` blocks of the last user message (what the previous tool calls returned)."""
    messages = body.get("messages") or []
    if not messages or messages[-1].get("role") != "user":
        return []
    content = messages[-1].get("content")
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, dict) and block.get("type") == "tool_result"]


def result_text(block: Body) -> str:
    """The text of one `tool_result` block (its content is a string or a list of blocks)."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def system_text(body: Body) -> str:
    system = body.get("system")
    if isinstance(system, list):
        return "\n".join(str(part.get("text", "")) for part in system if isinstance(part, dict))
    return str(system or "")


@dataclass
class FakeAnthropic:
    """The fake API. Use as a context manager; `url` is what ANTHROPIC_BASE_URL should be."""

    script: Sequence[Turn]
    default: Turn = field(default_factory=lambda: text("OK."))
    is_turn: Callable[[Body], bool] = offers_tools
    requests: list[Body] = field(default_factory=list)  # every /v1/messages body, in order
    turns: list[Body] = field(default_factory=list)  # the ones that consumed a scripted turn
    other_paths: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # failures inside scripted turns
    finished: threading.Event = field(default_factory=threading.Event)  # the script ran out
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "use FakeAnthropic as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeAnthropic:
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def answer(self, body: Body) -> Reply:
        """The reply to one /v1/messages request; records it and advances the script."""
        with self._lock:
            self.requests.append(body)
            turn: Turn = self.default
            if self.is_turn(body) and len(self.turns) < len(self.script):
                turn = self.script[len(self.turns)]
                self.turns.append(body)
                if len(self.turns) == len(self.script):
                    self.finished.set()
        if isinstance(turn, Reply):
            return turn
        try:
            return turn(body)
        except Exception as exc:  # a failed expectation inside the script: report, answer anyway
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return text(f"(scripted turn failed: {exc})")


class _QuietServer(ThreadingHTTPServer):
    """Claude Code drops keep-alive connections when it exits; that is not worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {}
            if path == "/v1/messages/count_tokens":
                self._json(200, {"input_tokens": max(1, len(raw) // 4)})
            elif path == "/v1/messages":
                reply = fake.answer(body)
                if body.get("stream"):
                    self._send(200, "text/event-stream", "".join(_events(reply, body)).encode())
                else:
                    self._json(200, _message(reply, body))
            else:
                fake.other_paths.append(f"POST {self.path}")
                self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})

        def do_GET(self) -> None:
            fake.other_paths.append(f"GET {self.path}")
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})

        do_HEAD = do_GET

        def _json(self, status: int, payload: Mapping[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(payload).encode())

        def _send(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", "req_fake")
            self.end_headers()
            self.wfile.write(data)

    return Handler


_message_ids = count(1)


def _message(reply: Reply, body: Body) -> Body:
    return {
        "id": f"msg_fake{next(_message_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or MODEL,
        "content": [dict(block) for block in reply.content],
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 10},
    }


def _events(reply: Reply, body: Body) -> Iterator[str]:
    """The server-sent events of a streamed message, as the real API sends them."""
    message = _message(reply, body)
    start = message | {"content": [], "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 1}}
    yield _event("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(reply.content):
        if block["type"] == "tool_use":
            opened = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            opened = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        yield _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened})
        yield _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": 10},
        },
    )
    yield _event("message_stop", {"type": "message_stop"})


def _event(name: str, data: Mapping[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"
