"""`anamnesis serve`: one long-lived asyncio process, one task group owning every task.

The tasks: the dashboard (Quart on hypercorn, on a socket bound here so the real port is known
before the first request and port 0 works), the sync loop (only when a hub or peer is configured
and the sync engine is installed), a watcher that refreshes the index when note files change, and
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
import importlib
import json
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from anamnesis.config import Config, Layout, read_config_file, write_config_file
from anamnesis.errors import AnamnesisError, BusyError, ConfigError
from anamnesis.home import require_home
from anamnesis.index import RefreshReport
from anamnesis.locks import release_file_lock, try_file_lock
from anamnesis.memory import Memory, open_memory
from anamnesis.notes import NOTE_TYPES, utc_now

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_SYNC_INTERVAL = 300.0
MIN_SYNC_INTERVAL = 10.0
SHUTDOWN_GRACE = 3.0
HTTP_GRACE = 2.0
WATCH_INTERVAL = 1.0
FULL_REFRESH_INTERVAL = 30.0
LOCK_FILE = "service.lock"
INFO_FILE = "service.json"
KEY_FILE = "dashboard.key"

if TYPE_CHECKING:
    from anamnesis.dashboard.state import ServiceStatus

SyncFunction = Callable[[Config], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """How to run the service: where the dashboard listens and whether and how often to sync."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    sync: bool = True
    sync_interval: float = DEFAULT_SYNC_INTERVAL
    token: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What the service tells its caller once it listens."""

    url: str
    port: int
    sync_note: str
    token_required: bool


def service_options(
    config: Config, host: str | None = None, port: int | None = None, sync: bool = True
) -> ServiceOptions:
    """Options from the command line over `config.json`'s `dashboard` and `sync` blocks over defaults."""
    block = config.raw.get("dashboard")
    dashboard = block if isinstance(block, dict) else {}
    sync_block = config.raw.get("sync")
    interval = sync_block.get("interval") if isinstance(sync_block, dict) else None
    try:
        chosen_port = int(port if port is not None else dashboard.get("port", DEFAULT_PORT))
        sync_interval = max(MIN_SYNC_INTERVAL, float(interval)) if interval is not None else DEFAULT_SYNC_INTERVAL
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config.json: dashboard.port and sync.interval must be numbers ({exc})") from exc
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


def find_sync() -> SyncFunction | None:
    """`anamnesis.sync.run_sync`, or None while this installation has no sync engine."""
    try:
        module = importlib.import_module("anamnesis.sync")
    except ModuleNotFoundError as exc:
        if exc.name in ("anamnesis.sync", "anamnesis"):
            return None
        raise
    function = getattr(module, "run_sync", None)
    return function if callable(function) else None


def sync_plan(config: Config, options: ServiceOptions) -> tuple[SyncFunction | None, str]:
    """The sync function to run in the loop (or None) and a sentence saying why."""
    if not options.sync:
        return None, "off (started with --no-sync)"
    if not (config.remote or config.raw.get("peers")):
        return None, "off: no hub configured (anamnesis peer add NAME ssh://user@host/path)"
    function = find_sync()
    if function is None:
        return None, "off: this installation has no sync engine"
    minutes = options.sync_interval / 60
    every = f"{minutes:g} min" if options.sync_interval >= 60 else f"{options.sync_interval:g} s"
    return function, f"every {every} with {config.remote or 'the configured peers'}"


