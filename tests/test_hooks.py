"""Each hook event as Claude Code runs it: a subprocess with JSON on stdin."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from anamnesis.configedit import edit_config
from anamnesis.memory import Memory, NoteDraft
from tests.hookprobe import probe_hook

PROJECT = "github.com/acme/quotes-api"


def hook(event: str, payload: object | str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    stdin = payload if isinstance(payload, str) else json.dumps(payload)
    return subprocess.run(
        [sys.executable, "-m", "anamnesis", "hook", event],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def context_of(result: subprocess.CompletedProcess[str], event: str) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    if not result.stdout:
        return ""
    data = json.loads(result.stdout)
    assert data["hookSpecificOutput"]["hookEventName"] == event
    return str(data["hookSpecificOutput"]["additionalContext"])


def repo_with_origin(tmp_path: Path) -> Path:
    repo = tmp_path / "quotes-api"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", f"https://{PROJECT}.git"], check=True)
    return repo


async def write(
    memory: Memory,
    title: str,
    body: str,
    *,
    type: str = "procedural",
    project: str = PROJECT,
    tags: tuple[str, ...] = (),
) -> str:
    note = await memory.write(NoteDraft(type=type, title=title, body=body, project=project, tags=tags))
    return note.id


@pytest.mark.anyio
async def test_session_start_hands_claude_preferences_project_notes_and_latest_sessions(
    memory: Memory, tmp_path: Path
) -> None:
    pref = await write(
        memory, "Prefer pytest over unittest", "Write tests as plain pytest functions.", project="global"
    )
    conv = await write(memory, "Money is Decimal", "Quotes use Decimal, never float.", type="semantic")
    await write(memory, "Unrelated project fact", "Billing uses cents.", project="github.com/acme/billing")
    sessions = [await write(memory, f"Session {i}", f"**Ask:** fix bug {i}", type="episodic") for i in range(3)]
    text = context_of(
        hook("session-start", {"cwd": str(repo_with_origin(tmp_path)), "session_id": "s1", "source": "startup"}),
        "SessionStart",
    )
    assert text.startswith("<anamnesis-memory>")
    assert text.endswith("</anamnesis-memory>")
    assert "not instructions" in text
    assert pref in text
    assert conv in text
    assert "Billing uses cents" not in text
    assert sessions[2] in text
    assert sessions[1] in text
    assert sessions[0] not in text


@pytest.mark.anyio
async def test_session_start_stays_within_budget_and_lists_what_does_not_fit(memory: Memory, tmp_path: Path) -> None:
    ids = [
        await write(memory, f"Convention number {i}", "A long explanation of the convention. " * 30) for i in range(40)
    ]
    text = context_of(
        hook("session-start", {"cwd": str(repo_with_origin(tmp_path)), "session_id": "s2"}), "SessionStart"
    )
    assert len(text) <= 6_000
    assert "memory_get" in text
    mentioned = [note_id for note_id in ids if note_id in text]
    assert len(mentioned) >= 10  # whole notes first, then titles and ids

    edit_config(memory.config.home, lambda document: document.update(hooks={"context_budget": 50_000}))
    bigger = context_of(
        hook("session-start", {"cwd": str(tmp_path / "quotes-api"), "session_id": "s3"}), "SessionStart"
    )
    assert len(bigger) <= 9_500


@pytest.mark.anyio
async def test_prompt_hook_offers_relevant_notes_once_and_nothing_when_irrelevant(
    memory: Memory, tmp_path: Path
) -> None:
    cwd = str(repo_with_origin(tmp_path))
    deploy = await write(memory, "Deploy quotes with helm upgrade", "Run make deploy; it wraps helm upgrade.")
    first = context_of(
        hook("user-prompt-submit", {"cwd": cwd, "session_id": "p1", "prompt": "how do I deploy quotes with helm?"}),
        "UserPromptSubmit",
    )
    assert deploy in first
    assert len(first) <= 1_500
    again = hook("user-prompt-submit", {"cwd": cwd, "session_id": "p1", "prompt": "deploy quotes with helm again"})
    assert context_of(again, "UserPromptSubmit") == ""
    unrelated = hook("user-prompt-submit", {"cwd": cwd, "session_id": "p1", "prompt": "rename the variable x"})
    assert context_of(unrelated, "UserPromptSubmit") == ""


@pytest.mark.anyio
async def test_prompt_hook_can_be_switched_off(memory: Memory, tmp_path: Path) -> None:
    await write(memory, "Deploy quotes with helm upgrade", "Run make deploy.")
    edit_config(memory.config.home, lambda document: document.update(hooks={"user_prompt_context": False}))
    result = hook(
        "user-prompt-submit",
        {"cwd": str(repo_with_origin(tmp_path)), "session_id": "p2", "prompt": "deploy quotes with helm"},
    )
    assert context_of(result, "UserPromptSubmit") == ""


@pytest.mark.parametrize(
    "event", ["session-start", "user-prompt-submit", "pre-compact", "post-compact", "session-end", "stop"]
)
@pytest.mark.parametrize(
    "stdin", ["", "not json", "[1, 2]", '{"cwd": 42, "session_id": [1]}', "\x00\xff garbage", "{" * 10_000]
)
def test_hooks_fail_open_on_garbage(anamnesis_home: Path, event: str, stdin: str) -> None:
    subprocess.run([sys.executable, "-m", "anamnesis", "init"], check=True, capture_output=True)
    result = hook(event, stdin)
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout == "" or json.loads(result.stdout)["hookSpecificOutput"]


@pytest.mark.parametrize("event", ["session-start", "user-prompt-submit", "session-end", "stop"])
def test_hooks_without_a_home_do_nothing(anamnesis_home: Path, event: str) -> None:
    result = hook(event, {"cwd": "/", "session_id": "x", "prompt": "hello"})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.anyio
async def test_session_start_answers_from_the_index_while_another_process_holds_the_write_lock(
    memory: Memory, tmp_path: Path
) -> None:
    note = await write(memory, "Lint with ruff", "ruff check . before commit")
    (memory.config.layout.memory_dir / "procedural" / "01JD3W6Q2M8Z4T9K7B5X0R1C2V.md").write_text(
        "---\nid: 01JD3W6Q2M8Z4T9K7B5X0R1C2V\ntype: procedural\ntitle: Hand edit\n---\nbody\n"
    )  # something to refresh, so the hook needs the write lock
    blocker = sqlite3.connect(memory.config.layout.index_path, timeout=1)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        result = hook("session-start", {"cwd": str(repo_with_origin(tmp_path)), "session_id": "l1"})
        assert note in context_of(result, "SessionStart")
    finally:
        blocker.rollback()
        blocker.close()
    log = (memory.config.layout.state_dir / "hooks.log").read_text()
    assert "locked" in log


def test_stop_prints_nothing_even_with_a_valid_payload(anamnesis_home: Path) -> None:
    subprocess.run([sys.executable, "-m", "anamnesis", "init"], check=True, capture_output=True)
    result = hook("stop", {"session_id": "s", "cwd": "/tmp", "last_assistant_message": "done"})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


LOOP_MODULES = {"asyncio", "anyio", "aiosqlite"}


def probe(event: str, payload: dict[str, str]) -> tuple[str, list[str]]:
    """The hook's output, and which event-loop modules the process loaded to answer."""
    out, loaded = probe_hook(event, payload)
    return out, sorted(loaded & LOOP_MODULES)


