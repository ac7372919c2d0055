"""Settings are read once: every bad value stops `load_config` with the key and the file named,
and the environment wins over config.json by one rule, at load and at every reload."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from anamnesis.config import load_config, read_config_file, reload_config
from anamnesis.configedit import edit_config
from anamnesis.errors import ConfigError
from anamnesis.settings import DEFAULT_START_WAIT, MAX_START_WAIT, MIN_SYNC_INTERVAL
from anamnesis.sync import current_config
from anamnesis.sync.peers import Peer, configured_peers, save_peer


def write_config(home: Path, document: dict[str, Any]) -> Path:
    """config.json as a user's hand edit leaves it (straight to the file, no checks)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.json"
    path.write_text(json.dumps({"machine_id": "desktop", **document}), encoding="utf-8")
    return path


BAD_VALUES = [
    ({"machine_id": 42}, "machine_id"),
    ({"machine_id": "!!!"}, "machine_id"),
    ({"remote": ["ssh://h/m.git"]}, "remote"),
    ({"sync": ["interval", 60]}, "sync"),
    ({"sync": {"interval": "soon"}}, "sync.interval"),
    ({"sync": {"interval": 0}}, "sync.interval"),
    ({"sync": {"start_wait": -1}}, "sync.start_wait"),
    ({"sync": {"connect_timeout": float("inf")}}, "sync.connect_timeout"),
    ({"sync": {"keepalive_count": 0}}, "sync.keepalive_count"),
    ({"sync": {"push_attempts": 2.5}}, "sync.push_attempts"),
    ({"sync": {"shared_connection": "yes"}}, "sync.shared_connection"),
    ({"sync": {"identity_file": 7}}, "sync.identity_file"),
    ({"dashboard": {"port": 70000}}, "dashboard.port"),
    ({"dashboard": {"port": "http"}}, "dashboard.port"),
    ({"dashboard": {"host": 127}}, "dashboard.host"),
    ({"hooks": {"context_budget": "lots"}}, "hooks.context_budget"),
    ({"hooks": {"user_prompt_context": "no"}}, "hooks.user_prompt_context"),
    ({"search": {"semantic": "false"}}, "search.semantic"),
    ({"reflection": {"base_url": "ftp://models.example"}}, "reflection.base_url"),
    ({"reflection": {"timeout": "slow"}}, "reflection.timeout"),
    ({"reflection": {"max_tokens": -5}}, "reflection.max_tokens"),
    ({"peers": "ssh://h/m.git"}, "peers"),
    ({"peers": {"home": {"host_key": "SHA256:x"}}}, "peers.home.url"),
    ({"peers": {"home": "ssh://h/m.git"}}, "peers.home"),
    ({"peers": {"my hub": {"url": "ssh://h/m.git"}}}, "peers.my hub"),
]


@pytest.mark.parametrize(("document", "key"), BAD_VALUES, ids=[key for _, key in BAD_VALUES])
def test_a_bad_value_stops_loading_and_names_the_key_and_the_file(
    tmp_path: Path, document: dict[str, Any], key: str
) -> None:
    path = write_config(tmp_path / "home", document)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "home", {})
    assert f"{path}: {key} must be" in str(caught.value)


def test_a_bad_api_key_is_named_but_never_shown(tmp_path: Path) -> None:
    write_config(tmp_path / "home", {"reflection": {"api_key": ["sk-live-0123456789abcdef"]}})
    with pytest.raises(ConfigError, match=r"reflection\.api_key must be a string") as caught:
        load_config(tmp_path / "home", {})
    assert "sk-live" not in str(caught.value)


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    write_config(tmp_path / "home", {"reflection": {"timeout": 20}})
    with pytest.raises(ConfigError, match="ANAMNESIS_REFLECTION_TIMEOUT must be a number") as caught:
        load_config(tmp_path / "home", {"ANAMNESIS_REFLECTION_TIMEOUT": "soon"})
    assert "config.json" not in str(caught.value)


