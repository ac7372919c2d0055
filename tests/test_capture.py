"""Capturing a session into the real memory of a test home (files, SQLite index, git)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from anamnesis.capture.redact import find_secrets
from anamnesis.capture.session import capture_session, cursor_path, read_offset, session_note_id
from anamnesis.memory import Memory, NoteDraft
from anamnesis.notes import Note
from tests.test_transcript import (
    CWD,
    SID,
    append,
    assistant,
    basic_session,
    compaction,
    jsonl,
    slash_command,
    text,
    tool_use,
    user,
    write_transcript,
)

pytestmark = pytest.mark.anyio

AWS_ID = "AKIA" + "Q7ZB3XK2M9PL4TRE"
DB_PASSWORD = "Tr0ub4dor" + "&3xQ"
GH_TOKEN = "ghp_" + "Zr8Kq2Lm5Np7Xv9Bt3Wc6Yd1Hf4Js0Ga2Ue8"


async def capture(
    memory: Memory,
    transcript: Path | None,
    *,
    project: str | None = "github.com/acme/dates",
    source: str = "session-end",
    compact_summary: str | None = None,
) -> Note | None:
    return await capture_session(
        memory,
        transcript,
        SID,
        project,
        source,
        cursor_dir=memory.config.layout.state_dir,
        compact_summary=compact_summary,
    )


def episodic_files(memory: Memory) -> list[Path]:
    return sorted((memory.config.layout.memory_dir / "episodic").glob("*.md"))


async def git_log(memory: Memory) -> str:
    result = await anyio.run_process(
        ["git", "-C", str(memory.config.layout.memory_dir), "log", "-p", "--format=%H %s"], check=False
    )
    return result.stdout.decode()


async def test_a_secret_in_the_prompt_never_reaches_the_note_the_cursor_or_git(memory: Memory, tmp_path: Path) -> None:
    records = [
        user(f"Deploy with AWS key {AWS_ID} and set DB_PASSWORD={DB_PASSWORD} on the box"),
        assistant("m1", tool_use("Write", file_path=f"{CWD}/deploy/.env", content=f"DB_PASSWORD={DB_PASSWORD}\n")),
        assistant("m2", text(f"Deployed. I pushed with {GH_TOKEN}; rotate it soon.")),
    ]
    note = await capture(memory, write_transcript(tmp_path / "t.jsonl", records))
    assert note is not None
    on_disk = episodic_files(memory)[0].read_text()
    for secret in (AWS_ID, DB_PASSWORD, GH_TOKEN):
        assert secret not in on_disk
        assert secret not in note.title
        assert secret not in cursor_path(memory.config.layout.state_dir, SID).read_text()
        assert secret not in await git_log(memory)
    assert find_secrets(note.title + "\n" + note.body) == []
    assert "[REDACTED:aws-access-key-id]" in note.body
    assert "deploy/.env" in note.body


async def test_the_note_says_what_the_session_did(memory: Memory, tmp_path: Path) -> None:
    note = await capture(memory, write_transcript(tmp_path / "t.jsonl", basic_session()))
    assert note is not None
    assert note.title == "Fix the failing date parser test"
    assert (note.type, note.scope, note.project) == ("episodic", "portable", "github.com/acme/dates")
    assert note.tags == ("session", "session-end")
    assert (note.prov_source, note.prov_session, note.prov_model) == ("session-end", SID, None)
    assert "**Ask:** Fix the failing date parser test" in note.body
    assert "**Branch:** main" in note.body
    assert (
        "**Files touched (4):**\n- src/dates.py\n- tests/test_dates.py\n- examples/demo.ipynb\n- README.md" in note.body
    )
    assert "**Outcome:** Notebook and README updated." in note.body
    assert "**Compaction summary:**" in note.body
    assert "1. Primary Request: fix the failing date parser test." in note.body
    assert ".claude/projects" not in note.body  # the compaction boilerplate and its local path are gone
    assert note.id == session_note_id(SID, "2026-11-20T10:00:00.100Z")
    hits = await memory.search("date parser")
    assert [h.id for h in hits] == [note.id]


async def test_repeated_capture_updates_the_same_note_in_place(memory: Memory, tmp_path: Path) -> None:
    path = write_transcript(
        tmp_path / "t.jsonl", [user("Speed up the importer"), assistant("m1", text("Profiling it now, one moment."))]
    )
    first = await capture(memory, path, source="precompact")
    assert first is not None

    append(
        path,
        jsonl(
            [
                assistant("m2", tool_use("Edit", file_path=f"{CWD}/importer.py")),
                assistant("m3", text("Twice as fast now.")),
            ]
        ),
    )
    second = await capture(memory, path)
    assert second is not None
    assert second.id == first.id
    assert second.created_at == first.created_at
    assert "Twice as fast now." in second.body
    assert "importer.py" in second.body
    assert second.tags == ("session", "session-end")
    assert episodic_files(memory) == [memory.config.layout.memory_dir / "episodic" / f"{first.id}.md"]
    assert (await memory.get(first.id)).body == second.body


async def test_a_capture_with_nothing_new_writes_and_commits_nothing(memory: Memory, tmp_path: Path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", basic_session())
    note = await capture(memory, path)
    head = await memory.head()
    again = await capture(memory, path)
    assert again == note
    assert await memory.head() == head


async def test_the_note_id_survives_a_lost_cursor(memory: Memory, tmp_path: Path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", basic_session())
    note = await capture(memory, path)
    assert note is not None
    cursor_path(memory.config.layout.state_dir, SID).unlink()
    again = await capture(memory, path)
    assert again is not None
    assert again.id == note.id
    assert len(episodic_files(memory)) == 1


@pytest.mark.parametrize(
    "records",
    [
        [],
        [*slash_command("/clear"), assistant("m1", text("Cleared."))],
        [*slash_command("/model", "opus"), assistant("m1", text("Set model to opus."))],
        [assistant("m1", text("Hello! How can I help?"))],
        [{"type": "queue-operation", "operation": "enqueue", "sessionId": SID}],
    ],
    ids=["empty", "clear", "lone-command", "greeting-only", "noise-only"],
)
async def test_a_trivial_session_leaves_no_note(
    memory: Memory, tmp_path: Path, records: list[dict[str, object]]
) -> None:
    assert await capture(memory, write_transcript(tmp_path / "t.jsonl", records)) is None
    assert episodic_files(memory) == []


async def test_a_session_whose_transcript_does_not_exist_yet_leaves_no_note(memory: Memory, tmp_path: Path) -> None:
    assert await capture(memory, tmp_path / "missing.jsonl") is None
    assert await capture(memory, None) is None
    assert episodic_files(memory) == []


async def test_the_compaction_summary_handed_over_by_post_compact_is_kept_and_redacted(
    memory: Memory, tmp_path: Path
) -> None:
    path = write_transcript(tmp_path / "t.jsonl", [user("Migrate the billing tables"), assistant("m1", text("On it."))])
    summary = (
        f"Migrated invoices and payments. The staging DSN is postgres://app:{DB_PASSWORD}@db.staging:5432/billing."
    )
    note = await capture(memory, path, source="postcompact", compact_summary=summary)
    assert note is not None
    assert "**Compaction summary:**\n\nMigrated invoices and payments." in note.body
    assert "postgres://app:[REDACTED:url-password]@db.staging:5432/billing" in note.body
    assert DB_PASSWORD not in episodic_files(memory)[0].read_text()

    append(path, jsonl(compaction("A later, newer summary.")))
    later = await capture(memory, path)
    assert later is not None
    assert "A later, newer summary." in later.body


async def test_a_compaction_summary_alone_is_worth_a_note(memory: Memory, tmp_path: Path) -> None:
    path = write_transcript(
        tmp_path / "t.jsonl", [*slash_command("/compact"), *compaction("Refactored the CLI parser.")]
    )
    note = await capture(memory, path, source="precompact")
    assert note is not None
    assert "Refactored the CLI parser." in note.body


async def test_a_note_edited_by_hand_is_left_alone(memory: Memory, tmp_path: Path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", basic_session())
    note = await capture(memory, path)
    assert note is not None
    edited = await memory.write(
        NoteDraft(
            type="episodic", title="Date parser fix", body="My own account.", project=note.project, note_id=note.id
        )
    )
    append(path, jsonl([user("And the changelog"), assistant("m9", text("Changelog updated too."))]))
    kept = await capture(memory, path)
    assert kept is not None
    assert (kept.title, kept.body) == (edited.title, "My own account.")
    assert (await memory.get(note.id)).body == "My own account."


async def test_the_project_comes_from_the_transcript_cwd_when_not_given(memory: Memory, tmp_path: Path) -> None:
    note = await capture(memory, write_transcript(tmp_path / "t.jsonl", basic_session()), project=None)
    assert note is not None
    assert note.project == "proj"


async def test_a_corrupt_cursor_is_replaced_by_a_fresh_read(memory: Memory, tmp_path: Path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", basic_session())
    cursor = cursor_path(memory.config.layout.state_dir, SID)
    cursor.parent.mkdir(parents=True)
    cursor.write_text("{not json")
    note = await capture(memory, path)
    assert note is not None
    assert json.loads(cursor.read_text())["note_id"] == note.id


async def test_read_offset_tells_a_hook_how_much_is_already_read(memory: Memory, tmp_path: Path) -> None:
    state_dir = memory.config.layout.state_dir
    path = write_transcript(tmp_path / "t.jsonl", basic_session())
    assert read_offset(state_dir, SID) == 0
    await capture(memory, path)
    assert read_offset(state_dir, SID) == path.stat().st_size


def test_a_session_note_without_an_ask_is_titled_by_its_branch_or_files() -> None:
    from anamnesis.capture.summary import heuristic_summary
    from anamnesis.capture.transcript import SessionDigest

    on_branch = SessionDigest(
        git_branch="fix/BILL-231-dunning",
        files_touched=("/w/billing/tasks/dunning.py",),
        outcome="Retries now stop after day 14 as decided.",
    )
    assert heuristic_summary(on_branch).title == "Session on branch fix/BILL-231-dunning"
    files_only = SessionDigest(cwd="/w", files_touched=("/w/billing/tasks/dunning.py", "/w/tests/test_dunning.py"))
    assert heuristic_summary(files_only).title == "Session editing dunning.py, test_dunning.py"
    asked = SessionDigest(ask="Why does the nightly billing export fail?\nIt started on Monday.")
    assert heuristic_summary(asked).title == "Why does the nightly billing export fail?"