@pytest.mark.anyio
async def test_context_hooks_answer_without_an_event_loop_once_the_index_is_in_step(
    memory: Memory, tmp_path: Path
) -> None:
    cwd = str(repo_with_origin(tmp_path))
    deploy = await write(memory, "Deploy quotes with helm upgrade", "Run make deploy; it wraps helm upgrade.")
    start = {"cwd": cwd, "session_id": "s-fast", "source": "startup"}

    # The note just written changed a directory: the first hook takes it in, the long way.
    first, loaded = probe("session-start", start)
    assert deploy in context_of(subprocess.CompletedProcess([], 0, first, ""), "SessionStart")
    assert "asyncio" in loaded

    # Now the index is in step: the same answer, with no event loop at all.
    again, loaded = probe("session-start", start)
    assert again == first
    assert loaded == []
    prompt = {"cwd": cwd, "session_id": "s-other", "prompt": "how do I deploy quotes with helm?"}
    answer, loaded = probe("user-prompt-submit", prompt)
    assert deploy in context_of(subprocess.CompletedProcess([], 0, answer, ""), "UserPromptSubmit")
    assert loaded == []

    # A note added by hand puts it out of step again: it is found at once, the long way.
    by_hand = memory.config.layout.memory_dir / "procedural" / "01JD3W6Q2M8Z4T9K7B5X0R1C2V.md"
    by_hand.write_text(
        "---\nid: 01JD3W6Q2M8Z4T9K7B5X0R1C2V\ntype: procedural\ntitle: Roll back quotes with helm rollback\n"
        f"project: {PROJECT}\n---\nhelm rollback quotes, then check the dashboards.\n",
        encoding="utf-8",
    )
    answer, loaded = probe("user-prompt-submit", {**prompt, "prompt": "how do I roll back quotes with helm?"})
    assert "01JD3W6Q2M8Z4T9K7B5X0R1C2V" in answer
    assert "asyncio" in loaded


def _not_a_regular_file(kind: str, tmp_path: Path) -> str:
    if kind == "fifo":
        fifo = tmp_path / "transcript.fifo"
        os.mkfifo(fifo)  # no writer ever comes: opening it plainly blocks for good
        return str(fifo)
    return "/dev/zero"  # never ends: a plain read spins until memory or patience runs out


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
@pytest.mark.parametrize("event", ["session-end", "pre-compact", "post-compact"])
def test_capture_hooks_return_when_the_transcript_is_not_a_regular_file(
    anamnesis_home: Path, tmp_path: Path, event: str, kind: str
) -> None:
    subprocess.run([sys.executable, "-m", "anamnesis", "init"], check=True, capture_output=True)
    payload = {"session_id": "s1", "cwd": "/tmp", "transcript_path": _not_a_regular_file(kind, tmp_path)}

    result = hook(event, payload, timeout=60)  # TimeoutExpired (a failure) if it blocks

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_the_capture_the_stop_hook_detaches_returns_when_the_transcript_is_not_a_regular_file(
    anamnesis_home: Path, tmp_path: Path, kind: str
) -> None:
    subprocess.run([sys.executable, "-m", "anamnesis", "init"], check=True, capture_output=True)
    transcript = _not_a_regular_file(kind, tmp_path)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "anamnesis",
            "capture",
            "--session-id",
            "s1",
            "--transcript",
            transcript,
            "--project",
            PROJECT,
            "--source",
            "stop",
            "--no-sync",
            "--no-llm",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
