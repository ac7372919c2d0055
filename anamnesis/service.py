"""`anamnesis serve`: one long-lived asyncio process, one task group owning every task.

The tasks: the dashboard (Quart on hypercorn, on a socket bound here so the real port is known
before the first request and port 0 works), the sync loop (when the sync engine is installed; it
syncs whenever a hub is configured, re-reading config.json each cycle so `anamnesis peer add`
takes effect without a restart), a watcher that refreshes the index when note files change, and
the signal handler. SIGINT or SIGTERM sets `stopping`: the loops are cancelled at once, hypercorn
finishes in-flight requests, and anything still running after `SHUTDOWN_GRACE` is cancelled, so
the process is gone well within 5 s.

One service per home: `state/service.lock` (flock, released by the kernel if the process dies) is
taken first; a second `serve` says where the first one is listening and exits.

This is a root: it reads config (dashboard host, port, token; sync interval) and writes the
dashboard's token and cookie key, which nothing below it does. This module is the supervisor and
the index watcher; its parts live beside it: `service_settings` (options, token, cookie key),
`service_sync` (the sync loop) and `service_http` (the socket and hypercorn).
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from anamnesis.config import Config
from anamnesis.errors import AnamnesisError, BusyError
from anamnesis.home import require_home
from anamnesis.locks import release_file_lock, try_file_lock
from anamnesis.memory import Memory, open_memory
from anamnesis.notes import utc_now
from anamnesis.service_http import INFO_FILE, bind_socket, resolve_address, running_service, serve_http, write_info
from anamnesis.service_settings import ServiceInfo, ServiceObserver, ServiceOptions, cookie_key
from anamnesis.service_sync import sync_as_things_happen, sync_plan
from anamnesis.upkeep import keep_up

if TYPE_CHECKING:
    from anamnesis.dashboard.state import ServiceStatus

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE = 3.0
WATCH_INTERVAL = 1.0
FULL_REFRESH_INTERVAL = 30.0
LOCK_FILE = "service.lock"


# -- the index watcher --------------------------------------------------------------------------


async def _watch_notes(
    memory: Memory, status: ServiceStatus, observer: ServiceObserver, interval: float = WATCH_INTERVAL
) -> None:
    """Refresh the index when a note directory changes, and fully every `FULL_REFRESH_INTERVAL`.

    In-place edits do not move a directory's mtime; the periodic full pass catches them.
    """
    stamp: str | None = None  # the first pass refreshes: files may have changed while we were down
    last_full = -FULL_REFRESH_INTERVAL
    while True:
        # The stamp is taken before the refresh, so a change during the refresh is seen next time;
        # `reindex` records it in the index, so the hooks see the index in step and stay fast.
        now_stamp = await memory.directory_stamp()
        full_due = anyio.current_time() - last_full >= FULL_REFRESH_INTERVAL
        if now_stamp != stamp or full_due:
            try:
                report = await memory.reindex()
            except AnamnesisError as exc:
                status.last_refresh_message = f"refresh failed: {exc}"
                logger.warning("index refresh failed: %s", exc)
            else:
                stamp = now_stamp
                if full_due:
                    last_full = anyio.current_time()
                status.last_refresh_at = utc_now()
                if report.changed:
                    status.last_refresh_message = (
                        f"{report.added} added, {report.updated} updated, {report.removed} removed"
                    )
                    logger.info("index refreshed: %s", status.last_refresh_message)
                elif status.last_refresh_message is None:
                    status.last_refresh_message = "in step with the files"
                if observer.refreshed is not None:
                    observer.refreshed(report)
        await anyio.sleep(interval)


# -- the service --------------------------------------------------------------------------------


async def run_service(
    config: Config,
    options: ServiceOptions,
    *,
    observer: ServiceObserver | None = None,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Run the dashboard, the sync loop and the index watcher until a signal or `stop` is set.

    With `handle_signals` (the `serve` command), SIGINT and SIGTERM stop the service, and once
    one has, further ones are ignored until the process exits: `timeout`, a process-group kill
    or an impatient second Ctrl-C must not kill it halfway through closing the index.
    """
    require_home(config.layout)
    received: list[signal.Signals] = []
    with contextlib.ExitStack() as stack:
        signals = None
        if handle_signals:
            stack.callback(_ignore_stop_signals, received)  # runs after the receiver is gone (LIFO)
            signals = stack.enter_context(anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
        lock = try_file_lock(config.layout.state_dir / LOCK_FILE)
        if lock is None:
            where = running_service(config.layout).get("url") or "an unknown address"
            raise BusyError(f"an Anamnesis service is already running for {config.home} (dashboard at {where})")
        try:
            await _run_locked(config, options, observer or ServiceObserver(), stop, signals, received)
        finally:
            release_file_lock(lock)
    logger.info("stopped")


def _ignore_stop_signals(received: list[signal.Signals]) -> None:
    if received:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


async def _watch_signals(
    signals: AsyncIterator[signal.Signals], stopping: anyio.Event, received: list[signal.Signals]
) -> None:
    """SIGINT or SIGTERM starts the stop; repeats (`timeout` and process groups send two) are absorbed."""
    async for signum in signals:
        received.append(signum)
        if stopping.is_set():
            logger.info("received %s again: already stopping", signum.name)
            continue
        logger.info("received %s: stopping", signum.name)
        stopping.set()


async def _run_locked(
    config: Config,
    options: ServiceOptions,
    observer: ServiceObserver,
    stop: anyio.Event | None,
    signals: AsyncIterator[signal.Signals] | None,
    received: list[signal.Signals],
) -> None:
    from anamnesis.dashboard import DashboardSettings, ServiceStatus, create_app

    layout = config.layout
    family, address = await resolve_address(options.host, options.port)
    settings = DashboardSettings(  # checked before binding: no token beyond loopback, no wildcard
        host=options.host,
        port=options.port,
        token=options.token,
        secret_key=await anyio.to_thread.run_sync(cookie_key, layout),
        address=address if address != options.host else None,
    )
    run_sync, sync_note = await anyio.to_thread.run_sync(sync_plan, config, options)
    sock = bind_socket(family, address, options.port)
    try:
        settings = replace(settings, port=sock.getsockname()[1])
        status = ServiceStatus(running=True, sync_note=sync_note)
        async with open_memory(config) as memory:
            app = create_app(config, settings, memory=memory, status=status)
            await anyio.to_thread.run_sync(write_info, layout, settings.url)
            stopping = anyio.Event()
            http_done = anyio.Event()
            background = anyio.CancelScope()

            async def relay(event: anyio.Event) -> None:
                await event.wait()
                stopping.set()

            async def run_background() -> None:
                # Everything that stops the moment the service stops: loops, watcher, relays.
                with background:
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(_watch_notes, memory, status, observer)
                        tasks.start_soon(keep_up, config)
                        tasks.start_soon(memory.keep_vectors_fresh)  # the machine's one model copy…
                        tasks.start_soon(memory.lend_model)  # …lent to every MCP server of this home
                        if run_sync is not None:
                            tasks.start_soon(sync_as_things_happen, memory, run_sync, options, status, observer)
                        if stop is not None:
                            tasks.start_soon(relay, stop)

            async with anyio.create_task_group() as tg:
                tg.start_soon(serve_http, app, sock, stopping, http_done, options.client_timeout)
                tg.start_soon(run_background)
                if signals is not None:
                    tg.start_soon(_watch_signals, signals, stopping, received)
                logger.info("dashboard at %s; sync %s", settings.url, sync_note)
                if observer.ready is not None:
                    observer.ready(ServiceInfo(settings.url, settings.port, sync_note, settings.token is not None))
                await stopping.wait()
                background.cancel()
                with anyio.move_on_after(SHUTDOWN_GRACE):
                    await http_done.wait()
                tg.cancel_scope.cancel()
    finally:
        if sock.fileno() != -1:
            sock.close()
        with contextlib.suppress(OSError):
            (layout.state_dir / INFO_FILE).unlink()