async def resolve_address(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot resolve {host!r} to an address to listen on: {exc}") from exc
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


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


class _Wakeup:
    """A re-armable event: `set()` wakes the current waiter, the next `wait()` waits afresh."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            await self._event.wait()
        self._event = anyio.Event()


def _describe(report: Any) -> str:
    summary = getattr(report, "summary", None)
    text = summary() if callable(summary) else summary if isinstance(summary, str) else repr(report)
    return str(text)[:300]


async def _sync_loop(
    config: Config, run_sync: SyncFunction, interval: float, wakeup: _Wakeup, status: ServiceStatus
) -> None:
    while True:
        status.last_sync_at = utc_now()
        try:
            report = await run_sync(config)
        except AnamnesisError as exc:
            status.last_sync_ok, status.last_sync_message = False, str(exc)
            logger.warning("sync failed: %s", exc)
        except Exception:  # a bug in one cycle must not stop the dashboard or the next cycle
            logger.exception("sync failed unexpectedly")
            status.last_sync_ok, status.last_sync_message = False, "failed unexpectedly; see the service log"
        else:
            status.last_sync_ok, status.last_sync_message = True, _describe(report)
            logger.info("sync done: %s", status.last_sync_message)
        await wakeup.wait(interval)


def _note_dir_stamps(layout: Layout) -> tuple[int, ...]:
    """Modification times of the note directories: a file added, removed or renamed moves them."""
    stamps = []
    for root in (layout.memory_dir, layout.local_dir):
        for path in (root, *(root / t for t in NOTE_TYPES)):
            try:
                stamps.append(path.stat().st_mtime_ns)
            except OSError:
                stamps.append(0)
    return tuple(stamps)


async def _watch_notes(
    memory: Memory,
    status: ServiceStatus,
    on_refresh: Callable[[RefreshReport], None] | None,
    interval: float = WATCH_INTERVAL,
) -> None:
    """Refresh the index when a note directory changes, and fully every `FULL_REFRESH_INTERVAL`.

    In-place edits do not move a directory's mtime; the periodic full pass catches them.
    """
    layout = memory.config.layout
    stamps: tuple[int, ...] | None = None  # the first pass refreshes: files may have changed while we were down
    last_full = -FULL_REFRESH_INTERVAL
    while True:
        # Stamps are taken before the refresh, so a change during the refresh is seen next time.
        now_stamps = await anyio.to_thread.run_sync(_note_dir_stamps, layout)
        full_due = anyio.current_time() - last_full >= FULL_REFRESH_INTERVAL
        if now_stamps != stamps or full_due:
            try:
                report = await memory.index.refresh()
            except AnamnesisError as exc:
                status.last_refresh_message = f"refresh failed: {exc}"
                logger.warning("index refresh failed: %s", exc)
            else:
                stamps = now_stamps
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
                if on_refresh is not None:
                    on_refresh(report)
        await anyio.sleep(interval)


async def _stop_on_signal(stopping: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            logger.info("received %s: stopping", signal.Signals(signum).name)
            stopping.set()
            return


async def _serve_http(app: Any, sock: socket.socket, stopping: anyio.Event) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config as HypercornConfig

    hconfig = HypercornConfig()
    hconfig.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the listening socket from here on
    hconfig.graceful_timeout = HTTP_GRACE
    hconfig.include_server_header = False
    hconfig.accesslog = None
    hconfig.errorlog = logging.getLogger("hypercorn.error")
    try:
        await serve(app, hconfig, shutdown_trigger=stopping.wait, mode="asgi")
    finally:
        stopping.set()  # hypercorn ending on its own ends the service too


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


async def run_service(
    config: Config,
    options: ServiceOptions,
    *,
    on_ready: Callable[[ServiceInfo], None] | None = None,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    on_refresh: Callable[[RefreshReport], None] | None = None,
) -> None:
    """Run the dashboard, the sync loop and the index watcher until a signal or `stop` is set."""
    from anamnesis.dashboard import DashboardSettings, ServiceStatus, create_app

    layout = config.layout
    require_home(layout)
    lock = try_file_lock(layout.state_dir / LOCK_FILE)
    if lock is None:
        where = running_service(layout).get("url") or "an unknown address"
        raise BusyError(f"an Anamnesis service is already running for {layout.home} (dashboard at {where})")
    try:
        family, address = await resolve_address(options.host, options.port)
        settings = DashboardSettings(  # checked before binding: no token beyond loopback, no wildcard
            host=options.host,
            port=options.port,
            token=options.token,
            secret_key=await anyio.to_thread.run_sync(cookie_key, layout),
            address=address if address != options.host else None,
        )
        sock = bind_socket(family, address, options.port)
        try:
            settings = replace(settings, port=sock.getsockname()[1])
            run_sync, sync_note = sync_plan(config, options)
            wakeup = _Wakeup()
            status = ServiceStatus(
                running=True,
                sync_enabled=run_sync is not None,
                sync_note=sync_note,
                sync_interval=options.sync_interval if run_sync else None,
                request_sync=wakeup.set if run_sync else None,
            )
            async with open_memory(config) as memory:
                app = create_app(config, settings, memory=memory, status=status)
                await anyio.to_thread.run_sync(_write_info, layout, settings.url)
                stopping = anyio.Event()
                background = anyio.CancelScope()

                async def relay(event: anyio.Event) -> None:
                    await event.wait()
                    stopping.set()

                async def run_background() -> None:
                    # Everything that stops the moment the service stops: loops, watcher, relays.
                    with background:
                        async with anyio.create_task_group() as tasks:
                            tasks.start_soon(_watch_notes, memory, status, on_refresh)
                            if run_sync is not None:
                                tasks.start_soon(_sync_loop, config, run_sync, options.sync_interval, wakeup, status)
                            if handle_signals:
                                tasks.start_soon(_stop_on_signal, stopping)
                            if stop is not None:
                                tasks.start_soon(relay, stop)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(_serve_http, app, sock, stopping)
                    tg.start_soon(run_background)
                    logger.info("dashboard at %s; sync %s", settings.url, sync_note)
                    if on_ready is not None:
                        on_ready(ServiceInfo(settings.url, settings.port, sync_note, settings.token is not None))
                    await stopping.wait()
                    background.cancel()
                    tg.cancel_scope.deadline = anyio.current_time() + SHUTDOWN_GRACE
        finally:
            if sock.fileno() != -1:
                sock.close()
            with contextlib.suppress(OSError):
                (layout.state_dir / INFO_FILE).unlink()
    finally:
        release_file_lock(lock)
    logger.info("stopped")
