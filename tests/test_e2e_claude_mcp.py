"""End to end: the real Claude Code CLI, in `-p` mode, uses the memory tools of our MCP server.

Claude Code talks to a scripted Messages API on 127.0.0.1 (`tests/fake_anthropic.py`): the
"model" calls `memory_write`, then `memory_search`, then answers. Claude Code spawns our server
over stdio as it would for a user who registered it, with the permissions a user would grant.

The CLI comes from npm (`npm install -g @anthropic-ai/claude-code`). Without it the test fails
in CI (CI=true), where it must run, and is skipped on a developer's machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import anyio
import pytest

from anamnesis.config import Config
from tests.fake_anthropic import FakeAnthropic, result_text, text, tool_names, tool_results, tool_use

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# Read at import: the isolated_env fixture clears ANAMNESIS_* variables before each test.
CLAUDE = os.environ.get("ANAMNESIS_CLAUDE_BIN") or shutil.which("claude")
INSTALL_HINT = (
    "the Claude Code CLI (`claude`) is not installed: run `npm install -g @anthropic-ai/claude-code` "
    "(or point ANAMNESIS_CLAUDE_BIN at the binary)"
)
REPO = Path(__file__).resolve().parent.parent
PROJECT_KEY = "github.com/acme/quotes-api"
SERVER = "anamnesis"
TITLE = "Deploys use a blue green switch"
BODY = "We deploy quotes-api with a blue green switch behind the load balancer; never in place."


def claude_binary() -> str:
    if CLAUDE:
        return CLAUDE
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(INSTALL_HINT)
    pytest.skip(INSTALL_HINT)


def register_server(claude_dir: Path, config: Config) -> None:
    """What a user's setup holds: our server at user scope, and its two tools allowed."""
    claude_dir.mkdir(parents=True, exist_ok=True)
    server = {
        "type": "stdio",
        "command": sys.executable,
        "args": ["-m", "anamnesis", "mcp"],  # `anamnesis mcp`, as `anamnesis init` registers it
        "env": {
            "ANAMNESIS_HOME": str(config.home),
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        },
    }
    (claude_dir / ".claude.json").write_text(json.dumps({"mcpServers": {SERVER: server}}), encoding="utf-8")
    allow = [f"mcp__{SERVER}__memory_write", f"mcp__{SERVER}__memory_search"]
    (claude_dir / "settings.json").write_text(json.dumps({"permissions": {"allow": allow}}), encoding="utf-8")


def claude_env(fake: FakeAnthropic) -> dict[str, str]:
    # Nothing from a developer's own Claude Code session may leak in (keys, a parent session).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDECODE", "CLAUDE_CODE_"))}
    env.update(
        ANTHROPIC_BASE_URL=fake.url,
        ANTHROPIC_API_KEY="sk-ant-test-not-a-key",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        MCP_CONNECTION_NONBLOCKING="0",  # tools connected before the first request
        MCP_CONNECT_TIMEOUT_MS="60000",  # the SDK import alone can take seconds on a slow machine
        MCP_TIMEOUT="60000",
        ENABLE_TOOL_SEARCH="false",  # tools listed up front, not deferred
    )
    return env


async def test_claude_code_writes_a_note_through_mcp_and_finds_it_again(
    config: Config, tmp_path: Path, isolated_env: Path
) -> None:
    claude = claude_binary()
    register_server(Path(os.environ["CLAUDE_CONFIG_DIR"]), config)
    project = tmp_path / "quotes-api"
    (project / ".anamnesis").mkdir(parents=True)
    (project / ".anamnesis" / "project").write_text(PROJECT_KEY + "\n", encoding="utf-8")

    script = [
        tool_use(f"mcp__{SERVER}__memory_write", {"type": "procedural", "title": TITLE, "body": BODY}),
        tool_use(f"mcp__{SERVER}__memory_search", {"query": "how do we deploy blue green"}),
        text("Stored, and found again."),
    ]
    with FakeAnthropic(script) as fake:
        with anyio.fail_after(240):
            run = await anyio.run_process(
                [claude, "-p", "Remember how we deploy, then check it is stored.", "--output-format", "json"],
                cwd=project,
                env=claude_env(fake),
                check=False,
            )
        stderr = run.stderr.decode(errors="replace")[-3000:]
        assert run.returncode == 0, stderr
        assert fake.finished.is_set(), f"the scripted model got {len(fake.turns)} of 3 turns; {stderr}"

    assert f"mcp__{SERVER}__memory_write" in tool_names(fake.turns[0])
    outcome = json.loads(run.stdout)
    assert outcome["is_error"] is False
    assert outcome["result"] == "Stored, and found again."

    notes = list((config.layout.memory_dir / "procedural").glob("*.md"))
    assert len(notes) == 1
    on_disk = notes[0].read_text(encoding="utf-8")
    assert f"project: {PROJECT_KEY}" in on_disk
    assert BODY in on_disk
    note_id = notes[0].stem

    [written] = tool_results(fake.turns[1])
    assert not written.get("is_error")
    assert note_id in result_text(written)
    [searched] = tool_results(fake.turns[2])
    assert not searched.get("is_error")
    assert note_id in result_text(searched)
    assert TITLE in result_text(searched)
