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
dashboard's token and cookie key, which nothing below it does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from anamnesis.config import DEFAULT_SYNC_INTERVAL, Config, Layout, read_config_file, write_config_file
from anamnesis.errors import AnamnesisError, BusyError, ConfigError
from anamnesis.home import require_home
from anamnesis.index import RefreshReport
from anamnesis.locks import release_file_lock, try_file_lock
from anamnesis.memory import Memory, open_memory
from anamnesis.notes import utc_now
from anamnesis.upkeep import keep_up

if TYPE_CHECKING:
    from anamnesis.dashboard.state import ServiceStatus

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
SHUTDOWN_GRACE = 3.0
HTTP_GRACE = 2.0
# A client that goes quiet mid-request (half-open, or a slowloris dribbling its body) is dropped
# after this long without a byte; one that never finishes its headers, after the same long idle.
CLIENT_TIMEOUT = 30.0
KEEP_ALIVE = 5.0
WATCH_INTERVAL = 1.0
FULL_REFRESH_INTERVAL = 30.0
LOCK_FILE = "service.lock"
INFO_FILE = "service.json"
KEY_FILE = "dashboard.key"
NO_HUB = "off: no hub configured (anamnesis peer add NAME ssh://user@host/path)"

SyncFunction = Callable[..., Awaitable[Any]]


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
    block = config.raw.get("dashboard")
    dashboard = block if isinstance(block, dict) else {}
    sync_interval = config.sync_interval
    try:
        chosen_port = int(port if port is not None else dashboard.get("port", DEFAULT_PORT))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config.json: dashboard.port must be a number ({exc})") from exc
    if not 0 <= chosen_port <= 65535:
        raise ConfigError(f"port {chosen_port} is not a TCP port (0-65535)")
    token = dashboard.get("token")
    return ServiceOptions(
        host=str(host or dashboard.get("host") or DEFAULT_HOST),
        port=chosen_port,
        sync=sync,
        sync_interval=sync_interval,
        token=str(token) if token else None,
    )


def ensure_token(layout: Layout) -> tuple[str, bool]:
    """The dashboard's access token from config.json, created (and saved, 0600) if missing.

    True as the second value when it was created now: the caller prints it, once.
    """
    raw = read_config_file(layout.config_path)
    block = raw.get("dashboard")
    dashboard = dict(block) if isinstance(block, dict) else {}
    token = dashboard.get("token")
    if isinstance(token, str) and len(token) >= 16:
        return token, False
    token = secrets.token_urlsafe(24)
    dashboard["token"] = token
    raw["dashboard"] = dashboard
    write_config_file(layout.config_path, raw)
    return token, True


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


# -- the sync loop ------------------------------------------------------------------------------


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
    from anamnesis.sync import run_sync

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


async def _sync_as_things_happen(
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
            return await run_sync(config, open_link=connections.link, **kwargs)
        finally:
            running -= 1

    def busy() -> bool:
        return running > 0

    async with HubConnections(memory.config) as connections, anyio.create_task_group() as tasks:
        tasks.start_soon(listen_to_hub, memory.config, connections, wakeup.set, busy)
        tasks.start_soon(push_on_change, memory.config, wakeup.set, busy)
        await _sync_loop(memory, over_held, options.sync_interval, wakeup, status, observer)


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


# -- the dashboard's socket and server -----------------------------------------------------------


async def resolve_address(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot resolve {host!r} to an address to listen on: {exc}") from exc
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


async def check_listen_address(options: ServiceOptions) -> None:
    """Refuse an address the dashboard will not bind, before anything is created for it (a
    token printed and saved for a service that then refuses to start)."""
    from anamnesis.dashboard.security import check_bind

    _family, address = await resolve_address(options.host, options.port)
    check_bind(options.host, address)


def bind_socket(family: socket.AddressFamily, address: str, port: int) -> socket.socket:
    """A listening socket, so connections queue from now on, even before the app has started."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48):  # EADDRINUSE on Linux, macOS
            raise ConfigError(
                f"{address}:{port} is taken by another program (another home's service?); choose --port"
            ) from exc
        raise ConfigError(f"cannot listen on {address}:{port}: {exc.strerror}") from exc
    return sock


async def _serve_http(
    app: Any, sock: socket.socket, stopping: anyio.Event, done: anyio.Event, client_timeout: float
) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config as HypercornConfig

    hconfig = HypercornConfig()
    hconfig.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the listening socket from here on
    hconfig.graceful_timeout = HTTP_GRACE
    # hypercorn waits forever on a read by default: a client that sent its headers and vanished
    # would hold its connection (and a task) for good. Headers never finished count as idle.
    hconfig.read_timeout = max(1, math.ceil(client_timeout))  # hypercorn takes whole seconds
    hconfig.keep_alive_timeout = min(KEEP_ALIVE, client_timeout)
    hconfig.h11_max_incomplete_size = 16 * 1024
    hconfig.include_server_header = False
    hconfig.accesslog = None
    hconfig.errorlog = logging.getLogger("hypercorn.error")
    try:
        await serve(app, hconfig, shutdown_trigger=stopping.wait, mode="asgi")
    finally:
        stopping.set()  # hypercorn ending on its own ends the service too
        done.set()


def _write_info(layout: Layout, url: str) -> None:
    info = {"pid": os.getpid(), "url": url, "started_at": utc_now()}
    (layout.state_dir / INFO_FILE).write_text(json.dumps(info) + "\n", encoding="utf-8")


def running_service(layout: Layout) -> dict[str, Any]:
    """What the running service wrote about itself (pid, url), or {}."""
    try:
        data = json.loads((layout.state_dir / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
            await anyio.to_thread.run_sync(_write_info, layout, settings.url)
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
                            tasks.start_soon(_sync_as_things_happen, memory, run_sync, options, status, observer)
                        if stop is not None:
                            tasks.start_soon(relay, stop)

            async with anyio.create_task_group() as tg:
                tg.start_soon(_serve_http, app, sock, stopping, http_done, options.client_timeout)
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
