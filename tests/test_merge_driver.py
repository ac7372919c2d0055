"""The note merge driver: what merges on its own, what is left for keep-both, and never a marker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anamnesis.errors import MergeConflict
from anamnesis.notes import Note, parse_note, render_note
from anamnesis.sync.merge_driver import merge_body, merge_lists, merge_texts

BASE = Note(
    id="01JD3W6Q2M8Z4T9K7B5X0R1C2V",
    type="procedural",
    title="Configs over scripts",
    body="First paragraph about configs.\n\nSecond paragraph about scripts.\n\nThird paragraph: exceptions.",
    project="github.com/acme/quotes-api",
    machine_id="desktop",
    created_at="2026-11-20T10:00:00Z",
    updated_at="2026-11-20T10:00:00Z",
    tags=("convention", "tooling"),
)


def text(note: Note) -> str:
    return render_note(note)


def test_edits_to_different_fields_merge_and_the_later_edit_names_the_machine() -> None:
    ours = BASE.with_changes(
        title="Prefer configs over scripts", updated_at="2026-11-21T09:00:00Z", machine_id="laptop"
    )
    theirs = BASE.with_changes(
        tags=("convention", "tooling", "ci"), updated_at="2026-11-22T08:00:00Z", machine_id="desktop", confidence=0.8
    )
    merged = parse_note(merge_texts(text(BASE), text(ours), text(theirs)))
    assert merged.title == "Prefer configs over scripts"
    assert merged.tags == ("convention", "tooling", "ci")
    assert merged.confidence == 0.8
    assert merged.updated_at == "2026-11-22T08:00:00Z"
    assert merged.machine_id == "desktop"


def test_tags_merge_as_sets_keeping_removals_from_either_side() -> None:
    ours = BASE.with_changes(tags=("convention", "python"))  # removed tooling, added python
    theirs = BASE.with_changes(tags=("convention", "tooling", "ci"))
    merged = parse_note(merge_texts(text(BASE), text(ours), text(theirs)))
    assert merged.tags == ("convention", "python", "ci")
    assert merge_lists(["a", "b"], ["a", "b", "c"], ["b", "d"]) == ["b", "c", "d"]


def test_bodies_changed_in_different_paragraphs_merge() -> None:
    ours = BASE.with_changes(body=BASE.body.replace("First paragraph", "First PARAGRAPH (laptop)"))
    theirs = BASE.with_changes(body=BASE.body.replace("Third paragraph", "Third PARAGRAPH (desktop)"))
    merged = parse_note(merge_texts(text(BASE), text(ours), text(theirs)))
    assert "First PARAGRAPH (laptop)" in merged.body
    assert "Third PARAGRAPH (desktop)" in merged.body
    assert "Second paragraph about scripts." in merged.body


def test_a_log_both_sides_appended_to_keeps_both_entries_once() -> None:
    base = "## Log\n- started\n"
    ours = base + "- laptop: fixed the build\n"
    theirs = base + "- desktop: wrote the docs\n"
    merged = merge_body(base, ours, theirs)
    assert merged == base + "- desktop: wrote the docs\n- laptop: fixed the build\n"  # the hub's lines first
    assert merge_body(base, merged, theirs) == merged
    assert merge_body(base, theirs, merged) == merged


def test_the_same_line_changed_two_ways_is_a_conflict() -> None:
    ours = BASE.with_changes(body=BASE.body.replace("Second paragraph about scripts.", "Scripts are banned."))
    theirs = BASE.with_changes(body=BASE.body.replace("Second paragraph about scripts.", "Scripts are fine."))
    with pytest.raises(MergeConflict, match="same part"):
        merge_texts(text(BASE), text(ours), text(theirs))


def test_the_same_field_changed_two_ways_is_a_conflict() -> None:
    ours = BASE.with_changes(title="Configs, always")
    theirs = BASE.with_changes(title="Scripts, sometimes")
    with pytest.raises(MergeConflict, match="title"):
        merge_texts(text(BASE), text(ours), text(theirs))


def test_the_same_new_file_written_twice_differently_is_a_conflict() -> None:
    with pytest.raises(MergeConflict, match="created"):
        merge_texts("", text(BASE), text(BASE.with_changes(body="Another body")))
    assert merge_texts("", text(BASE), text(BASE)) == text(BASE)


def test_plain_markdown_without_front_matter_merges_by_lines() -> None:
    base = "# Readme\n\none\n\ntwo\n\nthree\n"
    merged = merge_texts(base, base.replace("one", "ONE"), base.replace("three", "THREE"))
    assert merged == "# Readme\n\nONE\n\ntwo\n\nTHREE\n"


def test_unknown_front_matter_keys_survive_a_merge() -> None:
    base = BASE.with_changes(extra={"conflict_of": "01JD3W6Q2M8Z4T9K7B5X0R1C2A"})
    ours = base.with_changes(title="New title")
    theirs = base.with_changes(extra={"conflict_of": "01JD3W6Q2M8Z4T9K7B5X0R1C2A", "reviewed": True})
    merged = parse_note(merge_texts(text(base), text(ours), text(theirs)))
    assert merged.extra == {"conflict_of": "01JD3W6Q2M8Z4T9K7B5X0R1C2A", "reviewed": True}
    assert merged.title == "New title"


def _driver(tmp_path: Path, base: str, ours: str, theirs: str) -> tuple[int, str, str]:
    files = []
    for name, content in (("O", base), ("A", ours), ("B", theirs)):
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        files.append(str(path))
    result = subprocess.run(
        [sys.executable, "-m", "anamnesis.sync.merge_driver", *files, "semantic/x.md"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result.returncode, (tmp_path / "A").read_text(encoding="utf-8"), result.stderr


def test_the_driver_as_git_runs_it_writes_the_merge_or_leaves_ours_untouched(tmp_path: Path) -> None:
    ours = BASE.with_changes(title="Prefer configs")
    theirs = BASE.with_changes(tags=("convention",))
    code, result, _ = _driver(tmp_path, text(BASE), text(ours), text(theirs))
    assert code == 0
    assert parse_note(result).title == "Prefer configs"
    assert parse_note(result).tags == ("convention",)

    clash = BASE.with_changes(title="Prefer scripts")
    code, result, stderr = _driver(tmp_path, text(BASE), text(ours), text(clash))
    assert code == 1
    assert result == text(ours)  # untouched: no markers, ever
    assert "both versions will be kept" in stderr


lines = st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta", "", "- item"]), min_size=0, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=lines, ours=lines, theirs=lines)
def test_a_merge_never_writes_conflict_markers(base: list[str], ours: list[str], theirs: list[str]) -> None:
    def body(parts: list[str]) -> str:
        return "\n".join(["intro", *parts, "outro"]) + "\n"

    try:
        merged = merge_body(body(base), body(ours), body(theirs))
    except MergeConflict:
        return
    assert "<<<<<<<" not in merged
    assert ">>>>>>>" not in merged
    assert "=======" not in merged


def test_lines_appended_on_many_machines_merge_in_the_hubs_order_without_a_conflict() -> None:
    """Ten machines append to one note at once; each merges into what the hub holds by then."""
    base = "## Log\n- started\n"
    hub = base
    for machine in range(10):
        mine = base + f"- machine {machine}: line\n"
        hub = merge_body(base, mine, hub)
    assert hub == base + "".join(f"- machine {m}: line\n" for m in range(10))


def test_a_retried_merge_keeps_the_hubs_order_where_ours_first_used_to_collide() -> None:
    """A lost push race: the local merge is merged again with the hub's newer merge."""
    base = "## Log\n- started\n"
    first = base + "- a\n"  # the hub after machine A pushed
    local = merge_body(base, base + "- l\n", first)  # machine L merged A's line
    hub_now = merge_body(base, base + "- k\n", first)  # meanwhile K merged and pushed
    assert merge_body(first, local, hub_now) == base + "- a\n- k\n- l\n"


