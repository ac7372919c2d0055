"""The typed sections of config.json, each key checked once, each error naming the key and its source.

Pure: a JSON document in, frozen values out. `anamnesis.config.load_config` lays the
environment over the document before parsing it (so a bad value from a variable names the
variable), and `anamnesis.configedit.edit_config` parses a changed document before writing it,
so a bad value is refused at load or at write, never found in the middle of a sync or a hook.
Keys this release does not know are left alone: a hand edit or a newer release may have put
them there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from anamnesis.errors import ConfigError

DEFAULT_SYNC_INTERVAL = 60.0  # seconds: a note reaches the other machines within about a minute
MIN_SYNC_INTERVAL = 10.0
DEFAULT_START_WAIT = 1.5  # seconds a session start may wait for another machine's news
MAX_START_WAIT = 10.0  # well inside SessionStart's hook timeout (hooks/hooks.json: 15 s)
STALE_GIT_LOCK_AGE = 60.0  # seconds: a git *.lock this old, with our own lock held, was left by a killed git
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
_PEER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """How often and how patiently this machine syncs, and how it reaches the hub (`sync`)."""

    interval: float = DEFAULT_SYNC_INTERVAL  # between automatic syncs; at least MIN_SYNC_INTERVAL
    start_wait: float = DEFAULT_START_WAIT  # a session start's wait for news; 0 turns it off
    connect_timeout: float = 15.0  # TCP connect + key exchange + authentication
    keepalive_interval: float = 15.0  # a hub silent for interval x count is declared gone
    keepalive_count: int = 3
    git_timeout: float = 300.0  # backstop for any one git network command
    lock_wait: float = 10.0  # how long a second sync waits for the running one
    fleet_heartbeat: float = 3600.0  # an idle machine republishes its fleet file this often
    check_interval: float = 5.0  # the service asks the hub where its main is this often (one exec, no fetch)
    push_delay: float = 1.0  # a change under memory/ is pushed once memory/ has been quiet this long
    push_attempts: int = 5
    stale_lock_age: float = STALE_GIT_LOCK_AGE  # a git *.lock older than this, with our locks held, is stale
    shared_connection: bool = True  # one SSH connection per cycle, shared by every git command
    identity_file: str | None = None  # a dedicated key; default <home>/ssh/id_ed25519 when present
    ssh_config: str | None = None  # an ssh_config file, "none", or None for ~/.ssh/config


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    """Where `anamnesis serve` listens and the token it asks for beyond loopback (`dashboard`)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class HookSettings:
    """What the Claude Code hooks hand a session (`hooks`)."""

    context_budget: int | None = None  # tokens at session start; None: the context module's default
    user_prompt_context: bool = True  # notes matching each prompt, added as the user submits it


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """How search ranks (`search`): `semantic` false keeps it lexical and loads no model."""

    semantic: bool = True


