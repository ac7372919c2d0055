"""An OpenAI-compatible chat-completions endpoint on 127.0.0.1, scripted by the test.

The summary and reflection tests talk to it over real HTTP, so the client under test (stdlib
urllib in a worker thread) runs exactly as it does against a real provider. The test sets what
the next answer is (`answer`, or `respond` to answer from the request), can make it fail (an
HTTP status, a body that is not a chat completion) or hold it until the test is over (`hold`:
longer than any client timeout), and reads back every request received.

The server is stdlib `http.server` in a thread, so it serves whatever the async backend, and
while a test blocks on a subprocess (`python -m anamnesis reflect`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from anamnesis.config import ReflectionSettings


def envelope(content: str | None) -> bytes:
    """A chat-completion response whose one choice says `content`."""
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }
    ).encode()


@dataclass
class FakeModel:
    """What the endpoint answers next, and every request it received."""

    base_url: str = ""
    status: int = 200
    reply: bytes = b""
    # When set, the reply's content is computed from the request's JSON body (status stays).
    respond: Callable[[dict[str, Any]], str | None] | None = None
    hold: bool = False  # answer only once the test is over: longer than any client timeout
    release: threading.Event = field(default_factory=threading.Event)
    received: threading.Event = field(default_factory=threading.Event)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, content: str | None, status: int = 200) -> None:
        self.status, self.reply = status, envelope(content)

    def settings(self, **changes: Any) -> ReflectionSettings:
        base = ReflectionSettings(
            provider="openai",
            model="gpt-test",
            base_url=self.base_url,
            api_key="test-key",
            timeout=5.0,
            max_tokens=4_000,
        )
        return replace(base, **changes)

    def environ(self, **changes: str) -> dict[str, str]:
        """The environment variables that configure this endpoint, for a subprocess."""
        return {
            "ANAMNESIS_REFLECTION_PROVIDER": "openai",
            "ANAMNESIS_REFLECTION_MODEL": "gpt-test",
            "ANAMNESIS_REFLECTION_BASE_URL": self.base_url,
            "ANAMNESIS_REFLECTION_API_KEY": "test-key",
            "ANAMNESIS_REFLECTION_TIMEOUT": "5",
            **changes,
        }

    def bodies(self) -> list[dict[str, Any]]:
        """Every request body received, parsed."""
        return [json.loads(request["body"]) for request in self.requests]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (the timeout tests) is expected; nothing to report."""


@contextmanager
def serve_fake_model() -> Iterator[FakeModel]:
    """A `FakeModel` listening on 127.0.0.1 (a free port) until the block ends."""
    state = FakeModel()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            state.received.set()
            if state.hold:
                state.release.wait()
            reply = state.reply
            if state.respond is not None:
                reply = envelope(state.respond(json.loads(body)))
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _QuietServer(("127.0.0.1", 0), Handler)
    # shutdown() returns only at the loop's next poll: keep that short.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_port}/v1"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join()
