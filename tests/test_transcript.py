"""The transcript reader: real JSONL files shaped like Claude Code 2.1.330's (reference section 4).

The builders below write the line types of a real transcript (split assistant blocks, tool
results with `toolUseResult`, meta and slash-command records, compaction, bookkeeping noise);
`tests/test_capture.py` uses them too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from anamnesis.capture.conversation import conversation
from anamnesis.capture.transcript import (
    ASK_CHARS,
    MAX_FILES,
    OUTCOME_CHARS,
    SessionDigest,
    TranscriptCursor,
    read_transcript,
)
from anamnesis.capture.transcript_records import clean_compact_summary

SID = "11111111-2222-4333-8444-555555555555"
CWD = "/home/dev/proj"
T0 = "2026-11-20T10:00:00.100Z"


def envelope(kind: str, at: str = T0, **fields: Any) -> dict[str, Any]:
    return {
        "parentUuid": None,
        "isSidechain": False,
        "type": kind,
        "uuid": f"{kind}-{at}",
        "timestamp": at,
        "cwd": CWD,
        "sessionId": SID,
        "version": "2.1.330",
        "gitBranch": "main",
        **fields,
    }


def user(content: str | list[dict[str, Any]], at: str = T0, **fields: Any) -> dict[str, Any]:
    return envelope("user", at, message={"role": "user", "content": content}, **fields)


def tool_result(tool_use_id: str, content: str, at: str = T0, *, is_error: bool = False) -> dict[str, Any]:
    block = {"tool_use_id": tool_use_id, "type": "tool_result", "content": content, "is_error": is_error}
    return user([block], at, toolUseResult={"stdout": content, "stderr": ""}, sourceToolAssistantUUID="m")


def assistant(message_id: str, *blocks: dict[str, Any], at: str = T0, stop: str = "end_turn") -> dict[str, Any]:
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5",
        "content": list(blocks),
    }
    return envelope("assistant", at, requestId=f"req_{message_id}", message={**message, "stop_reason": stop})


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(name: str, tool_id: str = "toolu_01", **tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


def slash_command(name: str, args: str = "", at: str = T0) -> list[dict[str, Any]]:
    caveat = "<local-command-caveat>The command below was run directly in Claude Code.</local-command-caveat>"
    body = f"<command-name>{name}</command-name>\n<command-message>{name[1:]}</command-message>\n"
    return [user(caveat, at, isMeta=True), user(body + f"<command-args>{args}</command-args>", at)]


def compaction(summary: str, at: str = "2026-11-20T10:05:03.000Z") -> list[dict[str, Any]]:
    boundary = envelope(
        "system",
        at,
        subtype="compact_boundary",
        content="Conversation compacted",
        compactMetadata={"trigger": "manual"},
    )
    wrapped = (
        "This session is being continued from a previous conversation that ran out of context. The summary below "
        f"covers the earlier portion of the conversation.\n\nSummary:\n{summary}\n\nIf you need specific details "
        "from before compaction (like exact code snippets), read the full transcript at: "
        f"/home/dev/.claude/projects/-home-dev-proj/{SID}.jsonl"
    )
    stdout = "<local-command-stdout>Compacted (ctrl+o to see full summary)</local-command-stdout>"
    return [boundary, user(wrapped, at, isCompactSummary=True, isVisibleInTranscriptOnly=True), user(stdout, at)]


def noise() -> list[dict[str, Any]]:
    return [
        {"type": "queue-operation", "operation": "enqueue", "timestamp": T0, "sessionId": SID, "content": "x"},
        envelope("attachment", attachment={"type": "hook_additional_context", "content": ["Anamnesis: use trio"]}),
        {
            "type": "api-request-blob",
            "sessionId": SID,
            "message": {"role": "user", "content": [text("<system-reminder>noise, not a prompt</system-reminder>")]},
        },
        {"type": "last-prompt", "lastPrompt": "Fix the failing date parser test", "sessionId": SID},
        envelope("system", subtype="stop_hook_summary", hookCount=1),
    ]


def basic_session() -> list[dict[str, Any]]:
    """The session of the reference's synthetic transcript (section 4.4), line for line in kind."""
    return [
        *noise()[:2],
        user("Fix the failing date parser test", "2026-11-20T10:00:00.100Z"),
        noise()[2],
        assistant("msg_001", text("Let me look at the parser."), at="2026-11-20T10:00:02.000Z", stop="tool_use"),
        assistant("msg_001", tool_use("Read", "toolu_01", file_path=f"{CWD}/src/dates.py"), stop="tool_use"),
        tool_result("toolu_01", "def parse(s):\n    return s.split('/')\n"),
        assistant(
            "msg_002", tool_use("Edit", "toolu_02", file_path=f"{CWD}/src/dates.py", old_string="/", new_string="-")
        ),
        assistant(
            "msg_002", tool_use("Write", "toolu_03", file_path=f"{CWD}/tests/test_dates.py", content="def test(): ...")
        ),
        tool_result("toolu_02", "The file has been updated successfully."),
        tool_result("toolu_03", "File created successfully"),
        assistant("msg_003", tool_use("Bash", "toolu_04", command="pytest -q tests/test_dates.py")),
        tool_result("toolu_04", "1 passed in 0.02s"),
        assistant("msg_004", text("Fixed: parse() now splits on '-'. The test passes."), at="2026-11-20T10:00:08.000Z"),
        *noise()[3:],
        *slash_command("/compact", at="2026-11-20T10:05:00.000Z"),
        *compaction("1. Primary Request: fix the failing date parser test.\n2. Status: test passes."),
        user([text("Also update the notebook example")], "2026-11-20T10:06:00.000Z"),
        assistant("msg_005", tool_use("NotebookEdit", "toolu_05", notebook_path=f"{CWD}/examples/demo.ipynb")),
        tool_result("toolu_05", "Updated cell cell-3"),
        assistant("msg_006", tool_use("MultiEdit", "toolu_06", file_path=f"{CWD}/README.md", edits=[])),
        tool_result("toolu_06", "Applied 1 edit"),
        assistant("msg_007", text("Notebook and README updated."), at="2026-11-20T10:06:04.000Z"),
        {"type": "summary", "summary": "Fix date parser test", "leafUuid": "m9"},
    ]


