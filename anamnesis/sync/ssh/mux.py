"""The shared connection: every git command of a cycle runs over one asyncssh connection.

A handshake costs more than a small fetch, and a cycle runs several git commands, so the
syncing process holds one connection (`HubLinkMux`, the default) and git's ssh program is a
stdlib-only shim (no asyncssh import, so it starts fast) that passes its stdin, stdout and
stderr over a private Unix socket (`SCM_RIGHTS`). We open a channel on the shared connection
and splice those descriptors onto it, then send the shim the exit status. What goes wrong is
told to git's stderr as a marked line with a `LinkFailure` code, which the engine reads back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc

from anamnesis.sync.link import LinkFailure, mark
from anamnesis.sync.peers import HubURL
from anamnesis.sync.ssh.bridge import parse_ssh_argv
from anamnesis.sync.sshlib import asyncssh

logger = logging.getLogger(__name__)

_SHIM = r"""import json, os, socket, sys
a = sys.argv[1:]
if "-G" in a:
    sys.exit(0)
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ["ANAMNESIS_SSH_MUX"])
    msg = json.dumps({"argv": a, "protocol": os.environ.get("GIT_PROTOCOL")}).encode()
    socket.send_fds(s, [msg], [0, 1, 2])
    os.close(0)
    os.close(1)
    rc = s.recv(16)
except OSError as exc:
    sys.stderr.write("@LOST@\n" % exc)
    os._exit(255)
os._exit(int(rc) if rc.strip().isdigit() else 255)
""".replace("@LOST@", mark(LinkFailure.LOST, "the sync's SSH connection is gone (%s)"))


def can_share_connection() -> bool:
    return os.name == "posix" and hasattr(socket, "send_fds")


class HubLinkMux:
    """Serves git's ssh program over one asyncssh connection, for the length of a cycle."""

    def __init__(self, conn: asyncssh.SSHClientConnection, hub: HubURL) -> None:
        self.conn = conn
        self.hub = hub
        self._dir = ""
        self.path = ""
        self.shim = ""

    def env(self) -> dict[str, str]:
        return {
            "GIT_SSH_COMMAND": f"{shlex.quote(sys.executable)} -S {shlex.quote(self.shim)}",
            "GIT_SSH_VARIANT": "ssh",
            "ANAMNESIS_SSH_MUX": self.path,
        }

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[HubLinkMux]:
        self._dir = tempfile.mkdtemp(prefix="anamnesis-ssh-")  # 0700: only we may connect
        self.path = os.path.join(self._dir, "mux.sock")
        self.shim = os.path.join(self._dir, "shim.py")
        await anyio.Path(self.shim).write_text(_SHIM, encoding="utf-8")
        failure: BaseException | None = None
        try:
            listener = await anyio.create_unix_listener(self.path, mode=0o600)
            async with listener, anyio.create_task_group() as group:
                group.start_soon(listener.serve, self._serve_one)
                try:
                    yield self
                except BaseException as exc:  # re-raised below, unwrapped by the task group
                    failure = exc
                finally:
                    group.cancel_scope.cancel()
            if failure is not None:
                raise failure
        finally:
            for leftover in (self.path, self.shim):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
            with contextlib.suppress(OSError):
                os.rmdir(self._dir)

    async def _serve_one(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            fds: list[int] = []
            rc = 255
            try:
                message, fds = await stream.receive_fds(65536, 3)  # type: ignore[attr-defined]
                if len(fds) == 3:
                    rc = await self._run(json.loads(message), fds)
            except Exception:  # a shim must always get an answer; this handler must never kill the cycle
                logger.exception("shared SSH connection: request failed")
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    await stream.send(str(rc).encode())

    async def _run(self, request: Mapping[str, Any], fds: list[int]) -> int:
        def tell_git(failure: LinkFailure, text: str) -> None:
            with contextlib.suppress(OSError):
                os.write(fds[2], f"{mark(failure, text)}\n".encode())

        try:
            _user, port, host, command = parse_ssh_argv(request["argv"])
        except ValueError as exc:
            tell_git(LinkFailure.OTHER, str(exc))
            return 255
        if host.lower() != self.hub.host.lower() or (port or None) != (self.hub.port or None):
            tell_git(LinkFailure.OTHER, f"this connection goes to {self.hub.address}, not {host}")
            return 255
        env = {"GIT_PROTOCOL": request["protocol"]} if request.get("protocol") else {}
        # asyncssh owns (and closes) what it is given; we close the originals ourselves.
        copies = [os.dup(fd) for fd in fds]
        try:
            process = await self.conn.create_process(
                command, env=env, encoding=None, stdin=copies[0], stdout=copies[1], stderr=copies[2]
            )
        except asyncssh.ChannelOpenError as exc:
            for fd in copies:
                os.close(fd)
            tell_git(LinkFailure.OTHER, f"the hub refused a channel: {exc.reason}")
            return 255
        except (OSError, asyncssh.Error) as exc:
            tell_git(LinkFailure.LOST, f"connection to the hub lost: {exc}")
            return 255
        result = await process.wait()
        if result.exit_status is None or result.exit_status < 0:
            tell_git(LinkFailure.LOST, "connection to the hub lost (the remote command ended without a status)")
            return 255
        return int(result.exit_status)