def test_an_insertion_inside_a_line_range_the_other_side_rewrote_is_a_conflict() -> None:
    base = "one\ntwo\nthree\nfour\n"
    with pytest.raises(MergeConflict):
        merge_body(base, "one\nTWO AND THREE\nfour\n", "one\ntwo\nnew\nthree\nfour\n")
    assert merge_body(base, "one\ntwo\nthree\nfour\nfive\n", "ONE\ntwo\nthree\nfour\n") == (
        "ONE\ntwo\nthree\nfour\nfive\n"
    )


def test_two_machines_editing_within_one_second_merge_and_the_hub_names_the_machine() -> None:
    stamp = "2026-11-22T08:00:00Z"
    ours = BASE.with_changes(body=BASE.body + "\n- laptop", machine_id="laptop", updated_at=stamp)
    theirs = BASE.with_changes(body=BASE.body + "\n- server", machine_id="server", updated_at=stamp)
    merged = parse_note(merge_texts(text(BASE), text(ours), text(theirs)))
    assert merged.machine_id == "server"
    assert merged.body.endswith("- server\n- laptop")


def test_front_matter_from_the_hub_that_could_expand_without_bound_is_a_conflict_not_a_merge() -> None:
    base = "---\ntitle: Plain\n---\nBody.\n"
    ours = "---\ntitle: Ours\n---\nBody.\n"
    laughs = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 9))
    theirs = "---\nl0: &l0 x\n" + laughs + "---\nBody.\n"

    with pytest.raises(MergeConflict, match="alias"):
        merge_texts(base, ours, theirs)
