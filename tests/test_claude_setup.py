"""`anamnesis init` wires Claude Code; `anamnesis uninstall` takes exactly that back out."""

from __future__ import annotations

import getpass
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from anamnesis.claude_setup import ClaudePaths, claude_config_dir

REPO = Path(__file__).resolve().parent.parent
USER_SETTINGS = {
    "model": "opus",
    "env": {"FOO": "1"},
    "hooks": {
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
        "SessionEnd": [{"hooks": [{"type": "command", "command": "ANAMNESIS_MACHINE_ID=x anamnesis capture"}]}],
    },
    "permissions": {"allow": ["Bash(ls)", "mcp__anamnesis__memory_search"]},
}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anamnesis", *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def claude_dir() -> Path:
    return Path(os.environ["CLAUDE_CONFIG_DIR"])


def seed_settings() -> Path:
    settings = claude_dir() / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(USER_SETTINGS))
    user_state = {"numStartups": 3, "mcpServers": {"other": {"command": "x"}}}
    (claude_dir() / ".claude.json").write_text(json.dumps(user_state))
    return settings


def our_commands(settings: dict[str, object]) -> dict[str, str]:
    found = {}
    for event, groups in settings["hooks"].items():  # type: ignore[attr-defined]
        for group in groups:
            for handler in group["hooks"]:
                if " hook " in handler["command"]:
                    found[event] = handler["command"]
    return found


def test_init_wires_hooks_mcp_and_permissions_keeping_everything_else(anamnesis_home: Path) -> None:
    settings_path = seed_settings()
    result = run("init")
    assert result.returncode == 0, result.stderr
    settings = json.loads(settings_path.read_text())
    assert settings["model"] == "opus"
    assert settings["env"] == {"FOO": "1"}
    assert settings["hooks"]["Stop"][0]["hooks"][0]["command"] == "notify-send done"
    commands = our_commands(settings)
    assert set(commands) == {"SessionStart", "UserPromptSubmit", "PreCompact", "PostCompact", "SessionEnd", "Stop"}
    for command in commands.values():
        executable = command.split(" hook ")[0].split()[-1]
        assert Path(executable).is_absolute(), command  # works from a GUI with a bare PATH
    assert not any("anamnesis capture" in c for c in json.dumps(settings["hooks"]).split('"'))  # 0.1.3's replaced
    session_end = settings["hooks"]["SessionEnd"][-1]["hooks"][0]
    assert session_end["timeout"] >= 5  # lifts the 1.5 s SessionEnd budget
    allow = settings["permissions"]["allow"]
    assert "Bash(ls)" in allow
    read_only = ("memory_search", "memory_get", "memory_list", "memory_status")
    assert {f"mcp__anamnesis__{t}" for t in read_only} <= set(allow)
    assert "mcp__anamnesis__memory_write" not in allow
    state = json.loads((claude_dir() / ".claude.json").read_text())
    assert state["numStartups"] == 3
    assert "other" in state["mcpServers"]
    server = state["mcpServers"]["anamnesis"]
    assert Path(server["command"]).is_absolute()
    assert server["args"][-1] == "mcp"
    assert list(claude_dir().glob("settings.json.anamnesis-*.bak"))  # backed up before changing


def test_init_twice_changes_nothing_the_second_time(anamnesis_home: Path) -> None:
    settings_path = seed_settings()
    assert run("init").returncode == 0
    first = settings_path.read_text(), (claude_dir() / ".claude.json").read_text()
    second = run("init")
    assert "nothing changed" in second.stdout
    assert (settings_path.read_text(), (claude_dir() / ".claude.json").read_text()) == first


def test_dry_run_shows_the_change_and_writes_nothing(anamnesis_home: Path) -> None:
    settings_path = seed_settings()
    before = settings_path.read_text()
    result = run("init", "--dry-run")
    assert result.returncode == 0
    assert "+" in result.stdout
    assert "hook session-start" in result.stdout
    assert settings_path.read_text() == before
    assert not anamnesis_home.exists()


