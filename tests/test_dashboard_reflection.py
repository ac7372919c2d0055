"""The reflection review page through Quart's test client, on a real home (files, SQLite, git).

Proposals come from a real run against the loopback model (`tests/fake_openai.py`), so what the
page shows is what a model's reply really becomes; accepting goes through the eval guard.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import pytest

from anamnesis.config import Config
from anamnesis.curation.proposals import ACCEPTED, PENDING, REJECTED, Proposal, ProposalStore
from anamnesis.curation.reflect import REFLECTED_FROM, reflect
from anamnesis.memory import Memory
from anamnesis.notes import Note
from tests.fake_openai import FakeModel, serve_fake_model
from tests.test_dashboard import Browser, location, make_app
from tests.test_reflect import (
    citing_the_sent_notes,
    crowded_eval,
    crowding,
    proposal,
    reply,
    sent_ids,
    snapshot,
    write_sessions,
)

pytestmark = pytest.mark.anyio

HOSTILE_TITLE = "<script>alert('title')</script> Configs"
HOSTILE_BODY = "Use configs. <img src=x onerror=alert(1)> [x](javascript:alert(2))"


@pytest.fixture
def model_server() -> Iterator[FakeModel]:
    with serve_fake_model() as model:
        yield model


@pytest.fixture
def browser(config: Config, memory: Memory) -> Browser:
    return Browser(make_app(config, memory).test_client())


async def proposed(config: Config, memory: Memory, model: FakeModel) -> tuple[list[Proposal], list[Note]]:
    """Six session notes and the two proposals the model made from them, pending."""
    sessions = await write_sessions(memory)
    model.respond = citing_the_sent_notes
    store = ProposalStore.of(config.layout)
    await reflect(memory, model.settings(), store)
    return await store.list(PENDING), sessions


async def status_of(config: Config, proposal_id: str) -> str:
    return (await ProposalStore.of(config.layout).get(proposal_id)).status


async def test_the_page_lists_pending_proposals_with_their_sources(
    browser: Browser, config: Config, memory: Memory, model_server: FakeModel
) -> None:
    pending, sessions = await proposed(config, memory, model_server)
    page = await browser.html("/reflection")
    assert 'aria-current="page">Reflection</a>' in page
    for item in pending:
        assert html.escape(item.title) in page
        assert f'action="/reflection/{item.id}/accept"' in page
        assert f'action="/reflection/{item.id}/reject"' in page
    assert f'href="/notes/{sessions[3].id}">{sessions[3].title}</a>' in page
    assert "the model read 6 session notes" in page

    data = await browser.json("/reflection")
    assert [p["title"] for p in data["proposals"]] == ["Configs over constants", "make test runs the suite"]
    first = data["proposals"][0]
    assert first["status"] == PENDING
    assert first["model"] == "openai/gpt-test"
    assert [s["id"] for s in first["sources"]] == [s.id for s in sessions[3:6]]
    assert first["sources"][0]["title"] == sessions[3].title
    assert first["sent_ids"] == [s.id for s in sessions]
    assert data["model"] is None  # this home has no model configured: review still works
    assert data["csrf_token"]


async def test_an_empty_page_says_how_to_get_proposals(browser: Browser) -> None:
    page = await browser.html("/reflection")
    assert "No proposals are waiting" in page
    assert "No reflection model is configured" in page
    assert (await browser.json("/reflection"))["proposals"] == []


async def test_accepting_writes_the_note_as_apply_would_and_marks_its_sessions(
    browser: Browser, config: Config, memory: Memory, model_server: FakeModel
) -> None:
    pending, sessions = await proposed(config, memory, model_server)
    chosen = pending[0]
    response = await browser.post(f"/reflection/{chosen.id}/accept")
    assert response.status_code == 303
    assert location(response) == f"/reflection?accepted={chosen.id}"
    note = await memory.get(chosen.id)
    assert (note.title, note.type, note.project) == (chosen.title, chosen.type, chosen.project)
    assert (note.prov_source, note.prov_model, note.confidence) == ("reflection", "openai/gpt-test", 0.6)
    assert note.extra[REFLECTED_FROM] == [s.id for s in sessions[3:6]]
    assert "reflection" in note.tags
    for session in sessions:
        assert "reflected" in (await memory.get(session.id)).tags
    assert await status_of(config, chosen.id) == ACCEPTED
    page = await browser.html(location(response))
    assert f'href="/notes/{chosen.id}">note {chosen.id}</a>' in page
    assert f"/reflection/{chosen.id}/accept" not in page  # decided: no longer listed
    assert f"/reflection/{pending[1].id}/accept" in page

    again = await browser.post(f"/reflection/{chosen.id}/accept")
    assert again.status_code == 409
    assert "was already accepted" in await again.get_data(as_text=True)


async def test_edit_then_accept_writes_the_edited_note(
    browser: Browser, config: Config, memory: Memory, model_server: FakeModel
) -> None:
    pending, _ = await proposed(config, memory, model_server)
    chosen = pending[1]
    response = await browser.post(
        f"/reflection/{chosen.id}/accept",
        {
            "title": "  The suite:  make test ",
            "type": "procedural",
            "tags": "testing, make",
            "body": "Run `make test`.\n",
        },
    )
    assert response.status_code == 303
    note = await memory.get(chosen.id)
    assert (note.title, note.type, note.body) == ("The suite: make test", "procedural", "Run `make test`.")
    assert note.tags == ("testing", "make", "reflection")
    assert note.prov_source == "reflection"
    stored = await ProposalStore.of(config.layout).get(chosen.id)
    assert (stored.status, stored.title, stored.note_id) == (ACCEPTED, "The suite: make test", chosen.id)


async def test_an_invalid_edit_is_refused_and_the_form_keeps_it(
    browser: Browser, config: Config, memory: Memory, model_server: FakeModel
) -> None:
    pending, _ = await proposed(config, memory, model_server)
    chosen = pending[0]
    before = snapshot(config)
    response = await browser.post(
        f"/reflection/{chosen.id}/accept", {"title": "Kept title", "type": "episodic", "body": "My edited body"}
    )
    assert response.status_code == 400
    page = await response.get_data(as_text=True)
    assert "a reflection is procedural or semantic" in page
    assert "My edited body</textarea>" in page
    assert "<details open>" in page
    assert snapshot(config) == before
    assert await status_of(config, chosen.id) == PENDING


async def test_rejecting_writes_nothing(
    browser: Browser, config: Config, memory: Memory, model_server: FakeModel
) -> None:
    pending, sessions = await proposed(config, memory, model_server)
    before = snapshot(config)
    response = await browser.post(f"/reflection/{pending[0].id}/reject")
    assert response.status_code == 303
    assert snapshot(config) == before
    assert await status_of(config, pending[0].id) == REJECTED
    assert "Rejected: no note was written" in await browser.html(location(response))
    data = await browser.json("/reflection")
    assert [p["id"] for p in data["proposals"]] == [pending[1].id]
    for session in sessions:
        assert "reflected" not in (await memory.get(session.id)).tags


async def test_the_json_api_accepts_with_edits_and_rejects(
    browser: Browser, config: Config, memory: Memory, model_server: FakeModel
) -> None:
    pending, _ = await proposed(config, memory, model_server)
    response = await browser.post(
        f"/reflection/{pending[0].id}/accept", json_body={"title": "Edited by a script", "tags": ["cli", "config"]}
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    data = await response.get_json()
    assert data["status"] == "accepted"
    assert data["note"]["title"] == "Edited by a script"
    assert data["note"]["tags"] == ["cli", "config", "reflection"]
    assert data["note"]["prov_source"] == "reflection"
    assert data["note"]["path"] == f"memory/procedural/{pending[0].id}.md"
    assert "no eval set" in data["guard"]
    response = await browser.post(f"/reflection/{pending[1].id}/reject", json_body={})
    assert (await response.get_json()) == {"proposal": pending[1].id, "status": "rejected"}
    missing = await browser.post("/reflection/01JZZZZZZZZZZZZZZZZZZZZZZZ/accept", json_body={})
    assert missing.status_code == 404
    assert "no reflection proposal" in (await missing.get_json())["error"]["message"]


@pytest.mark.parametrize("action", ["accept", "reject"])
async def test_a_post_without_csrf_token_or_from_another_origin_is_refused(
    browser: Browser, config: Config, memory: Memory, model_server: FakeModel, action: str
) -> None:
    pending, _ = await proposed(config, memory, model_server)
    before = snapshot(config)
    path = f"/reflection/{pending[0].id}/{action}"
    attempts: list[dict[str, Any]] = [
        {"csrf": False},
        {"form": {"csrf_token": "forged-token-forged-token-forged-token"}},
        {"origin": "http://evil.example"},
        {"origin": None},
        {"csrf": False, "json_body": {}},
    ]
    for attempt in attempts:
        response = await browser.post(path, **attempt)
        assert response.status_code == 403, attempt
        assert "Refused" in await response.get_data(as_text=True)
    assert snapshot(config) == before
    assert await status_of(config, pending[0].id) == PENDING


async def test_ids_that_are_not_proposals_are_not_found(browser: Browser) -> None:
    for bad in ("01JZZZZZZZZZZZZZZZZZZZZZZZ", "..%2F..%2Fconfig", "x" * 300):
        response = await browser.post(f"/reflection/{bad}/accept")
        assert response.status_code == 404, bad


async def test_hostile_html_from_the_model_is_shown_escaped(
    browser: Browser, config: Config, memory: Memory, model_server: FakeModel
) -> None:
    await write_sessions(memory)
    model_server.respond = lambda request: reply(
        proposal(HOSTILE_TITLE, sent_ids(request)[:1], body=HOSTILE_BODY, tags=["<b>bold</b>"])
    )
    await reflect(memory, model_server.settings(), ProposalStore.of(config.layout))
    page = await browser.html("/reflection")
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "<b>bold</b>" not in page
    assert 'href="javascript:' not in page
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt; Configs" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


async def test_the_eval_guard_refuses_an_accept_that_lowers_recall_until_forced(
    browser: Browser, config: Config, memory: Memory, model_server: FakeModel
) -> None:
    await crowded_eval(memory, config)
    model_server.respond = crowding
    store = ProposalStore.of(config.layout)
    await reflect(memory, model_server.settings(), store)
    pending = await store.list(PENDING)
    # One crowding note alone does not push the eval's note out of the top 5; five do.
    for earlier in pending[:4]:
        assert (await browser.post(f"/reflection/{earlier.id}/accept")).status_code == 303
    chosen = pending[4]
    before = snapshot(config)
    refused = await browser.post(f"/reflection/{chosen.id}/accept", {"title": "Signing keys rotation, edited"})
    assert refused.status_code == 409
    page = await refused.get_data(as_text=True)
    assert "Refused by the eval guard" in page
    assert "from 1.000 to 0.000" in page
    assert 'name="force" value="1"' in page
    assert 'value="Signing keys rotation, edited"' in page
    assert snapshot(config) == before
    assert await status_of(config, chosen.id) == PENDING

    refused_json = await browser.post(f"/reflection/{chosen.id}/accept", json_body={})
    assert refused_json.status_code == 409
    assert (await refused_json.get_json())["error"]["recall_after"] == 0.0

    forced = await browser.post(
        f"/reflection/{chosen.id}/accept", {"title": "Signing keys rotation, edited", "force": "1"}
    )
    assert forced.status_code == 303
    assert (await memory.get(chosen.id)).title == "Signing keys rotation, edited"
    assert await status_of(config, chosen.id) == ACCEPTED
