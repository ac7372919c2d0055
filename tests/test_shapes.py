"""One spelling of a note and a hit, whichever surface returns it (CLI, dashboard, MCP, dedup)."""

from __future__ import annotations

import pytest

from anamnesis.config import Config
from anamnesis.curation.dedup import DedupNote, find_duplicates
from anamnesis.mcp_server.presentation import FIELD_CHARS, HIT_KEYS, SUMMARY_KEYS, hit_item, summary_item
from anamnesis.memory import Memory, NoteDraft
from anamnesis.queries import NoteSummary
from anamnesis.search import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN, Hit
from anamnesis.shapes import hit_json, pick, ref_json, summary_json
from tests.test_dashboard import Browser, make_app

pytestmark = pytest.mark.anyio

PROJECT = "github.com/acme/quotes-api"


def a_hit(project: str = PROJECT) -> Hit:
    return Hit(
        id="01JD3W6Q2M8Z4T9K7B5X0R1C2V",
        type="procedural",
        title="Configs over scripts",
        project=project,
        scope="portable",
        tags=("convention",),
        created_at="2026-11-20T10:00:00Z",
        updated_at="2026-11-21T10:00:00Z",
        score=3.5,
        snippet=f"prefer {HIGHLIGHT_OPEN}configs{HIGHLIGHT_CLOSE} over scripts",
        match="strict",
    )


def test_the_mcp_views_are_the_cli_shapes_with_the_model_s_marks() -> None:
    hit = a_hit()
    assert hit_item(hit) == pick(hit_json(hit, ("**", "**")), HIT_KEYS)
    assert hit_item(hit)["snippet"] == "prefer **configs** over scripts"
    assert hit_json(hit)["snippet"] == "prefer «configs» over scripts"
    summary = NoteSummary(
        **{k: getattr(hit, k) for k in ("id", "type", "title", "project", "scope", "tags", "created_at", "updated_at")},
        machine_id="laptop",
        path="memory/procedural/x.md",
    )
    assert summary_item(summary) == pick(summary_json(summary), SUMMARY_KEYS)


def test_the_mcp_views_cut_what_a_note_s_author_made_long() -> None:
    item = hit_item(a_hit(project="p" * 1000))
    assert len(item["project"]) == FIELD_CHARS
    assert item["project"].endswith("…")


def test_a_dedup_report_names_its_notes_as_every_other_payload_does() -> None:
    twins = [
        DedupNote(
            id=f"01JD3W6Q2M8Z4T9K7B5X0R1C2{last}",
            type="semantic",
            project=PROJECT,
            scope="portable",
            title="Configs over scripts",
            body="We prefer configuration files over scripts.",
        )
        for last in "VW"
    ]
    [group] = find_duplicates(twins)
    report = group.as_json()
    assert report["keep"] == {**ref_json(group.keep), "confidence": 1.0, "updated_at": ""}
    assert {k: report["retire"][0][k] for k in ref_json(twins[0])} == ref_json(group.retire[0].note)


async def test_the_dashboard_history_names_the_note_with_its_project(config: Config, memory: Memory) -> None:
    note = await memory.write(NoteDraft(type="semantic", title="Evolving", body="first line", project=PROJECT))
    browser = Browser(make_app(config, memory).test_client())

    for page in ("history", "diff"):
        assert (await browser.json(f"/notes/{note.id}/{page}"))["note"] == ref_json(note)