def test_hand_edited_numbers_in_quotes_are_read_and_limits_applied(tmp_path: Path) -> None:
    write_config(
        tmp_path / "home",
        {"sync": {"interval": 1, "start_wait": "99", "git_timeout": "120"}, "dashboard": {"port": "9999"}},
    )
    config = load_config(tmp_path / "home", {})
    assert (config.sync_interval, config.start_wait) == (MIN_SYNC_INTERVAL, MAX_START_WAIT)
    assert (config.sync.git_timeout, config.dashboard.port) == (120.0, 9999)
    empty = load_config(tmp_path / "empty", {"ANAMNESIS_MACHINE_ID": "laptop"})
    assert (empty.start_wait, empty.hooks.context_budget, empty.search.semantic) == (DEFAULT_START_WAIT, None, True)
    assert not empty.has_hub


def test_the_environment_wins_over_the_file_and_still_wins_after_a_reload(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(
        home,
        {
            "remote": "ssh://file-hub/srv/memory.git",
            "reflection": {"provider": "openai", "model": "file-model", "base_url": "https://file.example/v1"},
        },
    )
    environ = {
        "ANAMNESIS_MACHINE_ID": "laptop",
        "ANAMNESIS_GIT_REMOTE": "ssh://env-hub/srv/memory.git",
        "ANAMNESIS_REFLECTION_MODEL": "env-model",
        "OPENAI_API_KEY": "sk-from-env",
        "UNRELATED": "not kept",
    }
    config = load_config(home, environ)
    assert (config.machine_id, config.remote) == ("laptop", "ssh://env-hub/srv/memory.git")
    assert (config.reflection.model, config.reflection.base_url) == ("env-model", "https://file.example/v1")
    assert config.reflection.api_key == "sk-from-env"  # the provider's variable fills a gap in the file
    assert "UNRELATED" not in config.environ

    save_peer(home / "config.json", Peer(name="nas", url="ssh://nas/srv/memory.git"))
    edit_config(home, lambda document: document["reflection"].update(api_key="sk-from-file", timeout=9))
    for again in (reload_config(config), current_config(config)):
        assert again.machine_id == "laptop"
        assert again.remote == "ssh://env-hub/srv/memory.git"
        assert again.reflection.model == "env-model"
        assert (again.reflection.api_key, again.reflection.timeout) == ("sk-from-file", 9.0)
        assert [p.name for p in configured_peers(again)] == ["hub", "nas"]


def test_edit_config_refuses_a_bad_value_and_keeps_what_it_does_not_know(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write_config(home, {"future": {"kept": [1, 2]}})
    edit_config(home, lambda document: document.update(dashboard={"port": 8800}))
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"dashboard\.port must be"):
        edit_config(home, lambda document: document.update(dashboard={"port": "eighty"}))
    assert path.read_bytes() == before
    save_peer(path, Peer(name="nas", url="ssh://nas/srv/memory.git"))
    assert read_config_file(path)["future"] == {"kept": [1, 2]}
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".config.json")) == []


def test_a_bad_setting_stops_a_command_with_the_key_and_a_hook_stays_silent(anamnesis_home: Path) -> None:
    def anamnesis(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "anamnesis", *args]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, check=False)

    assert anamnesis("init", "--machine-id", "desktop").returncode == 0
    path = anamnesis_home / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "hooks": {"context_budget": "lots"}}))

    status = anamnesis("status")
    assert status.returncode == 1
    assert f"{path}: hooks.context_budget must be a whole number" in status.stderr
    hook = anamnesis("hook", "session-start", stdin=json.dumps({"cwd": "/tmp", "session_id": "s"}))
    assert (hook.returncode, hook.stdout, hook.stderr) == (0, "", "")
    assert "hooks.context_budget" in (anamnesis_home / "state" / "hooks.log").read_text()
