"""Dedup: identical and near-identical notes are found, one is kept, the others are superseded
(out of search and session context, still readable and in git history), and the eval guard
refuses a dedup that loses what an eval query finds. Real files, real git, real SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anamnesis.cli import tidy_cli
from anamnesis.config import Config
from anamnesis.context import session_context
from anamnesis.curation.dedup import (
    DEFAULT_THRESHOLD,
    DedupNote,
    DuplicateGroup,
    apply_dedup,
    dedup_change,
    find_duplicates,
    jaccard,
    normalize_words,
    plan_dedup,
    shingles,
    similar_pairs,
)
from anamnesis.curation.guard import guarded_apply
from anamnesis.errors import CurationRefusedError, DedupError
from anamnesis.ids import new_ulid
from anamnesis.memory import Memory, open_memory
from anamnesis.notes import Note
from anamnesis.search import SearchFilters

pytestmark = pytest.mark.anyio

PROJECT = "github.com/acme/quotes-api"
OTHER = "github.com/acme/billing"
BODY = (
    "We always prefer configuration files over ad-hoc scripts in this repository, because a "
    "config file is reviewed in pull requests, versioned with the code and reproducible on CI."
)
NEAR = BODY.replace("reproducible on CI", "reproducible on every CI runner")
UNRELATED = "The pricing module rounds premiums half-even to the cent before tax is applied."


async def put(
    memory: Memory,
    body: str,
    *,
    title: str = "Configs over scripts",
    project: str = PROJECT,
    type: str = "procedural",
    scope: str = "portable",
    updated_at: str = "2026-11-20T10:00:00Z",
    confidence: float = 1.0,
    tags: tuple[str, ...] = (),
    supersedes: tuple[str, ...] = (),
) -> Note:
    """Save a note with exactly these fields (times and confidence decide which note is kept)."""
    note = Note(
        id=new_ulid(),
        type=type,
        title=title,
        body=body,
        project=project,
        machine_id="desktop",
        scope=scope,
        confidence=confidence,
        created_at="2026-11-01T10:00:00Z",
        updated_at=updated_at,
        tags=tags,
        supersedes=supersedes,
    )
    await memory.save(note, f"test: {note.id}")
    return note


def git(memory: Memory, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=memory.config.layout.memory_dir, capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout.strip()


def anamnesis(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anamnesis", *args], capture_output=True, text=True, timeout=120, check=False
    )


def grouped(groups: Sequence[DuplicateGroup]) -> list[tuple[str, set[str]]]:
    return [(g.keep.id, {r.note.id for r in g.retire}) for g in groups]


async def found(memory: Memory, text: str) -> list[str]:
    return [hit.id for hit in await memory.search(text, SearchFilters(), limit=50)]


# -- the pure core --------------------------------------------------------------------------------


def dnote(note_id: str, body: str, updated_at: str = "") -> DedupNote:
    return DedupNote(
        id=note_id, type="semantic", project=PROJECT, scope="portable", title="T", body=body, updated_at=updated_at
    )


def test_notes_that_differ_only_in_case_punctuation_markdown_and_spacing_are_identical() -> None:
    notes = [
        dnote("A", "Use **uv** to run the tests; never pip."),
        dnote("B", "use uv to run the tests never pip"),
        dnote("C", "  Use `uv`   to run the tests —\n\nnever pip!  "),
        dnote("D", "Use C++ to run the tests; never pip."),  # c++ is not c, nor uv
    ]
    groups = find_duplicates(notes)
    assert len(groups) == 1
    members = {groups[0].keep.id, *(r.note.id for r in groups[0].retire)}
    assert members == {"A", "B", "C"}
    assert all(r.identical and r.similarity == 1.0 for r in groups[0].retire)
    assert groups[0].reason.startswith("identical")


def test_notes_of_symbols_only_are_identical_only_to_the_same_symbols() -> None:
    notes = [dnote("A", "🚀 ✅"), dnote("B", "🎉"), dnote("C", "🚀  ✅")]
    groups = find_duplicates(notes)
    assert grouped(groups) == [("A", {"C"})]


def test_groups_are_built_around_the_kept_note_so_a_chain_of_small_edits_is_not_merged_whole() -> None:
    words = [f"w{i}" for i in range(40)]
    edit = [f"x{i}" for i in range(3)]
    first = " ".join(words)
    second = " ".join([*words[:30], *edit, *words[33:]])
    third = " ".join([*words[:20], *[f"y{i}" for i in range(3)], *words[23:30], *edit, *words[33:]])
    notes = [
        dnote("A", first, updated_at="2026-01-03T00:00:00Z"),
        dnote("B", second, updated_at="2026-01-02T00:00:00Z"),
        dnote("C", third, updated_at="2026-01-01T00:00:00Z"),
    ]
    sets = {n.id: shingles(normalize_words(n.title) + normalize_words(n.body)) for n in notes}
    # A is like B, B is like C, but A is not like C: a chain.
    assert jaccard(sets["A"], sets["B"]) >= DEFAULT_THRESHOLD
    assert jaccard(sets["B"], sets["C"]) >= DEFAULT_THRESHOLD
    assert jaccard(sets["A"], sets["C"]) < DEFAULT_THRESHOLD
    groups = find_duplicates(notes)
    assert grouped(groups) == [("A", {"B"})]  # C is not retired in favour of a note it is unlike
    assert "most recently updated" in groups[0].reason


@settings(max_examples=200, deadline=None)
@given(
    sets=st.lists(st.frozensets(st.integers(0, 12).map(str), max_size=10), max_size=14),
    threshold=st.floats(0.5, 1.0),
)
def test_prefix_filtering_finds_exactly_the_pairs_a_brute_force_comparison_finds(
    sets: list[frozenset[str]], threshold: float
) -> None:
    fast = {tuple(sorted(pair)) for pair in similar_pairs(sets, threshold)}
    brute = {
        (i, j)
        for i, j in combinations(range(len(sets)), 2)
        if sets[i] and sets[j] and jaccard(sets[i], sets[j]) >= threshold - 1e-9
    }
    assert fast == brute


def test_a_threshold_outside_half_to_one_is_refused() -> None:
    for bad in (0.2, 1.5, float("nan")):
        with pytest.raises(DedupError):
            find_duplicates([], bad)


def test_the_cli_default_threshold_is_the_core_one() -> None:
    assert tidy_cli.DEFAULT_THRESHOLD == DEFAULT_THRESHOLD


# -- finding duplicates in a memory ------------------------------------------------------------------


async def test_identical_and_near_identical_notes_are_found_and_different_ones_are_not(memory: Memory) -> None:
    original = await put(memory, BODY, updated_at="2026-11-01T10:00:00Z")
    copy = await put(memory, BODY.upper(), updated_at="2026-11-02T10:00:00Z")
    edited = await put(memory, NEAR, updated_at="2026-11-03T10:00:00Z")
    different = await put(memory, UNRELATED, title="Rounding premiums")
    plan = await plan_dedup(memory)
    assert plan.checked == 4
    assert grouped(plan.groups) == [(edited.id, {original.id, copy.id})]
    group = plan.groups[0]
    assert "most recently updated" in group.reason
    assert {r.note.id: r.identical for r in group.retire} == {original.id: False, copy.id: False}
    assert all(DEFAULT_THRESHOLD <= r.similarity < 1.0 for r in group.retire)
    assert different.id not in {group.keep.id, *(r.note.id for r in group.retire)}


async def test_notes_of_different_projects_types_or_scopes_are_never_merged(memory: Memory) -> None:
    await put(memory, BODY)
    await put(memory, BODY, project=OTHER)
    await put(memory, BODY, project="global")
    await put(memory, BODY, type="semantic")
    await put(memory, BODY, scope="machine-local")
    plan = await plan_dedup(memory)
    assert plan.checked == 5
    assert plan.groups == []


async def test_session_summaries_are_grouped_only_when_identical(memory: Memory) -> None:
    first = await put(memory, BODY, type="episodic")
    again = await put(memory, BODY, type="episodic")
    await put(memory, NEAR, type="episodic")  # a session that went alike is still its own session
    plan = await plan_dedup(memory)
    assert len(plan.groups) == 1
    members = {plan.groups[0].keep.id, *(r.note.id for r in plan.groups[0].retire)}
    assert members == {first.id, again.id}


async def test_the_kept_note_has_the_highest_confidence_then_is_newest_then_longest(memory: Memory) -> None:
    human = await put(memory, BODY, updated_at="2026-01-01T00:00:00Z", confidence=1.0)
    model = await put(memory, NEAR, updated_at="2026-06-01T00:00:00Z", confidence=0.6)
    plan = await plan_dedup(memory)
    assert grouped(plan.groups) == [(human.id, {model.id})]
    assert "highest confidence (1 over 0.6)" in plan.groups[0].reason

    longer = await put(memory, NEAR, project=OTHER, updated_at="2026-01-01T00:00:00Z")
    shorter = await put(memory, BODY, project=OTHER, updated_at="2026-01-01T00:00:00Z")
    plan = await plan_dedup(memory, project=OTHER)
    assert grouped(plan.groups) == [(longer.id, {shorter.id})]
    assert "most complete" in plan.groups[0].reason
    assert shorter.id  # both of OTHER only: --project narrows what is looked at
    assert plan.checked == 2


async def test_superseded_notes_and_conflict_copies_are_left_alone(memory: Memory) -> None:
    old = await put(memory, BODY)
    await put(memory, UNRELATED, title="Newer thinking", supersedes=(old.id,))
    await put(memory, BODY, tags=("conflict",))
    plan = await plan_dedup(memory)
    assert plan.groups == []
    assert plan.checked == 1  # only the note that supersedes; the old one and the conflict copy are out


# -- applying --------------------------------------------------------------------------------------


async def test_a_dry_run_changes_nothing(memory: Memory) -> None:
    await put(memory, BODY)
    await put(memory, BODY)
    head = git(memory, "rev-parse", "HEAD")
    files = {p: p.read_bytes() for p in memory.config.home.glob("*/*/*.md")}
    plan = await plan_dedup(memory)
    assert len(plan.groups) == 1
    assert git(memory, "rev-parse", "HEAD") == head
    assert {p: p.read_bytes() for p in memory.config.home.glob("*/*/*.md")} == files
    assert len(await found(memory, "configuration files")) == 2


async def test_applied_dedup_retires_duplicates_from_search_and_session_context_but_get_and_history_keep_them(
    memory: Memory,
) -> None:
    original = await put(memory, BODY, updated_at="2026-11-01T10:00:00Z")
    edited = await put(memory, NEAR, updated_at="2026-11-03T10:00:00Z")
    other = await put(memory, UNRELATED, title="Rounding premiums")
    before = await session_context(memory, PROJECT)
    assert original.id in before.shown_ids + before.listed_ids

    result = await apply_dedup(memory, await plan_dedup(memory))

    assert result.commit == git(memory, "rev-parse", "HEAD")
    assert git(memory, "log", "-1", "--format=%s") == "anamnesis: dedup: retire 1 duplicate note in 1 group"
    assert original.id in git(memory, "log", "-1", "--format=%b")
    assert await found(memory, "configuration files") == [edited.id]
    after = await session_context(memory, PROJECT)
    assert original.id not in after.shown_ids + after.listed_ids
    assert {edited.id, other.id} <= set(after.shown_ids + after.listed_ids)
    # Still there: readable by id, said to be superseded, its file and its history untouched.
    retired = await memory.get(original.id)
    assert retired.body == BODY
    assert await memory.superseded_by(original.id) == [edited.id]
    assert [c.subject for c in await memory.history(original.id)] == [f"test: {original.id}"]
    kept = await memory.get(edited.id)
    assert kept.supersedes == (original.id,)
    assert (kept.body, kept.updated_at) == (NEAR, edited.updated_at)  # only `supersedes` changed
    assert (await memory.history(edited.id))[0].subject.startswith("anamnesis: dedup: retire 1")
    # A second dedup finds nothing left to do.
    assert (await plan_dedup(memory)).groups == []


async def test_many_groups_are_retired_in_one_commit(memory: Memory) -> None:
    for project in ("p1", "p2", "p3"):
        await put(memory, BODY, project=project)
        await put(memory, BODY, project=project)
    commits = int(git(memory, "rev-list", "--count", "HEAD"))
    result = await apply_dedup(memory, await plan_dedup(memory))
    assert len(result.plan.groups) == 3
    assert int(git(memory, "rev-list", "--count", "HEAD")) == commits + 1


# -- the eval guard ---------------------------------------------------------------------------------


async def guard_store(config: Config) -> tuple[Note, Note]:
    """A note only a rare word finds, and a better-rated near twin without that word: dedup
    would retire the first in favour of the second, and the eval query would find nothing."""
    async with open_memory(config) as memory:
        relevant = await put(memory, BODY + " Zanzibar", confidence=0.7)
        twin = await put(memory, BODY, confidence=1.0)
    eval_set = config.home / "eval" / "eval.jsonl"
    eval_set.parent.mkdir(parents=True, exist_ok=True)
    case = {
        "query": "zanzibar",
        "relevant_ids": [relevant.id],
        "note_titles": [relevant.title],
        "approved": True,
        "source": "test",
    }
    eval_set.write_text(json.dumps(case) + "\n", encoding="utf-8")
    return relevant, twin


async def test_the_eval_guard_refuses_a_dedup_that_lowers_recall_and_force_overrides_it(config: Config) -> None:
    relevant, twin = await guard_store(config)
    async with open_memory(config) as memory:
        head = git(memory, "rev-parse", "HEAD")
        plan = await plan_dedup(memory)
    assert grouped(plan.groups) == [(twin.id, {relevant.id})]

    with pytest.raises(CurationRefusedError) as refused:
        await guarded_apply(config, dedup_change())
    assert (refused.value.before, refused.value.after) == (1.0, 0.0)
    async with open_memory(config) as memory:
        assert git(memory, "rev-parse", "HEAD") == head
        assert await found(memory, "zanzibar") == [relevant.id]

    guarded = await guarded_apply(config, dedup_change(), force=True)
    assert guarded.forced
    assert guarded.recall_after == 0.0
    async with open_memory(config) as memory:
        assert await found(memory, "zanzibar") == []
        assert await memory.superseded_by(relevant.id) == [twin.id]


async def test_a_dedup_that_keeps_recall_passes_the_guard(config: Config) -> None:
    async with open_memory(config) as memory:
        kept = await put(memory, BODY, updated_at="2026-11-03T10:00:00Z")
        retired = await put(memory, BODY, updated_at="2026-11-01T10:00:00Z")
    eval_set = config.home / "eval" / "eval.jsonl"
    eval_set.parent.mkdir(parents=True)
    eval_set.write_text(json.dumps({"query": "configuration files", "relevant_ids": [retired.id]}) + "\n")
    guarded = await guarded_apply(config, dedup_change())
    assert (guarded.recall_before, guarded.recall_after) == (1.0, 1.0)
    assert grouped(guarded.value.plan.groups) == [(kept.id, {retired.id})]


# -- the command line ----------------------------------------------------------------------------------


async def test_cli_dedup_shows_then_applies_and_get_still_shows_the_retired_note(config: Config) -> None:
    async with open_memory(config) as memory:
        original = await put(memory, BODY, updated_at="2026-11-01T10:00:00Z")
        edited = await put(memory, NEAR, updated_at="2026-11-03T10:00:00Z")
        head = git(memory, "rev-parse", "HEAD")

    shown = anamnesis("dedup")
    assert shown.returncode == 0, shown.stderr
    assert "1 group, 1 note to retire" in shown.stdout
    assert f"keep    {edited.id}" in shown.stdout
    assert f"retire  {original.id}" in shown.stdout
    assert "Dry run: nothing changed" in shown.stdout

    as_json = anamnesis("dedup", "--json")
    data = json.loads(as_json.stdout)
    assert data["applied"] is False
    assert data["retire_count"] == 1
    assert data["groups"][0]["keep"]["id"] == edited.id
    async with open_memory(config) as memory:
        assert git(memory, "rev-parse", "HEAD") == head

    applied = anamnesis("dedup", "--apply", "--json")
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert result["applied"] is True
    assert result["commit"]
    assert result["eval_guard"]["recall_before"] is None  # no eval set: nothing to measure

    search = json.loads(anamnesis("search", "configuration", "files", "--json").stdout)
    assert [hit["id"] for hit in search["hits"]] == [edited.id]
    got = anamnesis("get", original.id)
    assert got.returncode == 0
    assert f"retired, superseded by: {edited.id}" in got.stdout
    again = anamnesis("dedup")
    assert "no duplicates" in again.stdout


async def test_cli_dedup_apply_is_refused_by_the_eval_guard_unless_forced(config: Config) -> None:
    relevant, twin = await guard_store(config)
    refused = anamnesis("dedup", "--apply")
    assert refused.returncode == 1
    assert "lowers eval recall@5 from 1.000 to 0.000" in refused.stderr
    assert "--force" in refused.stderr
    assert f"retire  {relevant.id}" in refused.stdout  # what was refused is shown
    async with open_memory(config) as memory:
        assert await memory.superseded_by(relevant.id) == []
    refused_json = anamnesis("dedup", "--apply", "--json")
    assert refused_json.returncode == 1
    data = json.loads(refused_json.stdout)
    assert data["applied"] is False
    assert "recall@5" in data["refused"]
    assert data["groups"][0]["retire"][0]["id"] == relevant.id

    forced = anamnesis("dedup", "--apply", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "Retired 1 note in 1 group" in forced.stdout
    assert "recall@5 1.000 → 0.000 (forced)" in forced.stdout
    async with open_memory(config) as memory:
        assert await memory.superseded_by(relevant.id) == [twin.id]


def test_cli_dedup_help_explains_and_gives_an_example(anamnesis_home: Path) -> None:
    result = anamnesis("dedup", "--help")
    assert result.returncode == 0
    for words in ("--apply", "--force", "--threshold", "recall@5", "example:", "anamnesis dedup --apply"):
        assert words in result.stdout
