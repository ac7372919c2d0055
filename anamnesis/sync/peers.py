"""Peers (hubs) and sync settings as config.json records them; hub URLs parsed. Pure values.

A peer is a hub this machine syncs with: a bare git repository reached over SSH. config.json
keeps them under `peers` (`{"NAME": {"url": …, "host_key": "SHA256:…", "added_at": …}}`) and
mirrors the first one in `remote`, the key anamnesis-memory 0.1.3 read, so both releases agree
on where the hub is. A `remote` with no `peers` (a 0.1.3 home, or `ANAMNESIS_GIT_REMOTE`)
counts as one peer named `hub`.

Settings live under `sync` in config.json (`anamnesis.settings.SyncSettings`, checked at
load); every one has a default that suits a home server on a tailnet, and tests shorten the
timeouts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from anamnesis.config import Config
from anamnesis.configedit import edit_config
from anamnesis.errors import ConfigError
from anamnesis.notes import utc_now
from anamnesis.settings import PeerRecord
from anamnesis.settings import SyncSettings as SyncSettings  # checked with the rest of config.json
from anamnesis.settings import check_peer_name as check_peer_name

IMPLICIT_PEER = "hub"
_SCP_RE = re.compile(r"(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[^\]]+\]|[^@/:\s]+):(?P<path>[^\s].*)")
_SSH_URL_RE = re.compile(
    r"ssh://(?:(?P<user>[^@/\s]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\s]+)(?::(?P<port>\d*))?(?P<path>/[^\s]*)"
)


@dataclass(frozen=True, slots=True)
class HubURL:
    """Where a hub's bare repository is: `ssh://[user@]host[:port]/path` or `[user@]host:path`.

    `path` is what git asks the hub's `git-upload-pack` for: absolute (`/srv/memory.git`), or
    relative to the account's home (`~/memory.git`, or `memory.git` in the scp form).
    """

    url: str
    host: str
    path: str
    user: str | None = None
    port: int | None = None

    @property
    def address(self) -> str:
        """`[user@]host[:port]` for messages."""
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.host}" + (f":{self.port}" if self.port else "")


def parse_hub_url(url: str) -> HubURL:
    """Parse a hub URL; `ConfigError` saying what a good one looks like otherwise."""
    text = url.strip()
    if text.startswith("ssh://") or text.startswith("git+ssh://") or text.startswith("ssh+git://"):
        match = _SSH_URL_RE.fullmatch("ssh://" + text.split("://", 1)[1])
        if match is None or match["path"] in ("", "/"):
            raise ConfigError(f"{url!r} is not a hub URL; use ssh://[user@]host[:port]/path/to/memory.git")
        path = unquote(match["path"])
        if path.startswith("/~"):  # ssh://host/~/memory.git means ~/memory.git, as in git
            path = path[1:]
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"{url!r}: port {port} is out of range")
        return HubURL(url=text, host=_bare_host(match["host"]), path=path, user=match["user"], port=port)
    if "://" not in text:
        match = _SCP_RE.fullmatch(text)
        if match is not None and "/" not in match["host"]:
            return HubURL(url=text, host=_bare_host(match["host"]), path=match["path"], user=match["user"])
    raise ConfigError(
        f"{url!r} is not an SSH hub URL; use ssh://[user@]host[:port]/path/to/memory.git "
        "(any machine with git and sshd can be the hub)"
    )


def _bare_host(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


@dataclass(frozen=True, slots=True)
class Peer(PeerRecord):
    """A hub this machine syncs with. `name` is also the git remote's name in memory/."""

    @property
    def hub(self) -> HubURL:
        return parse_hub_url(self.url)


def configured_peers(config: Config) -> list[Peer]:
    """The peers to sync with: the primary hub (`remote`) first, then in the order they were added."""
    peers = [Peer(p.name, p.url, p.host_key, p.added_at) for p in config.peers]
    if config.remote and config.remote not in {p.url for p in peers}:
        taken = {p.name for p in peers}
        name = IMPLICIT_PEER if IMPLICIT_PEER not in taken else f"{IMPLICIT_PEER}-remote"
        peers.insert(0, Peer(name=name, url=config.remote))
    return peers


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def save_peer(config_path: Path, peer: Peer) -> None:
    """Record `peer` in config.json (replacing one of the same name); blocking.

    `remote` follows the first peer, so 0.1.3 and a hand-written `git pull` agree on the hub.
    """

    def record(raw: dict[str, Any]) -> None:
        peers = dict(raw.get("peers") or {})
        old = peers.get(peer.name) or {}
        peers[peer.name] = {
            "url": peer.url,
            **({"host_key": peer.host_key} if peer.host_key else {}),
            "added_at": peer.added_at or old.get("added_at") or utc_now(),
        }
        raw["peers"] = peers
        if not raw.get("remote") or raw.get("remote") == old.get("url"):
            raw["remote"] = peer.url

    edit_config(config_path.parent, record)


def delete_peer(config_path: Path, name: str) -> Peer | None:
    """Remove a peer from config.json; the removed peer, or None when there was none. Blocking."""

    def forget(raw: dict[str, Any]) -> Peer | None:
        peers = dict(raw.get("peers") or {})
        record = peers.pop(name, None)
        if record is None:
            if name == IMPLICIT_PEER and raw.get("remote") and not peers:
                return Peer(name=name, url=str(raw.pop("remote")))
            return None
        raw["peers"] = peers
        if raw.get("remote") == record.get("url"):
            remaining = [r.get("url") for r in peers.values() if isinstance(r, Mapping) and r.get("url")]
            if remaining:
                raw["remote"] = remaining[0]
            else:
                raw.pop("remote", None)
        return Peer(name=name, url=str(record.get("url")), host_key=_opt_str(record.get("host_key")))

    return edit_config(config_path.parent, forget)


def sync_settings(config: Config) -> SyncSettings:
    """The `sync` block of config.json, checked when the config was loaded."""
    return config.sync