def jsonl(records: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)


def append(path: Path, data: bytes) -> int:
    with path.open("ab") as handle:
        handle.write(data)
    return len(data)


def write_transcript(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.write_bytes(jsonl(records))
    return path


# --- what a read extracts ----------------------------------------------------------------------


def test_digest_of_a_session_with_noise_split_blocks_and_a_compaction(tmp_path: Path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", basic_session())
    digest = read_transcript(path).digest
    assert digest.session_id == SID
    assert digest.cwd == CWD
    assert digest.git_branch == "main"
    assert digest.started_at == "2026-11-20T10:00:00.100Z"
    assert digest.ask == "Fix the failing date parser test"
    assert digest.later_asks == ("Also update the notebook example",)
    assert digest.prompts == 2
    assert digest.command == "/compact"
    assert digest.files_touched == (
        f"{CWD}/src/dates.py",
        f"{CWD}/tests/test_dates.py",
        f"{CWD}/examples/demo.ipynb",
        f"{CWD}/README.md",
    )
    assert digest.outcome == "Notebook and README updated."
    assert digest.compactions == 1
    assert digest.compact_summary == "1. Primary Request: fix the failing date parser test.\n2. Status: test passes."
    assert digest.bad_lines == 0


def test_noise_meta_and_tool_results_are_never_the_ask(tmp_path: Path) -> None:
    records = [
        *noise(),
        user("<local-command-caveat>run directly</local-command-caveat>", isMeta=True),
        user("<local-command-stdout>done</local-command-stdout>"),
        user("[Request interrupted by user]"),
        tool_result("toolu_01", "Please refactor everything"),
        user([{"type": "tool_result", "tool_use_id": "t", "content": [text("looks like a prompt")]}]),
        user("<system-reminder>The user opened file x</system-reminder>\nRename the config loader"),
    ]
    digest = read_transcript(write_transcript(tmp_path / "t.jsonl", records)).digest
    assert digest.ask == "Rename the config loader"
    assert digest.prompts == 1


def test_text_blocks_of_one_message_on_separate_lines_make_one_outcome(tmp_path: Path) -> None:
    records = [
        user("Explain the cache"),
        assistant("msg_a", text("First an early remark.")),
        assistant("msg_b", text("The cache is keyed by path.")),
        assistant("msg_b", tool_use("Read", file_path="/x")),
        assistant("msg_b", text("It is invalidated on write.")),
        envelope("system", subtype="turn_duration"),
    ]
    digest = read_transcript(write_transcript(tmp_path / "t.jsonl", records)).digest
    assert digest.outcome == "The cache is keyed by path.\nIt is invalidated on write."
    assert digest.outcome_message_id == "msg_b"


def test_garbage_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        jsonl([user("Keep going")])
        + b"not json at all\n"
        + b'{"type":"user","message":{"role":"user","content":"tor\n'
        + b"[1, 2, 3]\n"
        + b"\xff\xfe\x00garbage\n"
        + b"[" * 100_000
        + b"\n"
        + b"\n   \n"
        + jsonl([assistant("m1", text("Still fine after the garbage."))])
    )
    digest = read_transcript(path).digest
    assert digest.ask == "Keep going"
    assert digest.outcome == "Still fine after the garbage."
    assert digest.bad_lines == 5


def test_unknown_types_and_differently_spaced_json_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    spaced = json.dumps(user("Spaced out prompt"))  # `"type": "user"`, not the compact form
    path.write_bytes(jsonl([{"type": "hologram", "payload": {"x": 1}}]) + spaced.encode() + b"\n")
    digest = read_transcript(path).digest
    assert digest.ask == "Spaced out prompt"
    assert digest.bad_lines == 0


def test_sidechain_lines_are_not_the_session(tmp_path: Path) -> None:
    records = [
        user("Main ask"),
        {**user("Subagent ask"), "isSidechain": True},
        {**assistant("s1", text("subagent answer"), tool_use("Write", file_path="/sub.py")), "isSidechain": True},
        assistant("m1", text("Main answer, long enough to count as an outcome.")),
    ]
    digest = read_transcript(write_transcript(tmp_path / "t.jsonl", records)).digest
    assert (digest.ask, digest.prompts, digest.files_touched) == ("Main ask", 1, ())
    assert digest.outcome == "Main answer, long enough to count as an outcome."


def test_a_slash_command_is_recorded_apart_from_the_ask(tmp_path: Path) -> None:
    records = [*slash_command("/review-pr", "123"), assistant("m1", text("Reviewed."))]
    digest = read_transcript(write_transcript(tmp_path / "t.jsonl", records)).digest
    assert digest.ask is None
    assert digest.command == "/review-pr 123"


def test_a_secret_in_the_ask_is_redacted_in_the_digest(tmp_path: Path) -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2
    records = [user(f"Use {token} to push"), assistant("m1", text(f"Pushed with {token}."))]
    digest = read_transcript(write_transcript(tmp_path / "t.jsonl", records)).digest
    assert token not in json.dumps(digest.to_dict())
    assert digest.ask == "Use [REDACTED:github-token] to push"


def test_what_is_kept_is_capped(tmp_path: Path) -> None:
    many_files = [assistant(f"m{i}", tool_use("Write", f"t{i}", file_path=f"/p/f{i}.py")) for i in range(MAX_FILES + 7)]
    records = [user("word " * 5_000), *many_files, assistant("last", text("outcome " * 5_000))]
    digest = read_transcript(write_transcript(tmp_path / "t.jsonl", records)).digest
    assert len(digest.ask or "") <= ASK_CHARS
    assert len(digest.outcome or "") <= OUTCOME_CHARS
    assert digest.ask
    assert digest.outcome
    assert len(digest.files_touched) == MAX_FILES
    assert digest.files_dropped == 7


# --- incremental reading -----------------------------------------------------------------------


def test_incremental_read_sees_only_new_lines(tmp_path: Path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", [user("First ask"), assistant("m1", text("First answer."))])
    first = read_transcript(path)
    assert first.cursor.offset == path.stat().st_size

    added = append(path, jsonl([*noise(), user("Second ask"), assistant("m2", text("Second answer."))]))
    second = read_transcript(path, first.cursor)
    assert second.bytes_read == added
    assert second.lines_parsed == 2  # the noise lines are rejected before parsing
    assert not second.restarted
    assert second.digest.ask == "First ask"
    assert second.digest.later_asks == ("Second ask",)
    assert second.digest.outcome == "Second answer."

    third = read_transcript(path, second.cursor)
    assert (third.bytes_read, third.lines_parsed, third.digest) == (0, 0, second.digest)


def test_a_message_split_across_two_reads_is_still_one_outcome(tmp_path: Path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", [user("Go"), assistant("m1", text("Part one."))])
    first = read_transcript(path)
    append(path, jsonl([assistant("m1", text("Part two."))]))
    assert read_transcript(path, first.cursor).digest.outcome == "Part one.\nPart two."


def test_a_torn_last_line_is_left_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    line = jsonl([assistant("m2", text("Written in two goes."))])
    path.write_bytes(jsonl([user("Go"), assistant("m1", text("Earlier."))]) + line[:40])
    first = read_transcript(path)
    assert first.cursor.offset == path.stat().st_size - 40
    assert first.digest.outcome == "Earlier."
    assert first.digest.bad_lines == 0

    append(path, line[40:])
    second = read_transcript(path, first.cursor)
    assert second.digest.outcome == "Written in two goes."
    assert second.cursor.offset == path.stat().st_size


def test_a_whole_last_line_without_a_newline_is_read(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(jsonl([user("Go")]) + jsonl([assistant("m1", text("Done, no newline."))]).rstrip(b"\n"))
    result = read_transcript(path)
    assert result.digest.outcome == "Done, no newline."
    assert result.cursor.offset == path.stat().st_size


def test_a_replaced_or_shrunk_file_is_read_from_the_start(tmp_path: Path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", [user("Old session ask"), assistant("m1", text("Old."))])
    first = read_transcript(path)

    write_transcript(path, [user("New session ask, a longer first line than before"), assistant("m9", text("New."))])
    replaced = read_transcript(path, first.cursor)
    assert replaced.restarted
    assert replaced.digest.ask == "New session ask, a longer first line than before"
    assert replaced.digest.later_asks == ()

    write_transcript(path, [user("x")])
    assert read_transcript(path, replaced.cursor).restarted


def test_a_missing_transcript_reads_as_nothing_new(tmp_path: Path) -> None:
    result = read_transcript(tmp_path / "not-yet.jsonl")
    assert (result.digest, result.bytes_read, result.cursor.offset) == (SessionDigest(), 0, 0)


def test_an_oversized_line_is_skipped_but_its_edit_path_is_kept(tmp_path: Path) -> None:
    huge = assistant("m1", tool_use("Write", file_path=f"{CWD}/data/huge.json", content="x" * 200_000))
    path = write_transcript(tmp_path / "t.jsonl", [user("Dump the data"), huge, assistant("m2", text("Dumped it."))])
    result = read_transcript(path, max_line_bytes=4096)
    assert result.digest.files_touched == (f"{CWD}/data/huge.json",)
    assert result.digest.outcome == "Dumped it."
    assert result.cursor.offset == path.stat().st_size


def test_an_oversized_torn_line_waits_for_its_end(tmp_path: Path) -> None:
    huge = jsonl([assistant("m1", text("y" * 50_000))])
    path = tmp_path / "t.jsonl"
    path.write_bytes(jsonl([user("Go")]) + huge[:30_000])
    first = read_transcript(path, max_line_bytes=4096)
    assert first.cursor.offset == len(jsonl([user("Go")]))
    append(path, huge[30_000:] + jsonl([assistant("m2", text("After the big one."))]))
    assert read_transcript(path, first.cursor, max_line_bytes=4096).digest.outcome == "After the big one."


def test_the_cursor_round_trips_through_json_and_junk_reads_as_fresh(tmp_path: Path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", basic_session())
    cursor = read_transcript(path).cursor
    assert TranscriptCursor.from_dict(json.loads(json.dumps(cursor.to_dict()))) == cursor
    assert TranscriptCursor.from_dict({"offset": "12"}) == TranscriptCursor()
    assert TranscriptCursor.from_dict({"offset": -1, "head_len": 0, "head_sha": "", "digest": {}}) == TranscriptCursor()
    junk = {**cursor.to_dict(), "digest": {"ask": 3, "files_touched": "nope", "prompts": True}}
    restored = TranscriptCursor.from_dict(junk).digest
    assert (restored.ask, restored.files_touched, restored.prompts) == (None, (), 0)


def test_a_20_mb_transcript_is_read_once_then_only_what_is_new(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    blob = "lorem ipsum dolor sit amet " * 400
    rounds = 0
    with path.open("wb") as handle:
        while handle.tell() < 20 * 1024 * 1024:
            rounds += 1
            handle.write(
                jsonl(
                    [
                        user(f"step {rounds}"),
                        assistant(f"m{rounds}", {"type": "thinking", "thinking": blob[:4000]}),
                        assistant(
                            f"m{rounds}",
                            tool_use("Write", f"t{rounds}", file_path=f"/p/f{rounds % 40}.py", content=blob),
                        ),
                        tool_result(f"t{rounds}", blob * 2),
                        assistant(f"n{rounds}", text(f"Finished step {rounds}.")),
                        noise()[2],
                    ]
                )
            )
    total_lines = rounds * 6
    first = read_transcript(path)
    assert first.digest.outcome == f"Finished step {rounds}."
    assert len(first.digest.files_touched) == 40
    # Thinking blocks, tool results and bookkeeping are never parsed.
    assert first.lines_parsed <= total_lines // 2

    added = append(path, jsonl([user("one more thing"), assistant("z", text("All done."))]))
    second = read_transcript(path, first.cursor)
    assert second.bytes_read == added
    assert second.lines_parsed == 2
    assert second.digest.outcome == "All done."
    assert second.digest.later_asks[-1] == "one more thing"


# --- compaction summaries and the conversation for a model -------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "This session is being continued from a previous conversation that ran out of context. The summary "
            "below covers the earlier portion of the conversation.\n\n<system-reminder>x</system-reminder>\n"
            "Created hello.py.\n\nIf you need specific details from before compaction, read the full transcript "
            "at: /home/u/.claude/projects/p/s.jsonl\nPlease continue the conversation from where we left it off.",
            "Created hello.py.",
        ),
        (
            "This session is being continued from a previous conversation that ran out of context. The "
            "conversation is summarized below:\nAnalysis: the tests were fixed.",
            "Analysis: the tests were fixed.",
        ),
        ("Created hello.py; it prints hello.", "Created hello.py; it prints hello."),
    ],
)
def test_compaction_summaries_lose_their_boilerplate(raw: str, expected: str) -> None:
    assert clean_compact_summary(raw) == expected


def test_the_conversation_for_a_model_has_every_step(tmp_path: Path) -> None:
    records = [
        *basic_session(),
        assistant("m8", tool_use("Bash", "toolu_09", command="rm -rf build")),
        tool_result("toolu_09", "permission denied", is_error=True),
    ]
    turns = list(conversation(write_transcript(tmp_path / "t.jsonl", records)))
    roles = [t.role for t in turns]
    assert (roles[0], turns[0].text) == ("user", "Fix the failing date parser test")
    assert ("tool", "Edit /home/dev/proj/src/dates.py") in [(t.role, t.text) for t in turns]
    assert ("result", "1 passed in 0.02s") in [(t.role, t.text) for t in turns]
    assert ("error", "permission denied") in [(t.role, t.text) for t in turns]
    assert ("user", "/compact") in [(t.role, t.text) for t in turns]
    assert "summary" in roles
    assert not any("noise, not a prompt" in t.text for t in turns)


def test_only_a_regular_file_is_read_as_a_transcript(tmp_path: Path) -> None:
    fifo = tmp_path / "transcript.fifo"
    os.mkfifo(fifo)  # a plain open() would wait here for a writer, forever
    for path in (fifo, Path("/dev/zero"), tmp_path):
        read = read_transcript(path)
        assert (read.bytes_read, read.cursor.offset) == (0, 0), path
        assert list(conversation(path)) == [], path


def test_a_read_stops_at_the_size_the_file_had_when_it_was_opened(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    line = json.dumps(envelope("user", message={"role": "user", "content": "first ask"})) + "\n"
    path.write_text(line * 3, encoding="utf-8")

    first = read_transcript(path)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)
    second = read_transcript(path, first.cursor)

    assert first.cursor.offset == len(line.encode()) * 3
    assert second.bytes_read == len(line.encode())
