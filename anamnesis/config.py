"""Where a home keeps its files (`Layout`) and the machine's settings (`Config`).

Settings come from, in order of precedence: the environment, `config.json`, defaults. Only the
roots (CLI, service, hook entry) call `load_config`; everything below receives a `Config`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anamnesis.atomic import atomic_write
from anamnesis.errors import ConfigError

CONFIG_FILE = "config.json"
DEFAULT_HOME = "~/.anamnesis"
DEFAULT_SYNC_INTERVAL = 60.0  # seconds: a note reaches the other machines within about a minute
MIN_SYNC_INTERVAL = 10.0
DEFAULT_START_WAIT = 1.5  # seconds a session start may wait for another machine's news
MAX_START_WAIT = 10.0  # well inside SessionStart's hook timeout (hooks/hooks.json: 15 s)


@dataclass(frozen=True, slots=True)
class Layout:
    """The files of one Anamnesis home (see DESIGN section 3)."""

    home: Path

    @property
    def memory_dir(self) -> Path:
        """Portable notes: a git repo, synced."""
        return self.home / "memory"

    @property
    def local_dir(self) -> Path:
        """Machine-local notes: never synced."""
        return self.home / "local"

    @property
    def index_path(self) -> Path:
        return self.home / "index.db"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    def scope_dir(self, scope: str) -> Path:
        return self.memory_dir if scope == "portable" else self.local_dir

    def scope_roots(self) -> dict[str, Path]:
        return {"portable": self.memory_dir, "machine-local": self.local_dir}


@dataclass(frozen=True, slots=True)
class ReflectionSettings:
    """An optional OpenAI-compatible model for summaries and reflection (0.1.3 keys)."""

    provider: str = "heuristic"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    timeout: float = 30.0
    max_tokens: int = 120_000

    @property
    def configured(self) -> bool:
        return bool(self.provider != "heuristic" and self.model and self.base_url)


@dataclass(frozen=True, slots=True)
class Config:
    """Machine-local settings, frozen. `raw` is config.json as read, for round-tripping."""

    layout: Layout
    machine_id: str
    remote: str | None = None
    reflection: ReflectionSettings = field(default_factory=ReflectionSettings)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.layout.home

    @property
    def has_hub(self) -> bool:
        """Whether any hub is configured (a `remote` or `peer add`'s peers): sync has work to do."""
        return bool(self.remote or self.raw.get("peers"))

    @property
    def sync_interval(self) -> float:
        """Seconds between automatic syncs (config `sync.interval`; at least MIN_SYNC_INTERVAL).

        Raises ConfigError when the value is not a number.
        """
        block = self.raw.get("sync")
        value = block.get("interval") if isinstance(block, Mapping) else None
        if value is None:
            return DEFAULT_SYNC_INTERVAL
        try:
            return max(MIN_SYNC_INTERVAL, float(value))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config.json: sync.interval must be a number of seconds, not {value!r}") from exc

    @property
    def start_wait(self) -> float:
        """Seconds SessionStart may wait for news from the hub (config `sync.start_wait`; 0 turns it off).

        Bounded by the hook's own deadline; a bad value falls back to the default (hooks never fail).
        """
        block = self.raw.get("sync")
        value = block.get("start_wait") if isinstance(block, Mapping) else None
        try:
            return min(MAX_START_WAIT, max(0.0, float(value))) if value is not None else DEFAULT_START_WAIT
        except (TypeError, ValueError):
            return DEFAULT_START_WAIT


def home_from_env(environ: Mapping[str, str]) -> Path:
    """The home directory: `ANAMNESIS_HOME`, or `~/.anamnesis`."""
    value = environ.get("ANAMNESIS_HOME") or DEFAULT_HOME
    home = environ.get("HOME")
    if value.startswith("~") and home:
        value = home + value[1:]
    return Path(os.path.expanduser(value)).absolute()


def default_machine_id() -> str:
    """The machine's short host name, which is what a user recognises in the fleet view."""
    name = socket.gethostname().split(".")[0].strip()
    return clean_machine_id(name) or "machine"


def clean_machine_id(name: str) -> str:
    """A machine name as history, the fleet and file names can hold it: letters, digits, - and _."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name.strip()).strip("-")


def read_config_file(path: Path) -> dict[str, Any]:
    """config.json as a dict; `{}` when missing; `ConfigError` when it is not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def write_config_file(path: Path, data: Mapping[str, Any]) -> None:
    """Write config.json atomically with mode 0600 (it may hold an API key)."""
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)


def load_config(home: Path, environ: Mapping[str, str]) -> Config:
    """Settings for `home`: environment over config.json over defaults."""
    layout = Layout(home)
    raw = read_config_file(layout.config_path)
    machine_id = environ.get("ANAMNESIS_MACHINE_ID") or raw.get("machine_id") or default_machine_id()
    machine_id = clean_machine_id(str(machine_id))
    if not machine_id:
        raise ConfigError("machine_id must contain letters or digits")
    remote = environ.get("ANAMNESIS_GIT_REMOTE") or raw.get("remote") or None
    return Config(
        layout=layout,
        machine_id=machine_id,
        remote=str(remote) if remote else None,
        reflection=_reflection_settings(raw.get("reflection") or {}, environ),
        raw=raw,
    )


def _reflection_settings(block: Mapping[str, Any], environ: Mapping[str, str]) -> ReflectionSettings:
    def pick(key: str) -> Any:
        return environ.get(f"ANAMNESIS_REFLECTION_{key.upper()}") or block.get(key)

    api_key = pick("api_key") or environ.get("DEEPSEEK_API_KEY") or environ.get("OPENAI_API_KEY") or None
    base_url = pick("base_url")
    if base_url and not str(base_url).startswith(("http://", "https://")):
        raise ConfigError(f"reflection base_url must start with http:// or https://: {base_url}")
    try:
        timeout = float(pick("timeout") or 30.0)
        max_tokens = int(pick("max_tokens") or 120_000)
    except ValueError as exc:
        raise ConfigError(f"reflection timeout/max_tokens must be numbers: {exc}") from exc
    return ReflectionSettings(
        provider=str(pick("provider") or "heuristic"),
        model=pick("model") or None,
        base_url=str(base_url) if base_url else None,
        api_key=api_key,
        timeout=timeout,
        max_tokens=max_tokens,
    )
