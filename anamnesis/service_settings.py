"""How `anamnesis serve` is told to run, and how it reports back to whoever runs it.

The options come from the command line over `config.json` over defaults; the dashboard's access
token and cookie key are created here on first need. This is part of the service root: it reads
config and writes the two secrets, which nothing below it does.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anamnesis.config import DEFAULT_SYNC_INTERVAL, Config, Layout
from anamnesis.configedit import edit_config
from anamnesis.errors import ConfigError
from anamnesis.index import RefreshReport
from anamnesis.settings import DEFAULT_HOST, DEFAULT_PORT

# A client that goes quiet mid-request (half-open, or a slowloris dribbling its body) is dropped
# after this long without a byte; one that never finishes its headers, after the same long idle.
CLIENT_TIMEOUT = 30.0
KEY_FILE = "dashboard.key"


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """How to run the service: where the dashboard listens and whether and how often to sync."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    sync: bool = True
    sync_interval: float = DEFAULT_SYNC_INTERVAL
    token: str | None = None
    client_timeout: float = CLIENT_TIMEOUT


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What the service tells its caller once it listens."""

    url: str
    port: int
    sync_note: str
    token_required: bool


@dataclass(frozen=True, slots=True)
class ServiceObserver:
    """Callbacks for whoever runs the service: the CLI prints when it is ready; tests wait on them."""

    ready: Callable[[ServiceInfo], None] | None = None
    refreshed: Callable[[RefreshReport], None] | None = None
    synced: Callable[[bool, str], None] | None = None


# -- configuration ------------------------------------------------------------------------------


def service_options(
    config: Config, host: str | None = None, port: int | None = None, sync: bool = True
) -> ServiceOptions:
    """Options from the command line over `config.json`'s `dashboard` and `sync` blocks over defaults."""
    dashboard = config.dashboard
    chosen_port = port if port is not None else dashboard.port
    if not 0 <= chosen_port <= 65535:
        raise ConfigError(f"port {chosen_port} is not a TCP port (0-65535)")
    return ServiceOptions(
        host=host or dashboard.host,
        port=chosen_port,
        sync=sync,
        sync_interval=config.sync_interval,
        token=dashboard.token,
    )


def ensure_token(layout: Layout) -> tuple[str, bool]:
    """The dashboard's access token from config.json, created (and saved, 0600) if missing.

    True as the second value when it was created now: the caller prints it, once.
    """

    def keep_or_make(document: dict[str, Any]) -> tuple[str, bool]:
        block = document.get("dashboard")
        dashboard = dict(block) if isinstance(block, dict) else {}
        token = dashboard.get("token")
        if isinstance(token, str) and len(token) >= 16:
            return token, False
        dashboard["token"] = token = secrets.token_urlsafe(24)
        document["dashboard"] = dashboard
        return token, True

    return edit_config(layout.home, keep_or_make)


def cookie_key(layout: Layout) -> bytes:
    """The key that signs the dashboard's session cookie, kept in state/ so a restart keeps forms valid."""
    path = layout.state_dir / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
        path.unlink()
        return cookie_key(layout)
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
