"""Where a home keeps its files (`Layout`) and the machine's settings (`Config`).

Settings come from, in order of precedence: the environment, `config.json`, defaults; each key
is checked once, here, by `anamnesis.settings`. Only the roots (CLI, service, hook entry) call
`load_config`; everything below receives a `Config`. Writes go through
`anamnesis.configedit.edit_config`, never straight to the file.
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
from anamnesis.settings import DEFAULT_SYNC_INTERVAL as DEFAULT_SYNC_INTERVAL  # the service's default
from anamnesis.settings import (
    DashboardSettings,
    HookSettings,
    PeerRecord,
    SearchSettings,
    SyncSettings,
    parse_settings,
)
from anamnesis.settings import ReflectionSettings as ReflectionSettings  # capture and reflection take it

CONFIG_FILE = "config.json"
DEFAULT_HOME = "~/.anamnesis"

# The environment variables that win over config.json, and the key each one stands for.
ENV_OVERRIDES = {
    "ANAMNESIS_MACHINE_ID": "machine_id",
    "ANAMNESIS_GIT_REMOTE": "remote",
    "ANAMNESIS_REFLECTION_PROVIDER": "reflection.provider",
    "ANAMNESIS_REFLECTION_MODEL": "reflection.model",
    "ANAMNESIS_REFLECTION_BASE_URL": "reflection.base_url",
    "ANAMNESIS_REFLECTION_API_KEY": "reflection.api_key",
    "ANAMNESIS_REFLECTION_TIMEOUT": "reflection.timeout",
    "ANAMNESIS_REFLECTION_MAX_TOKENS": "reflection.max_tokens",
}
# Read only when config.json leaves the key unset, in this order (the providers' own names).
ENV_FALLBACKS = {"DEEPSEEK_API_KEY": "reflection.api_key", "OPENAI_API_KEY": "reflection.api_key"}


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
class Config:
    """Machine-local settings, typed and frozen: config.json checked at load, the environment over it.

    `environ` keeps the variables that were read, so `reload_config` applies the same rule to
    config.json as it is later (a long-lived process follows `anamnesis peer add`).
    """

    layout: Layout
    machine_id: str
    remote: str | None = None
    reflection: ReflectionSettings = field(default_factory=ReflectionSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    hooks: HookSettings = field(default_factory=HookSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    peers: tuple[PeerRecord, ...] = ()
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def home(self) -> Path:
        return self.layout.home

    @property
    def has_hub(self) -> bool:
        """Whether any hub is configured (a `remote` or `peer add`'s peers): sync has work to do."""
        return bool(self.remote or self.peers)

    @property
    def sync_interval(self) -> float:
        """Seconds between automatic syncs (config `sync.interval`; at least MIN_SYNC_INTERVAL)."""
        return self.sync.interval

    @property
    def start_wait(self) -> float:
        """Seconds SessionStart may wait for news from the hub (config `sync.start_wait`; 0 turns it off)."""
        return self.sync.start_wait


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
    """Settings for `home`: environment over config.json over defaults, every value checked.

    The one place the environment is laid over the file. `ConfigError` names the bad key and
    the file (or the variable it came from).
    """
    layout = Layout(home)
    source = str(layout.config_path)
    document, origins = _with_environment(read_config_file(layout.config_path), environ)
    settings = parse_settings(document, source, origins)
    machine_id = clean_machine_id(settings.machine_id or default_machine_id())
    if not machine_id:
        where = origins.get("machine_id")
        said = f"the environment variable {where}" if where else f"{source}: machine_id"
        raise ConfigError(f"{said} must be a name with letters or digits, not {settings.machine_id!r}")
    return Config(
        layout=layout,
        machine_id=machine_id,
        remote=settings.remote,
        reflection=settings.reflection,
        sync=settings.sync,
        dashboard=settings.dashboard,
        hooks=settings.hooks,
        search=settings.search,
        peers=settings.peers,
        environ={name: environ[name] for name in (*ENV_OVERRIDES, *ENV_FALLBACKS) if name in environ},
    )


def reload_config(config: Config) -> Config:
    """`config` as config.json says now, under the same environment (peers come and go)."""
    return load_config(config.home, config.environ)


def _with_environment(document: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The document with each set variable put at its key, and which key came from which variable."""
    merged: dict[str, Any] = dict(document)
    origins: dict[str, str] = {}

    def put(dotted: str, value: str, variable: str) -> None:
        section, _, key = dotted.rpartition(".")
        target = merged
        if section:
            block = merged.get(section)
            if block is not None and not isinstance(block, Mapping):
                return  # the file's own section is wrong: parsing says so, naming it
            target = merged[section] = dict(block or {})
        target[key] = value
        origins[dotted] = variable

    def unset(dotted: str) -> bool:
        section, _, key = dotted.rpartition(".")
        block = merged.get(section) if section else merged
        return not isinstance(block, Mapping) or not block.get(key)

    for variable, dotted in ENV_OVERRIDES.items():
        if environ.get(variable):
            put(dotted, environ[variable], variable)
    for variable, dotted in ENV_FALLBACKS.items():
        if environ.get(variable) and unset(dotted):
            put(dotted, environ[variable], variable)
    return merged, origins