@dataclass(frozen=True, slots=True)
class ReflectionSettings:
    """An optional OpenAI-compatible model for summaries and reflection (0.1.3 keys, `reflection`)."""

    provider: str = "heuristic"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    max_tokens: int = 120_000

    @property
    def configured(self) -> bool:
        return bool(self.provider != "heuristic" and self.model and self.base_url)


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A hub as config.json records it under `peers` (`anamnesis.sync.peers.Peer` adds its URL parsed)."""

    name: str
    url: str
    host_key: str | None = None
    added_at: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Every section of one config.json document, checked."""

    machine_id: str | None = None
    remote: str | None = None
    peers: tuple[PeerRecord, ...] = ()
    sync: SyncSettings = field(default_factory=SyncSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    hooks: HookSettings = field(default_factory=HookSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    reflection: ReflectionSettings = field(default_factory=ReflectionSettings)


def check_peer_name(name: str) -> str:
    """The name if it can name a git remote and a config key; `ConfigError` otherwise."""
    if not _PEER_NAME_RE.fullmatch(name) or name.endswith(".lock") or ".." in name:
        raise ConfigError(f"{name!r} is not a usable peer name; use letters, digits, '-', '_' or '.' (e.g. homeserver)")
    return name


def parse_settings(document: Mapping[str, Any], source: str, origins: Mapping[str, str] | None = None) -> Settings:
    """Check every key this release reads; `ConfigError` naming the first bad one.

    `source` names the file in messages; `origins` maps a dotted key to the environment
    variable its value came from, so that a bad variable is named instead of the file.
    """
    top = _Section(document, source, "", origins or {})
    remote = top.text("remote")
    return Settings(
        machine_id=top.text("machine_id"),
        remote=remote,
        peers=_peers(top.section("peers"), remote),
        sync=_sync(top.section("sync")),
        dashboard=_dashboard(top.section("dashboard")),
        hooks=HookSettings(
            # 0 stands for "not set": the context module's own default applies
            context_budget=top.section("hooks").integer("context_budget", 0, minimum=1) or None,
            user_prompt_context=top.section("hooks").flag("user_prompt_context", True),
        ),
        search=SearchSettings(semantic=top.section("search").flag("semantic", True)),
        reflection=_reflection(top.section("reflection")),
    )


def _sync(section: _Section) -> SyncSettings:
    if not section.names():
        return _SYNC_DEFAULTS
    values: dict[str, Any] = {}
    for name, default in _SYNC_FIELDS:
        if isinstance(default, bool):
            values[name] = section.flag(name, default)
        elif isinstance(default, int):
            values[name] = section.integer(name, default, minimum=1)
        elif isinstance(default, float):
            least = 0.0 if name == "start_wait" else None  # 0 s: do not wait at all
            values[name] = section.number(name, default, minimum=least)
        else:
            values[name] = section.text(name)
    values["interval"] = max(MIN_SYNC_INTERVAL, values["interval"])
    values["start_wait"] = min(MAX_START_WAIT, values["start_wait"])
    return SyncSettings(**values)


_SYNC_DEFAULTS = SyncSettings()
_SYNC_FIELDS = tuple((spec.name, getattr(_SYNC_DEFAULTS, spec.name)) for spec in fields(SyncSettings))


def _dashboard(section: _Section) -> DashboardSettings:
    port = section.integer("port", DEFAULT_PORT, minimum=0)
    if port > 65535:
        raise section.error("port", "a TCP port (0-65535)", port)
    return DashboardSettings(
        host=section.text("host") or DEFAULT_HOST, port=port, token=section.text("token", secret=True)
    )


def _reflection(section: _Section) -> ReflectionSettings:
    base_url = section.text("base_url")
    if base_url and not base_url.startswith(("http://", "https://")):
        raise section.error("base_url", "a URL starting with http:// or https://", base_url)
    return ReflectionSettings(
        provider=section.text("provider") or "heuristic",
        model=section.text("model"),
        base_url=base_url,
        api_key=section.text("api_key", secret=True),
        timeout=section.number("timeout", 30.0),
        max_tokens=section.integer("max_tokens", 120_000, minimum=1),
    )


def _peers(section: _Section, remote: str | None) -> tuple[PeerRecord, ...]:
    peers = []
    for name in section.names():
        record = section.section(name)
        try:
            check_peer_name(name)
        except ConfigError as exc:
            raise section.error(name, "a peer name of letters, digits, '-', '_' or '.'", name) from exc
        url = record.text("url")
        if not url:
            raise record.error("url", "the hub's URL (ssh://user@host/path)", record.get("url"))
        peers.append(PeerRecord(name, url, record.text("host_key"), record.text("added_at")))
    # config.json is written with sorted keys, so order comes from the records: the hub in
    # `remote` (the first added) first, then by when each was added.
    peers.sort(key=lambda p: (p.url != remote, p.added_at or "", p.name))
    return tuple(peers)


class _Section:
    """One JSON object of the document, read key by key with errors that say where."""

    def __init__(self, data: Mapping[str, Any], source: str, prefix: str, origins: Mapping[str, str]) -> None:
        self._data = data
        self._source = source
        self._prefix = prefix
        self._origins = origins

    def names(self) -> list[str]:
        return [str(key) for key in self._data]

    def get(self, key: str) -> Any:
        return self._data.get(key)

    def error(self, key: str, expected: str, value: Any, *, secret: bool = False) -> ConfigError:
        dotted = self._prefix + key
        where = self._origins.get(dotted)
        said = "" if secret else f", not {value!r}"
        if where is not None:
            return ConfigError(f"the environment variable {where} must be {expected}{said}")
        return ConfigError(f"{self._source}: {dotted} must be {expected}{said}")

    def section(self, key: str) -> _Section:
        value = self._data.get(key)
        if value is None:
            value = {}
        elif not isinstance(value, Mapping):
            raise self.error(key, "an object ({...})", value)
        return _Section(value, self._source, f"{self._prefix}{key}.", self._origins)

    def text(self, key: str, *, secret: bool = False) -> str | None:
        value = self._data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.error(key, "a string", value, secret=secret)
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def number(self, key: str, default: float, *, minimum: float | None = None) -> float:
        """A finite number above 0 (or at least `minimum`); numeric strings from hand edits pass."""
        value = self._data.get(key)
        if value is None or value == "":
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        fine = math.isfinite(number) and (number > 0 if minimum is None else number >= minimum)
        if not fine:
            least = "above 0" if minimum is None else f"at least {minimum:g}"
            raise self.error(key, f"a number {least} (seconds)", value)
        return number

    def integer(self, key: str, default: int, *, minimum: int) -> int:
        value = self._data.get(key)
        if value is None or value == "":
            return default
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif (isinstance(value, float) and value.is_integer()) or (isinstance(value, str) and value.strip().isdigit()):
            number = int(value)
        if number is None or number < minimum:
            raise self.error(key, f"a whole number of at least {minimum}", value)
        return number
