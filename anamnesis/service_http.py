"""The dashboard's listening socket and its hypercorn server, and the file that says where it is.

The socket is bound here, before the app starts, so the real port is known before the first
request and port 0 works; hypercorn then owns it and finishes in-flight requests on stop.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from typing import Any

import anyio

from anamnesis.config import Layout
from anamnesis.errors import ConfigError
from anamnesis.notes import utc_now
from anamnesis.service_settings import ServiceOptions

logger = logging.getLogger(__name__)

HTTP_GRACE = 2.0
KEEP_ALIVE = 5.0
INFO_FILE = "service.json"


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


async def serve_http(
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


def write_info(layout: Layout, url: str) -> None:
    info = {"pid": os.getpid(), "url": url, "started_at": utc_now()}
    (layout.state_dir / INFO_FILE).write_text(json.dumps(info) + "\n", encoding="utf-8")


def running_service(layout: Layout) -> dict[str, Any]:
    """What the running service wrote about itself (pid, url), or {}."""
    try:
        data = json.loads((layout.state_dir / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
