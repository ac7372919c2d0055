"""The Claude Code plugin on its own: installed without the Python package, it stays quiet.

Most Claude Code users will meet Anamnesis as a plugin (`claude plugin marketplace add …`,
`claude plugin install anamnesis@anamnesis`). Its hooks and MCP server go through
`hooks/launch`, which runs an installed `anamnesis`, else this release through uv, else
nothing: never an error line in the user's session, at most one line of context saying how to
install. These tests install the plugin with the real CLI into a scratch config directory and
run real `claude -p` sessions against the scripted API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import anamnesis
from anamnesis.config import Config
from anamnesis.memory import Memory, NoteDraft
from anamnesis.notes import Note
from tests.fake_anthropic import FakeAnthropic, result_text, text, tool_results, tool_use
from tests.test_e2e_claude_mcp import claude_binary, claude_env

REPO = Path(__file__).resolve().parent.parent
LAUNCH = REPO / "hooks" / "launch"
SPEC = f"anamnesis-memory=={anamnesis.__version__}"
TOOL = "mcp__plugin_anamnesis_anamnesis__memory_search"
# Everything a session needs but our package: the system's own tools (claude, node, git, sh).
SYSTEM_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


def _plugin_tree(tmp_path: Path) -> Path:
    """The files the plugin is made of, as a marketplace in a directory of its own."""
    tree = tmp_path / "marketplace"
    for part in (".claude-plugin", "hooks"):
        shutil.copytree(REPO / part, tree / part)
    return tree


def _install_plugin(claude: str, tree: Path, env: dict[str, str]) -> None:
    for argv in (["plugin", "marketplace", "add", str(tree)], ["plugin", "install", "anamnesis@anamnesis"]):
        done = subprocess.run([claude, *argv], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def _without_our_package(path: str) -> str:
    """PATH with no directory that holds `anamnesis` or `uv`: a machine that never installed us."""
    keep = [d for d in path.split(os.pathsep) if d and not any((Path(d) / t).exists() for t in ("anamnesis", "uv"))]
    return os.pathsep.join(keep)


async def _session(claude: str, fake: FakeAnthropic, project: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """One `claude -p` session; its stream of events (hook runs included)."""
    with anyio.fail_after(240):
        run = await anyio.run_process(
            [claude, "-p", "What do we know about deploys?", "--output-format", "stream-json", "--verbose"],
            cwd=project,
            env={**claude_env(fake), **env},
            check=False,
        )
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
    return [json.loads(line) for line in run.stdout.decode().splitlines() if line.startswith("{")]


async def _deploy_note(memory: Memory, project: str) -> Note:
    draft = NoteDraft(
        type="procedural",
        title="Deploys use a blue green switch",
        project=project,
        body="We deploy with a blue green switch behind the load balancer.",
    )
    return await memory.write(draft)


def _hook_runs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == "system" and e.get("subtype") == "hook_response"]


def _transcript_hook_errors(config_dir: Path) -> list[str]:
    errors = []
    for transcript in (config_dir / "projects").rglob("*.jsonl"):
        for line in transcript.read_text(encoding="utf-8").splitlines():
            attachment = json.loads(line).get("attachment") or {}
            if "error" in str(attachment.get("type", "")):
                errors.append(json.dumps(attachment)[:300])
    return errors


@pytest.fixture
def plugin_env(tmp_path: Path, isolated_env: Path) -> dict[str, str]:
    claude = claude_binary()
    env = {**os.environ, "HOME": str(isolated_env), "CLAUDE_CONFIG_DIR": str(isolated_env / ".claude")}
    _install_plugin(claude, _plugin_tree(tmp_path), env)
    return env


@pytest.mark.anyio
@pytest.mark.slow
async def test_the_plugin_without_the_package_shows_no_hook_error_and_says_how_to_install(
    plugin_env: dict[str, str], tmp_path: Path
) -> None:
    claude = claude_binary()
    project = tmp_path / "project"
    project.mkdir()
    env = {**plugin_env, "PATH": _without_our_package(SYSTEM_PATH)}
    assert shutil.which("anamnesis", path=env["PATH"]) is None

    with FakeAnthropic([text("Nothing yet.")]) as fake:
        events = await _session(claude, fake, project, env)

    runs = _hook_runs(events)
    assert [r["hook_event"] for r in runs] == ["SessionStart"]
    assert all(r["exit_code"] == 0 and r["outcome"] == "success" and not r["stderr"] for r in runs), runs
    assert _transcript_hook_errors(Path(env["CLAUDE_CONFIG_DIR"])) == []
    first_request = json.dumps(fake.requests[0])
    assert f"pipx install {SPEC}" in first_request  # the one line, where the model can tell the user


@pytest.mark.anyio
@pytest.mark.slow
async def test_the_plugin_with_the_package_installed_hands_over_context_and_tools(
    plugin_env: dict[str, str], tmp_path: Path, memory: Memory, config: Config
) -> None:
    claude = claude_binary()
    project = tmp_path / "project"
    (project / ".anamnesis").mkdir(parents=True)
    (project / ".anamnesis" / "project").write_text("github.com/acme/quotes-api\n", encoding="utf-8")
    saved = await _deploy_note(memory, "github.com/acme/quotes-api")
    installed = shutil.which("anamnesis")
    assert installed, "the test suite runs with the package installed (pip install -e '.[test]')"
    settings = Path(plugin_env["CLAUDE_CONFIG_DIR"]) / "settings.json"
    user_settings = json.loads(settings.read_text(encoding="utf-8"))
    user_settings["permissions"] = {"allow": [TOOL]}
    settings.write_text(json.dumps(user_settings), encoding="utf-8")
    env = {
        **plugin_env,
        "PATH": str(Path(installed).parent) + os.pathsep + SYSTEM_PATH,
        "PYTHONPATH": str(REPO) + os.pathsep + plugin_env.get("PYTHONPATH", ""),
    }

    script = [tool_use(TOOL, {"query": "how do we deploy"}), text("Blue green.")]
    with FakeAnthropic(script) as fake:
        events = await _session(claude, fake, project, env)
        assert fake.finished.is_set(), f"the scripted model got {len(fake.turns)} of 2 turns"

    runs = _hook_runs(events)
    assert runs
    assert all(r["exit_code"] == 0 and not r["stderr"] for r in runs), runs
    assert _transcript_hook_errors(Path(env["CLAUDE_CONFIG_DIR"])) == []
    assert saved.id in json.dumps(fake.turns[0])  # session start handed the note over
    [searched] = tool_results(fake.turns[1])
    assert not searched.get("is_error")
    assert saved.id in result_text(searched)
    assert (config.layout.memory_dir / "procedural" / f"{saved.id}.md").is_file()  # the home the hooks read


def _launch(argv: list[str], env: dict[str, str], stdin: str = "{}") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(LAUNCH), *argv], input=stdin, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "event", ["session-start", "user-prompt-submit", "pre-compact", "post-compact", "stop", "session-end"]
)
def test_without_the_package_every_hook_exits_zero_and_only_session_start_speaks(
    event: str, isolated_env: Path
) -> None:
    env = {**os.environ, "PATH": _without_our_package(SYSTEM_PATH)}
    done = _launch(["hook", event], env, stdin='{"session_id": "s1", "transcript_path": "/nonexistent"}')
    assert done.returncode == 0
    assert done.stderr == ""
    if event == "session-start":
        context = json.loads(done.stdout)["hookSpecificOutput"]
        assert context["hookEventName"] == "SessionStart"
        assert f"uv tool install {SPEC}" in context["additionalContext"]
    else:
        assert done.stdout == ""


def test_an_anamnesis_in_the_users_local_bin_is_found_when_path_lacks_it(isolated_env: Path) -> None:
    """Claude Code started from a GUI often has no ~/.local/bin on PATH, where pipx puts us."""
    installed = shutil.which("anamnesis")
    assert installed
    local_bin = isolated_env / ".local" / "bin"
    local_bin.mkdir(parents=True)
    (local_bin / "anamnesis").symlink_to(installed)
    env = {**os.environ, "HOME": str(isolated_env), "PATH": _without_our_package(SYSTEM_PATH), "PYTHONPATH": str(REPO)}
    done = _launch(["--version"], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"anamnesis {anamnesis.__version__}"


def test_the_launcher_plugin_and_package_name_one_version() -> None:
    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text(encoding="utf-8"))
    assert manifest["version"] == anamnesis.__version__
    assert f"VERSION={anamnesis.__version__}\n" in LAUNCH.read_text(encoding="utf-8")


@pytest.mark.anyio
@pytest.mark.slow
async def test_with_only_uv_the_release_is_fetched_once_in_the_background_then_runs(
    tmp_path: Path, isolated_env: Path, memory: Memory
) -> None:
    """uv present, package absent: the first session start says memory begins next session while
    uv fills its cache in the background; from then on the hooks run this release through uvx."""
    uv = shutil.which("uv")
    assert uv, "uv comes with the test extras"
    saved = await _deploy_note(memory, "global")
    wheels = tmp_path / "wheels"
    await anyio.run_process([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)])
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "uv").symlink_to(uv)
    env = {
        **os.environ,
        "PATH": str(tools) + os.pathsep + _without_our_package(SYSTEM_PATH),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_FIND_LINKS": str(wheels),  # this release is not on the package index yet: our wheel stands in
        "UV_PYTHON": sys.executable,
    }
    for name in ("PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)

    first = _launch(["hook", "session-start"], env)
    assert first.returncode == 0
    assert first.stderr == ""
    assert "installing" in json.loads(first.stdout)["hookSpecificOutput"]["additionalContext"]

    # The fill is uv's own detached work: wait for the release to run from the cache, with a bound.
    with anyio.fail_after(280):
        while _launch(["--version"], {**env, "UV_OFFLINE": "1"}).returncode != 0:
            await anyio.sleep(0.2)

    later = _launch(["hook", "session-start"], env, stdin=json.dumps({"session_id": "s2", "cwd": str(tmp_path)}))
    assert later.returncode == 0
    assert later.stderr == ""
    assert saved.id in json.loads(later.stdout)["hookSpecificOutput"]["additionalContext"]
