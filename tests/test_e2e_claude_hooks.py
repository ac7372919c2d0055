"""End to end: after `anamnesis init`, real Claude Code sessions are captured and remembered.

A first `claude -p` session teaches something, with secrets in the prompt, and ends: its
episodic note is on disk without the secrets. The first model request of a second session in
the same project carries that note, put there by the SessionStart hook `init` wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.fake_anthropic import FakeAnthropic, text
from tests.test_e2e_claude_mcp import claude_binary, claude_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROJECT_KEY = "github.com/acme/quotes-api"
PASSWORD = "hunter2-Staging-Xy9q"
API_KEY = "sk-ant-api03-Zx8Qw7Er6Ty5Ui4Op3As2Df1Gh0JkLzXcVbNm1234567890abcdEFGH"
LESSON = "the quotes cache must be warmed with make warm-cache before every load test"


def _committed(home: Path, note: Path) -> bool:
    status = subprocess.run(
        ["git", "-C", str(home / "memory"), "status", "--porcelain", "--", f"episodic/{note.name}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return status.returncode == 0 and status.stdout.strip() == ""


async def run_session(claude: str, prompt: str, reply: str, project: Path) -> FakeAnthropic:
    with FakeAnthropic([text(reply)]) as fake:
        with anyio.fail_after(240):
            run = await anyio.run_process(
                [claude, "-p", prompt, "--output-format", "json"], cwd=project, env=claude_env(fake), check=False
            )
        assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
        assert fake.finished.is_set(), run.stderr.decode(errors="replace")[-3000:]
    return fake


async def test_a_session_is_captured_without_secrets_and_handed_to_the_next_one(
    anamnesis_home: Path, tmp_path: Path
) -> None:
    claude = claude_binary()
    init = subprocess.run([sys.executable, "-m", "anamnesis", "init"], capture_output=True, text=True, check=False)
    assert init.returncode == 0, init.stderr
    settings = json.loads((Path(os.environ["CLAUDE_CONFIG_DIR"]) / "settings.json").read_text())
    assert "SessionEnd" in settings["hooks"]
    assert "SessionStart" in settings["hooks"]

    project = tmp_path / "quotes-api"
    (project / ".anamnesis").mkdir(parents=True)
    (project / ".anamnesis" / "project").write_text(PROJECT_KEY + "\n", encoding="utf-8")

    first_prompt = f"Remember for next time: {LESSON}. The staging password is {PASSWORD} and the API key is {API_KEY}."
    await run_session(claude, first_prompt, "Understood: I will warm the quotes cache before load tests.", project)

    # The capture runs detached (it must outlive Claude Code): wait for its note, with a bound.
    episodic = anamnesis_home / "memory" / "episodic"
    with anyio.fail_after(60):
        while not (notes := list(episodic.glob("*.md"))) or not _committed(anamnesis_home, notes[0]):
            await anyio.sleep(0.05)
    assert len(notes) == 1, [p.name for p in notes]
    on_disk = notes[0].read_text(encoding="utf-8")
    assert "warm-cache" in on_disk
    assert f"project: {PROJECT_KEY}" in on_disk
    assert PASSWORD not in on_disk
    assert API_KEY not in on_disk
    assert API_KEY[:20] not in on_disk
    note_id = notes[0].stem
    git_log = ["git", "-C", str(anamnesis_home / "memory"), "log", "--format=%s", "--", f"episodic/{note_id}.md"]
    log = subprocess.run(git_log, capture_output=True, text=True, check=True).stdout
    assert log.strip(), "the captured note is committed"

    second = await run_session(claude, "What should I do before a load test?", "Warm the cache first.", project)
    first_request = json.dumps(second.turns[0])
    assert note_id in first_request
    assert "warm-cache" in first_request
    assert PASSWORD not in first_request
    assert API_KEY not in first_request