def test_uninstall_removes_exactly_what_init_added(anamnesis_home: Path) -> None:
    settings_path = seed_settings()
    assert run("init").returncode == 0
    result = run("uninstall")
    assert result.returncode == 0, result.stderr
    settings = json.loads(settings_path.read_text())
    assert our_commands(settings) == {}
    assert settings["hooks"]["Stop"] == USER_SETTINGS["hooks"]["Stop"]  # type: ignore[index]
    # The allow rule the user had before init stays; the ones init added are gone.
    assert settings["permissions"]["allow"] == ["Bash(ls)", "mcp__anamnesis__memory_search"]
    state = json.loads((claude_dir() / ".claude.json").read_text())
    assert "anamnesis" not in state["mcpServers"]
    assert "other" in state["mcpServers"]
    assert (anamnesis_home / "memory").is_dir()  # notes untouched


def test_init_honours_claude_config_dir(anamnesis_home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "custom-claude"
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(elsewhere)}
    assert run("init", env=env).returncode == 0
    assert our_commands(json.loads((elsewhere / "settings.json").read_text()))
    assert "anamnesis" in json.loads((elsewhere / ".claude.json").read_text())["mcpServers"]


def test_init_keeps_claude_codes_private_files_private(anamnesis_home: Path) -> None:
    settings_path = seed_settings()
    state_path = claude_dir() / ".claude.json"
    for path in (settings_path, state_path):
        path.chmod(0o600)  # the user's choice: .claude.json may hold an account token
    assert run("init").returncode == 0
    assert stat.S_IMODE(settings_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
    backups = list(claude_dir().glob("*.anamnesis-*.bak"))
    assert len(backups) == 2
    assert {stat.S_IMODE(b.stat().st_mode) for b in backups} == {0o600}


@pytest.mark.parametrize("form", ["~/claude-here", "~{user}/claude-here"])
def test_claude_config_dir_expands_either_tilde_form_the_way_a_shell_would(tmp_path: Path, form: str) -> None:
    user = getpass.getuser()
    environ = {"HOME": str(tmp_path / "their-home"), "CLAUDE_CONFIG_DIR": form.format(user=user)}
    home = tmp_path / "their-home" if form.startswith("~/") else Path(pwd.getpwnam(user).pw_dir)

    assert claude_config_dir(environ) == home / "claude-here"
    paths = ClaudePaths.from_env(environ)  # init, uninstall and doctor read the same folder as import
    assert (paths.settings, paths.state_file) == (
        home / "claude-here" / "settings.json",
        home / "claude-here" / ".claude.json",
    )


def test_without_claude_config_dir_claude_code_lives_in_home(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path)}
    assert claude_config_dir(environ) == tmp_path / ".claude"
    paths = ClaudePaths.from_env(environ)
    assert (paths.settings, paths.state_file) == (tmp_path / ".claude" / "settings.json", tmp_path / ".claude.json")


def test_written_hook_commands_run_and_fail_open(anamnesis_home: Path, tmp_path: Path) -> None:
    assert run("init").returncode == 0
    settings = json.loads((claude_dir() / "settings.json").read_text())
    for event, command in our_commands(settings).items():
        result = subprocess.run(
            command,
            shell=True,
            input='{"cwd": "/", "session_id": "t"}',
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": os.environ["HOME"]},
            check=False,
        )
        assert result.returncode == 0, (event, result.stderr)


def _claude() -> str:
    found = shutil.which("claude")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("the Claude Code CLI is not installed; .ci/run installs it from npm")
        pytest.skip("the Claude Code CLI is not installed (npm install -g @anthropic-ai/claude-code)")
    return found


@pytest.mark.parametrize("target", [".", ".claude-plugin/plugin.json"])
def test_the_repository_is_a_valid_plugin_marketplace(tmp_path: Path, target: str) -> None:
    result = subprocess.run(
        [_claude(), "plugin", "validate", target],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation passed" in result.stdout
