"""The service's sync loop: a sync now, then one every interval or as soon as something happens.

It re-reads config.json each cycle, so `anamnesis peer add` takes effect without a restart, and
keeps the dashboard's status (last sync, whether a hub is configured) up to date.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from anamnesis.config import Config
from anamnesis.errors import AnamnesisError
from anamnesis.memory import Memory
from anamnesis.notes import utc_now
from anamnesis.service_settings import ServiceObserver, ServiceOptions

if TYPE_CHECKING:
    from anamnesis.dashboard.state import ServiceStatus

logger = logging.getLogger(__name__)

NO_HUB = "off: no hub configured (anamnesis peer add NAME ssh://user@host/path)"

SyncFunction = Callable[..., Awaitable[Any]]


def configured_hub(config: Config) -> str | None:
    """The hub(s) config.json names now (re-read: peers come and go while the service runs)."""
    from anamnesis.sync import current_config
    from anamnesis.sync.peers import configured_peers

    peers = configured_peers(current_config(config))
    if not peers:
        return None
    return peers[0].url + (f" (+{len(peers) - 1} more)" if len(peers) > 1 else "")


def sync_plan(config: Config, options: ServiceOptions) -> tuple[SyncFunction | None, str]:
    """The sync function the loop runs (or None: no loop) and a sentence saying what it does."""
    if not options.sync:
        return None, "off (started with --no-sync)"
    from anamnesis.sync.wiring import run_sync

    return run_sync, _sync_note(configured_hub(config), options.sync_interval)


def _sync_note(hub: str | None, interval: float) -> str:
    if hub is None:
        return NO_HUB
    every = f"{interval / 60:g} min" if interval >= 60 else f"{interval:g} s"
    return f"every {every} with {hub}"


class _Wakeup:
    """A re-armable event: `set()` wakes the current waiter, the next `wait()` waits afresh."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        """Forget a wake-up asked for before now (the cycle starting now answers it)."""
        if self._event.is_set():
            self._event = anyio.Event()

    async def wait(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            await self._event.wait()
        self._event = anyio.Event()


async def _sync_loop(
    memory: Memory,
    run_sync: SyncFunction,
    interval: float,
    wakeup: _Wakeup,
    status: ServiceStatus,
    observer: ServiceObserver,
) -> None:
    """A sync now, then one every `interval` (or when the dashboard asks), while a hub is configured."""
    config = memory.config
    while True:
        hub = await anyio.to_thread.run_sync(configured_hub, config)
        status.sync_enabled = hub is not None
        status.sync_note = _sync_note(hub, interval)
        status.request_sync = wakeup.set if hub is not None else None
        if hub is not None:
            status.last_sync_at = utc_now()
            try:
                report = await run_sync(config, memory=memory)
                ok, message = report.ok, report.summary()[:300]
            except AnamnesisError as exc:
                ok, message = False, str(exc)
            except Exception:  # a bug in one cycle must not stop the dashboard or the next cycle
                logger.exception("sync failed unexpectedly")
                ok, message = False, "failed unexpectedly; see the service log"
            status.last_sync_ok, status.last_sync_message = ok, message
            (logger.info if ok else logger.warning)("sync %s: %s", "done" if ok else "failed", message)
            if observer.synced is not None:
                observer.synced(ok, message)
        await wakeup.wait(interval)


async def sync_as_things_happen(
    memory: Memory, run_sync: SyncFunction, options: ServiceOptions, status: ServiceStatus, observer: ServiceObserver
) -> None:
    """The sync loop over hub connections kept open, woken early when the hub's main moves or a
    note changes here (`anamnesis.sync.live`), so notes travel in seconds, not intervals."""
    from anamnesis.sync.live import HubConnections, listen_to_hub, push_on_change

    wakeup = _Wakeup()
    running = 0

    async def over_held(config: Config, **kwargs: Any) -> Any:
        nonlocal running
        running += 1
        wakeup.clear()
        try:
            return await run_sync(config, transport=connections, **kwargs)
        finally:
            running -= 1

    def busy() -> bool:
        return running > 0

    async with HubConnections(memory.config) as connections, anyio.create_task_group() as tasks:
        tasks.start_soon(listen_to_hub, memory.config, connections, wakeup.set, busy)
        tasks.start_soon(push_on_change, memory.config, wakeup.set, busy)
        await _sync_loop(memory, over_held, options.sync_interval, wakeup, status, observer)
