"""Reflection against a real OpenAI-compatible endpoint on 127.0.0.1, on a real home (files, git, SQLite).

The request and the reply (`ask_model`) only use anyio, so they run on asyncio and trio; what
selects session notes or writes proposals goes through the index and runs on asyncio. The CLI
runs as a subprocess, as a user runs it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import yaml

from anamnesis.config import Config, ReflectionSettings
from anamnesis.context import session_context
from anamnesis.curation.proposals import ACCEPTED, PENDING, ProposalStore
from anamnesis.curation.reflect import (
    CONFIDENCE,
    MAX_SOURCES,
    PROMPT_CHARS,
    REFLECTED_FROM,
    Batch,
    ReflectionRun,
    Source,
    accept_proposals,
    ask_model,
    reflect,
)
from anamnesis.errors import CurationRefusedError, ProposalDecidedError, ReflectionError, ReflectionNotConfiguredError
from anamnesis.memory import Memory, NoteDraft
from anamnesis.notes import Note
from tests.conftest import both_backends
from tests.fake_openai import FakeModel, serve_fake_model

pytestmark = pytest.mark.anyio

PROJECT = "github.com/acme/quotes-api"
OTHER = "github.com/acme/billing"
GH_TOKEN = "ghp_" + "Zr8Kq2Lm5Np7Xv9Bt3Wc6Yd1Hf4Js0Ga2Ue8"
DB_PASSWORD = "Tr0ub4dor" + "&3xQ"
INVENTED = "01JZZZZZZZZZZZZZZZZZZZZZZZ"
_SENT_ID_RE = re.compile(r'<session-note id="([^"]+)"')

SESSIONS = (
    ("Added the quotes endpoint", "Wrote GET /quotes with pagination; ran `make test`, all green."),
    ("Fixed flaky pagination test", "The test depended on insertion order; sorted by id. Ran `make test`."),
    ("Bumped FastAPI", "Upgraded FastAPI to 0.115; the lifespan API replaced startup events."),
    ("Added rate limiting", "Used slowapi with Redis; limits live in config/limits.toml, not in code."),
    ("Wrote the deploy script", "Deploys run `make deploy` from main only; staging first, then prod."),
    ("Moved limits to config", "Again preferred the config file over constants for rate limits."),
)


@pytest.fixture
def model_server() -> Iterator[FakeModel]:
    with serve_fake_model() as model:
        yield model


def with_model(config: Config, model: FakeModel, **changes: Any) -> Config:
    return dataclasses.replace(config, reflection=model.settings(**changes))


async def write_sessions(memory: Memory, project: str = PROJECT, count: int = 6, **fields: Any) -> list[Note]:
    notes = []
    for i in range(count):
        title, body = SESSIONS[i % len(SESSIONS)]
        notes.append(
            await memory.write(
                NoteDraft(
                    type="episodic",
                    title=title if i < len(SESSIONS) else f"{title} ({i})",
                    body=body,
                    project=project,
                    tags=("session",),
                    prov_source="session-end",
                    **fields,
                )
            )
        )
    return notes


def sent_ids(body: dict[str, Any]) -> list[str]:
    """The session-note ids a request showed the model."""
    return _SENT_ID_RE.findall(body["messages"][1]["content"])


def reply(*notes: Any) -> str:
    return json.dumps({"notes": list(notes)})


def proposal(
    title: str, sources: list[str], kind: str = "procedural", body: str | None = None, **more: Any
) -> dict[str, Any]:
    return {"type": kind, "title": title, "body": body or f"{title}: what we always do.", "sources": sources, **more}


def citing_the_sent_notes(request: dict[str, Any]) -> str:
    """A model that proposes two notes drawn from the notes it was sent."""
    ids = sent_ids(request)
    return reply(
        proposal("Configs over constants", ids[3:6], tags=["config", "reflected"]),
        proposal("make test runs the suite", ids[:2], kind="semantic", body="`make test` runs the whole suite."),
    )


def too_slow(model: FakeModel) -> None:
    """An answer held until the test is over: longer than any timeout."""
    model.answer(reply())
    model.hold = True


def snapshot(config: Config) -> dict[str, bytes]:
    """Every note file and the git head: what a failed run must leave as it was."""
    files = {str(p.relative_to(config.home)): p.read_bytes() for p in config.home.glob("*/*/*.md")}
    head = subprocess.run(
        ["git", "-C", str(config.layout.memory_dir), "rev-parse", "HEAD"], capture_output=True, check=True
    ).stdout
    return {**files, "HEAD": head}


def git(config: Config, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(config.layout.memory_dir), *args], capture_output=True, text=True, check=True
    ).stdout


def proposal_files(config: Config) -> list[Path]:
    return sorted((config.layout.state_dir / "reflection").glob("*.json"))


# -- asking the model (anyio only: both backends) ----------------------------------------------


def batch(count: int = 5) -> Batch:
    return Batch(
        PROJECT,
        tuple(
            Source(f"01JD3W6Q2M8Z4T9K7B5X0R1C{i:02d}", f"Session {i}", f"Body {i}", "2026-11-20T10:00:00Z")
            for i in range(count)
        ),
    )


@both_backends
async def test_a_good_reply_gives_validated_proposals(model_server: FakeModel) -> None:
    model_server.respond = citing_the_sent_notes
    reflection = await ask_model(model_server.settings(), batch())
    assert reflection.error is None
    assert reflection.dropped == ()
    assert [(p.type, p.title) for p in reflection.proposals] == [
        ("procedural", "Configs over constants"),
        ("semantic", "make test runs the suite"),
    ]
    first = reflection.proposals[0]
    assert first.source_ids == batch().ids[3:5]
    assert first.sent_ids == batch().ids
    assert first.tags == ("config",)  # reserved tags are ours to set
    assert first.model == "openai/gpt-test"
    assert first.status == PENDING
    [request] = model_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer test-key"
    body = json.loads(request["body"])
    assert body["model"] == "gpt-test"
    assert sent_ids(body) == list(batch().ids)


@both_backends
@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda m: m.answer("Here are some notes: use configs."), "not valid JSON"),
        (lambda m: m.answer("{'notes': []}"), "not valid JSON"),
        (lambda m: m.answer(json.dumps([proposal("A list", ["x"])])), "not the JSON object asked for"),
        (lambda m: m.answer(json.dumps({"proposals": []})), "not the JSON object asked for"),
        (lambda m: m.answer(None), "has no text"),
        (lambda m: setattr(m, "reply", b"<html>502 Bad Gateway</html>"), "not a chat completion"),
        (lambda m: m.answer(reply(), status=500), "answered HTTP 500"),
        (lambda m: m.answer(reply(), status=429), "answered HTTP 429"),
    ],
    ids=["prose", "python-repr", "bare-list", "wrong-key", "null", "html", "http-500", "http-429"],
)
async def test_a_reply_that_cannot_be_used_is_an_error_that_says_why(
    model_server: FakeModel, setup: Callable[[FakeModel], None], reason: str
) -> None:
    setup(model_server)
    reflection = await ask_model(model_server.settings(), batch())
    assert reflection.proposals == ()
    assert reflection.error is not None
    assert reason in reflection.error
    assert "nothing was changed" in reflection.error


@both_backends
async def test_an_answer_slower_than_the_timeout_is_an_error(model_server: FakeModel) -> None:
    model_server.respond = citing_the_sent_notes
    model_server.hold = True
    reflection = await ask_model(model_server.settings(timeout=0.3), batch())
    assert reflection.error is not None
    assert "did not answer within 0.3 s" in reflection.error
    assert len(model_server.requests) == 1


@both_backends
async def test_proposals_citing_invented_ids_are_dropped_whole(model_server: FakeModel) -> None:
    ids = list(batch().ids)
    model_server.answer(
        reply(
            proposal("Real one", ids[:2]),
            proposal("Half invented", [ids[0], INVENTED]),
            proposal("All invented", [INVENTED]),
            proposal("Cites nothing", []),
            proposal("Wrong type", ids[:1], kind="episodic"),
            proposal("Real one", ids[2:3]),
            {"type": "semantic", "title": "Body missing", "sources": ids[:1]},
            "not an object",
        )
    )
    reflection = await ask_model(model_server.settings(), batch())
    assert reflection.error is None
    assert [p.title for p in reflection.proposals] == ["Real one"]
    assert reflection.proposals[0].source_ids == tuple(ids[:2])
    dropped = "\n".join(reflection.dropped)
    assert dropped.count("is not one of the session notes sent") == 2
    for why in ("cites no session note", "type is not", "repeats the title", "has no body", "not a JSON object"):
        assert why in dropped
    assert len(reflection.dropped) == 7


@both_backends
async def test_at_most_eight_proposals_are_kept(model_server: FakeModel) -> None:
    ids = list(batch().ids)
    model_server.answer(reply(*(proposal(f"Note {i}", ids[:1]) for i in range(12))))
    reflection = await ask_model(model_server.settings(), batch())
    assert len(reflection.proposals) == 8
    assert any("after the first 8" in d for d in reflection.dropped)


@both_backends
async def test_a_secret_in_the_reply_is_redacted(model_server: FakeModel) -> None:
    ids = list(batch().ids)
    model_server.answer(
        reply(proposal(f"Token {GH_TOKEN}", ids[:1], body=f"Log in with password={DB_PASSWORD} and {GH_TOKEN}."))
    )
    [kept] = (await ask_model(model_server.settings(), batch())).proposals
    assert GH_TOKEN not in kept.title
    assert GH_TOKEN not in kept.body
    assert DB_PASSWORD not in kept.body
    assert "[REDACTED:" in kept.body


@both_backends
async def test_the_request_stays_within_its_bounds(model_server: FakeModel) -> None:
    model_server.answer(reply())
    huge = Batch(
        PROJECT,
        tuple(Source(f"01JD3W6Q2M8Z4T9K7B5X0R1C{i:02d}", "T" * 500, "x " * 20_000, "2026-11-20") for i in range(30)),
    )
    await ask_model(model_server.settings(max_tokens=120_000), huge)
    [body] = model_server.bodies()
    content = body["messages"][1]["content"]
    assert len(content) < PROMPT_CHARS + 30 * 400
    assert len(sent_ids(body)) == 30
    model_server.requests.clear()
    await ask_model(model_server.settings(max_tokens=2_000), huge)  # a small model: a smaller prompt
    assert len(model_server.bodies()[0]["messages"][1]["content"]) < 30 * (600 + 400)


# -- a run over the store (the index: asyncio) --------------------------------------------------


async def test_a_run_keeps_proposals_pending_and_writes_nothing(
    config: Config, memory: Memory, model_server: FakeModel
) -> None:
    sessions = await write_sessions(memory)
    model_server.respond = citing_the_sent_notes
    before = snapshot(config)
    store = ProposalStore.of(config.layout)
    run = await reflect(memory, model_server.settings(), store)
    assert snapshot(config) == before
    [reflection] = run.reflections
    assert reflection.project == PROJECT
    assert set(reflection.sent_ids) == {n.id for n in sessions}
    assert list(reflection.sent_ids) == [n.id for n in sessions]  # oldest first
    pending = await store.list(PENDING)
    assert [p.title for p in pending] == ["Configs over constants", "make test runs the suite"]
    assert len(proposal_files(config)) == 2
    # The notes behind pending proposals are not sent again.
    again = await reflect(memory, model_server.settings(), store)
    assert again.reflections == ()
    assert len(model_server.requests) == 1


async def test_accepting_writes_notes_with_provenance_and_links_and_context_drops_the_sessions(
    config: Config, memory: Memory, model_server: FakeModel
) -> None:
    sessions = await write_sessions(memory)
    ids = [n.id for n in sessions]
    before = await session_context(memory, PROJECT)
    assert set(before.shown_ids) == {ids[-1], ids[-2]}  # the two latest sessions
    model_server.respond = citing_the_sent_notes
    store = ProposalStore.of(config.layout)
    await reflect(memory, model_server.settings(), store)
    pending = await store.list(PENDING)

    guarded = await accept_proposals(config, store, pending)
    assert guarded.recall_before is None  # no eval set: nothing to measure, and it says so
    assert "no eval set" in guarded.describe()
    written = [await memory.get(p.id) for p in pending]
    for note, proposed in zip(written, pending, strict=True):
        assert (note.title, note.type, note.project) == (proposed.title, proposed.type, PROJECT)
        assert note.prov_source == "reflection"
        assert note.prov_model == "openai/gpt-test"
        assert note.confidence == CONFIDENCE
        assert "reflection" in note.tags
        assert note.extra[REFLECTED_FROM] == list(proposed.source_ids)
    assert written[0].extra[REFLECTED_FROM] == ids[3:6]
    front = yaml.safe_load(
        (config.layout.memory_dir / "procedural" / f"{written[0].id}.md").read_text().split("---")[1]
    )
    assert front["prov_source"] == "reflection"
    assert front["confidence"] == 0.6
    assert front[REFLECTED_FROM] == ids[3:6]
    for session in sessions:
        assert "reflected" in (await memory.get(session.id)).tags
    # One commit holds the new notes and the marked sessions: one revert undoes the reflection.
    subject, *files = git(config, "show", "--name-only", "--format=%s", "HEAD").split("\n")
    assert subject == f"anamnesis: reflection wrote 2 notes and marked 6 session notes reflected ({PROJECT})"
    assert {Path(name).stem for name in files if name} == {*ids, *(p.id for p in pending)}
    assert git(config, "status", "--porcelain") == ""
    assert [p.status for p in await store.list(None)] == [ACCEPTED, ACCEPTED]
    assert [p.note_id for p in await store.list(ACCEPTED)] == [n.id for n in written]

    after = await session_context(memory, PROJECT)
    assert not set(after.shown_ids) & set(ids)
    assert {n.id for n in written} <= set(after.shown_ids)
    # Reflected notes are not picked again; a decided proposal is not decided twice.
    assert (await reflect(memory, model_server.settings(), store, min_notes=1)).reflections == ()
    with pytest.raises(ProposalDecidedError):
        await accept_proposals(config, store, pending[:1])


@pytest.mark.parametrize(
    "setup",
    [
        lambda m: m.answer("I think you should use configs."),
        lambda m: m.answer(reply(proposal("Invented", [INVENTED]))),
        lambda m: m.answer(reply(), status=500),
        too_slow,
    ],
    ids=["malformed-json", "invented-ids", "http-500", "too-slow"],
)
async def test_a_failed_run_changes_nothing_and_says_why(
    config: Config, memory: Memory, model_server: FakeModel, setup: Callable[[FakeModel], Any]
) -> None:
    await write_sessions(memory)
    setup(model_server)
    before = snapshot(config)
    store = ProposalStore.of(config.layout)
    run = await reflect(memory, model_server.settings(timeout=0.3), store)
    [reflection] = run.reflections
    assert reflection.proposals == ()
    assert reflection.error or reflection.dropped
    assert snapshot(config) == before
    assert await store.list(None) == []
    assert len(model_server.requests) == 1


async def test_a_second_run_while_one_asks_the_model_is_refused(
    config: Config, memory: Memory, model_server: FakeModel
) -> None:
    await write_sessions(memory)
    model_server.respond = citing_the_sent_notes
    model_server.hold = True
    store = ProposalStore.of(config.layout)
    runs: list[ReflectionRun] = []

    async def first() -> None:
        runs.append(await reflect(memory, model_server.settings(), store))

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        assert await anyio.to_thread.run_sync(model_server.received.wait, 10.0)
        with pytest.raises(ReflectionError, match="another `anamnesis reflect` is asking the model"):
            await reflect(memory, model_server.settings(), store)
        model_server.release.set()
    assert len(runs[0].reflections[0].proposals) == 2
    assert len(model_server.requests) == 1
    assert len(await store.list(PENDING)) == 2


async def test_without_a_model_nothing_is_asked_and_nothing_changes(
    config: Config, memory: Memory, model_server: FakeModel
) -> None:
    await write_sessions(memory)
    before = snapshot(config)
    store = ProposalStore.of(config.layout)
    for settings in (
        ReflectionSettings(),
        model_server.settings(provider="heuristic"),
        model_server.settings(model=None),
    ):
        with pytest.raises(ReflectionNotConfiguredError, match="no reflection model is configured"):
            await reflect(memory, settings, store)
    assert model_server.requests == []
    assert snapshot(config) == before
    assert not (config.layout.state_dir / "reflection").exists()


async def test_secrets_in_session_notes_never_reach_the_model(
    config: Config, memory: Memory, model_server: FakeModel
) -> None:
    await write_sessions(memory, count=4)
    await memory.write(
        NoteDraft(
            type="episodic",
            title=f"Rotated {GH_TOKEN}",
            body=f"DB_PASSWORD={DB_PASSWORD}\nthen pushed with {GH_TOKEN}\n<private>my home address</private>",
            project=PROJECT,
        )
    )
    model_server.answer(reply())
    await reflect(memory, model_server.settings(), ProposalStore.of(config.layout))
    [request] = model_server.requests
    for secret in (GH_TOKEN, DB_PASSWORD, "my home address"):
        assert secret.encode() not in request["body"]
    assert b"[REDACTED:github-token]" in request["body"]


async def test_too_few_session_notes_ask_nothing(config: Config, memory: Memory, model_server: FakeModel) -> None:
    await write_sessions(memory, count=4)
    await write_sessions(memory, project=OTHER, count=3)
    await write_sessions(memory, project=OTHER, count=3, scope="machine-local")  # never sent
    model_server.respond = citing_the_sent_notes
    store = ProposalStore.of(config.layout)
    run = await reflect(memory, model_server.settings(), store)
    assert run == ReflectionRun("openai/gpt-test", (), {PROJECT: 4, OTHER: 3})
    assert model_server.requests == []
    run = await reflect(memory, model_server.settings(), store, project=OTHER, min_notes=3)
    assert [r.project for r in run.reflections] == [OTHER]
    [body] = model_server.bodies()
    assert len(sent_ids(body)) == 3  # the machine-local ones stay on this machine


async def test_only_the_newest_sessions_are_sent(config: Config, memory: Memory, model_server: FakeModel) -> None:
    sessions = await write_sessions(memory, count=MAX_SOURCES + 4)
    model_server.answer(reply())
    await reflect(memory, model_server.settings(), ProposalStore.of(config.layout))
    [body] = model_server.bodies()
    assert sent_ids(body) == [n.id for n in sessions[4:]]


# -- the eval guard ----------------------------------------------------------------------------


async def crowded_eval(memory: Memory, config: Config) -> tuple[Note, list[Note]]:
    """A store whose eval query finds its note first, and sessions a model will crowd it out from."""
    target = await memory.write(
        NoteDraft(
            type="semantic",
            title="Quarterly key schedule",
            body="The release manager rotates the signing keys every quarter.",
            project=PROJECT,
        )
    )
    sessions = await write_sessions(memory)
    eval_dir = config.home / "eval"
    eval_dir.mkdir()
    case = {
        "query": "signing keys rotation",
        "relevant_ids": [target.id],
        "note_titles": [target.title],
        "approved": True,
        "source": "manual",
    }
    (eval_dir / "eval.jsonl").write_text(json.dumps(case) + "\n")
    return target, sessions


def crowding(request: dict[str, Any]) -> str:
    """Six proposals that all outrank the eval's note for its query."""
    ids = sent_ids(request)
    return reply(
        *(
            proposal(f"Signing keys rotation {i}", ids[:1], body="Signing keys rotation: signing keys rotation.")
            for i in range(6)
        )
    )


