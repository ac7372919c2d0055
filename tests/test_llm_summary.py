"""The model summary against a real OpenAI-compatible endpoint served on 127.0.0.1 by the test.

Pure `summarize` calls run on asyncio and trio; the ones that write notes go through the index
and run on asyncio.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from anamnesis.capture.conversation import Turn, conversation
from anamnesis.capture.llm import RESULT_CHARS, build_input, summarize
from anamnesis.capture.session import capture_session, cursor_path
from anamnesis.config import ReflectionSettings
from anamnesis.memory import Memory
from tests.conftest import both_backends
from tests.fake_openai import FakeModel, serve_fake_model
from tests.ports import unused_port
from tests.test_transcript import (
    CWD,
    SID,
    append,
    assistant,
    jsonl,
    text,
    tool_result,
    tool_use,
    user,
    write_transcript,
)

pytestmark = pytest.mark.anyio

GH_TOKEN = "ghp_" + "Zr8Kq2Lm5Np7Xv9Bt3Wc6Yd1Hf4Js0Ga2Ue8"
STRIPE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dcQ"
DB_PASSWORD = "Tr0ub4dor" + "&3xQ"
PEM_LINE = "MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi" + "8yTp7Q2xkL4vN0aBcDeFgHiJk"
SECRETS = (GH_TOKEN, STRIPE, DB_PASSWORD, PEM_LINE)


@pytest.fixture
def model_server() -> Iterator[FakeModel]:
    with serve_fake_model() as model:
        yield model


def good(title: str = "Fixed the date parser", body: str = "Split on '-' now; tests pass.", skip: bool = False) -> str:
    return json.dumps({"skip": skip, "title": title, "body": body})


@both_backends
async def test_a_good_reply_becomes_the_summary(model_server: FakeModel) -> None:
    model_server.answer(good())
    summary = await summarize(model_server.settings(), "User: fix the parser", "Project: dates")
    assert summary is not None
    assert (summary.skip, summary.title, summary.body) == (
        False,
        "Fixed the date parser",
        "Split on '-' now; tests pass.",
    )
    assert summary.model == "openai/gpt-test"
    [request] = model_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer test-key"
    sent = json.loads(request["body"])
    assert sent["model"] == "gpt-test"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert "User: fix the parser" in sent["messages"][1]["content"]
    assert "Project: dates" in sent["messages"][1]["content"]


@both_backends
async def test_a_reply_in_a_json_fence_is_accepted(model_server: FakeModel) -> None:
    model_server.answer("```json\n" + good() + "\n```")
    summary = await summarize(model_server.settings(), "User: hi")
    assert summary is not None
    assert summary.title == "Fixed the date parser"


@both_backends
async def test_a_skip_verdict_comes_back_as_skip(model_server: FakeModel) -> None:
    model_server.answer(good(title="", body="", skip=True))
    summary = await summarize(model_server.settings(), "User: hi\n\nClaude: Hello!")
    assert summary is not None
    assert summary.skip


@both_backends
@pytest.mark.parametrize(
    "content",
    [
        "Sure! Here is the summary: the parser was fixed.",
        "{'skip': false, 'title': 'x', 'body': 'y'}",
        json.dumps([good()]),
        json.dumps({"title": "no skip key", "body": "b"}),
        json.dumps({"skip": False, "title": "no body"}),
        json.dumps({"skip": "no", "title": "t", "body": "b"}),
        json.dumps({"skip": False, "title": 3, "body": "b"}),
        json.dumps({"skip": False, "title": "   ", "body": "b"}),
        json.dumps({"skip": False, "title": "t", "body": ""}),
        None,
    ],
    ids=[
        "prose",
        "python-repr",
        "list",
        "no-skip",
        "no-body",
        "skip-str",
        "title-int",
        "blank-title",
        "empty-body",
        "null",
    ],
)
async def test_a_reply_that_is_not_the_object_asked_for_gives_none(
    model_server: FakeModel, content: str | None
) -> None:
    model_server.answer(content)
    assert await summarize(model_server.settings(), "User: hi") is None


@both_backends
@pytest.mark.parametrize(
    "raw", [b"<html>oops</html>", b'{"choices": []}', b'{"error": {"message": "bad"}}', b"", b'{"choices": [{}]}']
)
async def test_a_malformed_response_envelope_gives_none(model_server: FakeModel, raw: bytes) -> None:
    model_server.status, model_server.reply = 200, raw
    assert await summarize(model_server.settings(), "User: hi") is None


@both_backends
@pytest.mark.parametrize("status", [500, 502, 401, 429])
async def test_an_http_error_gives_none(model_server: FakeModel, status: int) -> None:
    model_server.answer(good(), status=status)
    assert await summarize(model_server.settings(), "User: hi") is None
    assert len(model_server.requests) == 1


@both_backends
async def test_an_answer_slower_than_the_timeout_gives_none(model_server: FakeModel) -> None:
    model_server.answer(good())
    model_server.hold = True
    assert await summarize(model_server.settings(timeout=0.3), "User: hi") is None
    assert len(model_server.requests) == 1


@both_backends
async def test_an_endpoint_nobody_listens_on_gives_none() -> None:
    settings = ReflectionSettings(
        provider="local", model="m", base_url=f"http://127.0.0.1:{unused_port()}", timeout=2.0
    )
    assert await summarize(settings, "User: hi") is None


@both_backends
async def test_unconfigured_settings_send_nothing(model_server: FakeModel) -> None:
    assert await summarize(ReflectionSettings(), "User: hi") is None
    assert await summarize(model_server.settings(provider="heuristic"), "User: hi") is None
    assert model_server.requests == []


def secret_transcript(path: Path) -> Path:
    return write_transcript(
        path,
        [
            user(f"Push with {GH_TOKEN} and charge the card with {STRIPE}"),
            assistant("m1", tool_use("Bash", "t1", command="cat deploy/.env")),
            tool_result("t1", f"DB_PASSWORD={DB_PASSWORD}\n-----BEGIN RSA PRIVATE KEY-----\n{PEM_LINE}\n"),
            assistant("m2", tool_use("Edit", "t2", file_path=f"{CWD}/billing/charge.py")),
            assistant("m3", text(f"Done; the token {GH_TOKEN} should be rotated.")),
        ],
    )


@both_backends
async def test_what_is_sent_to_the_model_has_no_secret(model_server: FakeModel, tmp_path: Path) -> None:
    model_server.answer(good())
    transcript = build_input(conversation(secret_transcript(tmp_path / "t.jsonl")), 20_000)
    assert await summarize(model_server.settings(), transcript, f"Password hint: password={DB_PASSWORD}") is not None
    [request] = model_server.requests
    for secret in SECRETS:
        assert secret.encode() not in request["body"]
    assert b"[REDACTED:github-token]" in request["body"]


@both_backends
async def test_a_secret_in_the_reply_is_redacted(model_server: FakeModel) -> None:
    model_server.answer(good(title=f"Rotated {GH_TOKEN}", body=f"The new password is password={DB_PASSWORD}"))
    summary = await summarize(model_server.settings(), "User: rotate")
    assert summary is not None
    assert GH_TOKEN not in summary.title
    assert DB_PASSWORD not in summary.body


def test_the_input_keeps_the_head_and_tail_of_a_long_session_within_budget() -> None:
    turns = [Turn("user", "FIRST ASK: migrate the database")]
    for i in range(400):
        turns += [Turn("tool", f"Bash step {i}"), Turn("result", f"output {i} " + "x" * 10_000)]
    turns.append(Turn("assistant", "LAST WORD: migration done"))
    built = build_input(turns, 40_000)
    assert built.startswith("User: FIRST ASK: migrate the database")
    assert built.endswith("Claude: LAST WORD: migration done")
    assert "turns left out" in built
    assert len(built) <= 40_000 + 1_000
    longest = max(len(chunk) for chunk in built.split("\n\n"))
    assert longest <= RESULT_CHARS + len("Tool result: ")


# --- the model path of capture_session (through the index: asyncio) ----------------------------


async def test_capture_with_a_model_writes_its_summary_and_records_the_model(
    memory: Memory, model_server: FakeModel, tmp_path: Path
) -> None:
    model_server.answer(good(title="Rotated credentials and charged the card", body="Rotated the GitHub token."))
    path = secret_transcript(tmp_path / "t.jsonl")
    state_dir = memory.config.layout.state_dir
    heuristic = await capture_session(memory, path, SID, "acme/billing", "session-end", cursor_dir=state_dir)
    assert heuristic is not None
    assert heuristic.prov_model is None

    note = await capture_session(
        memory, path, SID, "acme/billing", "session-end", cursor_dir=state_dir, llm=model_server.settings()
    )
    assert note is not None
    assert note.id == heuristic.id
    assert note.created_at == heuristic.created_at
    assert note.title == "Rotated credentials and charged the card"
    assert note.prov_model == "openai/gpt-test"
    assert note.body.startswith("Rotated the GitHub token.")
    assert "**Files touched (1):**\n- billing/charge.py" in note.body
    [request] = model_server.requests
    for secret in SECRETS:
        assert secret.encode() not in request["body"]

    # A later hook run with nothing new keeps the model's note and asks nothing.
    kept = await capture_session(memory, path, SID, "acme/billing", "session-end", cursor_dir=state_dir)
    assert kept == note
    assert len(model_server.requests) == 1


async def test_capture_falls_back_to_the_heuristic_when_the_model_fails(
    memory: Memory, model_server: FakeModel, tmp_path: Path
) -> None:
    model_server.answer(good(), status=500)
    note = await capture_session(
        memory,
        secret_transcript(tmp_path / "t.jsonl"),
        SID,
        "acme/billing",
        "session-end",
        cursor_dir=memory.config.layout.state_dir,
        llm=model_server.settings(),
    )
    assert note is not None
    assert note.prov_model is None
    assert note.body.startswith("**Ask:** Push with [REDACTED:github-token]")


async def test_a_session_the_model_skips_leaves_no_note(
    memory: Memory, model_server: FakeModel, tmp_path: Path
) -> None:
    model_server.answer(good(title="", body="", skip=True))
    path = secret_transcript(tmp_path / "t.jsonl")
    state_dir = memory.config.layout.state_dir
    note = await capture_session(
        memory, path, SID, "acme/billing", "session-end", cursor_dir=state_dir, llm=model_server.settings()
    )
    assert note is None
    assert list((memory.config.layout.memory_dir / "episodic").glob("*.md")) == []
    # A later hook with nothing new does not bring the heuristic note back.
    assert await capture_session(memory, path, SID, "acme/billing", "session-end", cursor_dir=state_dir) is None
    assert list((memory.config.layout.memory_dir / "episodic").glob("*.md")) == []


async def hook_capture_while_the_model_thinks(
    memory: Memory, model_server: FakeModel, path: Path, meanwhile: Callable[[], None] = lambda: None
) -> tuple[Any, Any]:
    """(the hook's note, the detached run's note): a detached capture waits on a model that has
    the request and has not answered; meanwhile (after `meanwhile()`) a hook captures the same
    session with a short lock timeout; then the model answers."""
    state_dir = memory.config.layout.state_dir
    results: dict[str, Any] = {}
    model_server.hold = True

    async def detached_run() -> None:
        results["model"] = await capture_session(
            memory, path, SID, "acme/billing", "session-end", cursor_dir=state_dir, llm=model_server.settings()
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(detached_run)
        await anyio.to_thread.run_sync(model_server.received.wait)
        meanwhile()
        results["hook"] = await capture_session(
            memory, path, SID, "acme/billing", "precompact", cursor_dir=state_dir, lock_timeout=0.5
        )
        model_server.release.set()
    return results["hook"], results["model"]


async def test_a_hook_capturing_while_the_model_thinks_does_not_wait(
    memory: Memory, model_server: FakeModel, tmp_path: Path
) -> None:
    model_server.answer(good(title="Model title", body="Model body."))
    path = secret_transcript(tmp_path / "t.jsonl")
    # The model has the request and has not answered: the lock must be free.
    hook, model = await hook_capture_while_the_model_thinks(memory, model_server, path)
    assert hook is not None
    assert model.title == "Model title"
    assert model.id == hook.id


async def test_a_session_that_went_on_while_the_model_thought_keeps_the_newer_note(
    memory: Memory, model_server: FakeModel, tmp_path: Path
) -> None:
    model_server.answer(good(title="Model title", body="Model body about the old part."))
    path = secret_transcript(tmp_path / "t.jsonl")

    def the_session_goes_on() -> None:
        append(path, jsonl([user("Now add refunds"), assistant("m9", text("Refunds added."))]))

    hook, _ = await hook_capture_while_the_model_thinks(memory, model_server, path, the_session_goes_on)
    current = await memory.get(hook.id)
    assert "Refunds added." in current.body
    assert current.prov_model is None


async def test_the_model_still_runs_after_the_cursor_was_lost(
    memory: Memory, model_server: FakeModel, tmp_path: Path
) -> None:
    model_server.answer(good(title="Model title", body="Model body."))
    path = secret_transcript(tmp_path / "t.jsonl")
    state_dir = memory.config.layout.state_dir
    heuristic = await capture_session(memory, path, SID, "acme/billing", "session-end", cursor_dir=state_dir)
    assert heuristic is not None
    cursor_path(state_dir, SID).unlink()
    note = await capture_session(
        memory, path, SID, "acme/billing", "session-end", cursor_dir=state_dir, llm=model_server.settings()
    )
    assert note is not None
    assert (note.id, note.title, note.prov_model) == (heuristic.id, "Model title", "openai/gpt-test")
