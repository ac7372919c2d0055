"""What every dashboard view reaches for: the memory, the settings, and the service's status.

One `DashboardState` per app, kept in `app.extensions`; views get it with `dashboard()`. The
service (a root) owns `ServiceStatus` and updates it as its background tasks run; the dashboard
only reads it, to show the sync loop on the health page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from quart import current_app

from anamnesis.config import Config
from anamnesis.dashboard.security import DashboardSettings
from anamnesis.memory import Memory

EXTENSION_KEY = "anamnesis"


@dataclass(slots=True)
class ServiceStatus:
    """The background work of `anamnesis serve`, as the health page shows it."""

    running: bool = False
    sync_enabled: bool = False
    sync_note: str = "the dashboard runs without the background service"
    sync_interval: float | None = None
    last_sync_at: str | None = None
    last_sync_ok: bool | None = None
    last_sync_message: str | None = None
    last_refresh_at: str | None = None
    last_refresh_message: str | None = None
    request_sync: Callable[[], None] | None = field(default=None, repr=False)


@dataclass(slots=True)
class DashboardState:
    """The dashboard's dependencies; `memory` is set once the app has started serving."""

    config: Config
    settings: DashboardSettings
    status: ServiceStatus
    memory: Memory | None = None

    def require_memory(self) -> Memory:
        if self.memory is None:
            raise RuntimeError("the dashboard's memory is not open: the app has not started serving")
        return self.memory


def dashboard() -> DashboardState:
    return cast(DashboardState, current_app.extensions[EXTENSION_KEY])


def memory() -> Memory:
    return dashboard().require_memory()