async def test_the_eval_guard_refuses_an_apply_that_lowers_recall_and_force_overrides(
    config: Config, memory: Memory, model_server: FakeModel
) -> None:
    _, sessions = await crowded_eval(memory, config)
    model_server.respond = crowding
    store = ProposalStore.of(config.layout)
    await reflect(memory, model_server.settings(), store)
    pending = await store.list(PENDING)
    assert len(pending) == 6
    before = snapshot(config)
    with pytest.raises(CurationRefusedError, match=r"recall@5 from 1\.000 to 0\.000") as refused:
        await accept_proposals(config, store, pending)
    assert (refused.value.before, refused.value.after) == (1.0, 0.0)
    assert snapshot(config) == before
    assert len(await store.list(PENDING)) == 6

    guarded = await accept_proposals(config, store, pending, force=True)
    assert (guarded.recall_before, guarded.recall_after, guarded.forced) == (1.0, 0.0, True)
    assert "forced" in guarded.describe()
    for written in pending:
        assert (await memory.get(written.id)).prov_source == "reflection"
    for session in sessions:
        assert "reflected" in (await memory.get(session.id)).tags


async def test_the_eval_guard_lets_through_an_apply_that_keeps_recall(
    config: Config, memory: Memory, model_server: FakeModel
) -> None:
    await crowded_eval(memory, config)
    model_server.respond = citing_the_sent_notes
    store = ProposalStore.of(config.layout)
    await reflect(memory, model_server.settings(), store)
    guarded = await accept_proposals(config, store, await store.list(PENDING))
    assert (guarded.recall_before, guarded.recall_after) == (1.0, 1.0)
    assert len(guarded.value) == 2


# -- the command line, as a subprocess ---------------------------------------------------------


def anamnesis(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "anamnesis", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


async def test_the_cli_shows_proposals_then_applies_them(
    config: Config, memory: Memory, model_server: FakeModel
) -> None:
    sessions = await write_sessions(memory)
    model_server.respond = citing_the_sent_notes
    env = model_server.environ()

    shown = anamnesis("reflect", env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"{PROJECT}: 6 session notes sent to openai/gpt-test; 2 proposals" in shown.stdout
    assert "[procedural] Configs over constants  #config" in shown.stdout
    assert "2 proposals wait for review" in shown.stdout
    assert not list((config.layout.memory_dir / "procedural").glob("*.md"))

    applied = anamnesis("reflect", "--apply", "--json", env=env)
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert result["projects"] == []  # nothing new to ask: the pending ones were written
    assert [a["title"] for a in result["applied"]] == ["Configs over constants", "make test runs the suite"]
    assert result["guard"]["recall_before"] is None
    assert len(model_server.requests) == 1
    for item in result["applied"]:
        note = await memory.get(item["note"])
        assert (note.prov_source, note.prov_model, note.confidence) == ("reflection", "openai/gpt-test", 0.6)
    for session in sessions:
        assert "reflected" in (await memory.get(session.id)).tags


async def test_the_cli_without_a_model_says_so_and_changes_nothing(config: Config, memory: Memory) -> None:
    await write_sessions(memory)
    before = snapshot(config)
    result = anamnesis("reflect", "--apply", env={})
    assert result.returncode == 1
    assert "no reflection model is configured" in result.stderr
    assert "nothing was changed" in result.stderr
    assert result.stdout == ""
    assert snapshot(config) == before


async def test_the_cli_reports_a_failed_request_and_exits_1(
    config: Config, memory: Memory, model_server: FakeModel
) -> None:
    await write_sessions(memory)
    model_server.answer(reply(), status=500)
    before = snapshot(config)
    result = anamnesis("reflect", "--apply", env=model_server.environ())
    assert result.returncode == 1
    assert f"{PROJECT}: the model endpoint answered HTTP 500; nothing was changed" in result.stderr
    assert "No proposal is pending; nothing was written." in result.stdout
    assert snapshot(config) == before


async def test_the_cli_with_too_few_notes_asks_nothing(config: Config, memory: Memory, model_server: FakeModel) -> None:
    await write_sessions(memory, count=3)
    result = anamnesis("reflect", "--project", PROJECT, env=model_server.environ())
    assert result.returncode == 0, result.stderr
    assert f"{PROJECT} has 3 new session notes" in result.stdout
    assert "reflection needs 5 (--min-notes). Nothing was sent to the model." in result.stdout
    result = anamnesis("reflect", env=model_server.environ(ANAMNESIS_REFLECT_MIN_EPISODICS="4"))
    assert "No project has 4 new session notes" in result.stdout
    assert model_server.requests == []


async def test_the_cli_apply_is_refused_by_the_eval_guard_unless_forced(
    config: Config, memory: Memory, model_server: FakeModel
) -> None:
    await crowded_eval(memory, config)
    model_server.respond = crowding
    before = snapshot(config)
    refused = anamnesis("reflect", "--apply", env=model_server.environ())
    assert refused.returncode == 1
    assert "refused: this change lowers eval recall@5 from 1.000 to 0.000" in refused.stderr
    assert snapshot(config) == before
    assert len(proposal_files(config)) == 6  # kept for review

    forced = anamnesis("reflect", "--apply", "--force", env=model_server.environ())
    assert forced.returncode == 0, forced.stderr
    assert "Wrote 6 notes from reflection" in forced.stdout
    assert "recall@5 1.000 → 0.000 (forced)" in forced.stdout
    assert len(model_server.requests) == 1
