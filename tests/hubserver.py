"""Real parts for sync tests: an SSH hub in the test process, a fault proxy, simulated machines.

The hub is an asyncssh server on 127.0.0.1 (port 0, host key generated per test) that runs
each requested command the way sshd does: `sh -c COMMAND` as the account, or `git-shell -c`
for an account restricted to git. Behind it, the real `git upload-pack`/`receive-pack` serve a
bare repository in tmp. Each simulated machine is its own Anamnesis home with its own key,
known_hosts and config, syncing through the real engine and SSH transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from anamnesis.config import Config, load_config
from anamnesis.configedit import edit_config
from anamnesis.home import init_home
from anamnesis.memory import Memory, NoteDraft, open_memory
from anamnesis.notes import Note
from anamnesis.sync.hostkeys import add_known_host, host_pattern
from anamnesis.sync.peers import Peer, parse_hub_url, save_peer
from anamnesis.sync.report import SyncReport
from anamnesis.sync.sshlib import asyncssh
from anamnesis.sync.wiring import run_sync

# Short enough that a dead hub fails a test in seconds, long enough for a loaded CI machine.
TEST_SYNC_SETTINGS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalive_interval": 5,
    "keepalive_count": 3,
    "git_timeout": 60,
    "lock_wait": 60,
    "ssh_config": "none",
}


@dataclass
class HubStats:
    connections: int = 0
    sessions: list[tuple[str, object]] = field(default_factory=list)


def public_line(key: asyncssh.SSHKey) -> str:
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


class Hub:
    """An SSH hub on loopback. `stop()`/`start()` keep the port, so a hub can go down and come back."""

    def __init__(self, root: Path, authorized: list[asyncssh.SSHKey], *, shell: str = "sh") -> None:
        self.root = root
        self.authorized = authorized
        self.shell = shell
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.port = 0
        self.stats = HubStats()
        self.live: set[asyncssh.SSHServerConnection] = set()  # closed by stop(), as sshd's children would be
        self._server: asyncssh.SSHAcceptor | None = None

    @property
    def known_hosts_line(self) -> str:
        return f"{host_pattern('127.0.0.1', self.port)} {public_line(self.host_key)}"

    @property
    def fingerprint(self) -> str:
        return str(self.host_key.get_fingerprint("sha256"))

    def url(self, name: str = "memory.git", port: int | None = None) -> str:
        return f"ssh://127.0.0.1:{port or self.port}{self.root}/{name}"

    def repo(self, name: str = "memory.git") -> Path:
        return self.root / name

    def authorize(self, key: asyncssh.SSHKey) -> None:
        """Let `key` log in (a line added to the account's authorized_keys)."""
        self.authorized.append(key)

    async def start(self) -> None:
        hub = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                hub.stats.connections += 1
                self.conn = conn
                hub.live.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                hub.live.discard(self.conn)

            def begin_auth(self, username: str) -> bool:
                return True

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                return any(public_line(key) == public_line(k) for k in hub.authorized)

        self._server = await asyncssh.create_server(
            Server,
            "127.0.0.1",
            self.port,
            server_host_keys=[self.host_key],
            process_factory=self._handle,
            encoding=None,
            allow_pty=False,
            agent_forwarding=False,
            x11_forwarding=False,
            keepalive_interval=15,
            login_timeout=10,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in list(self.live):  # a detached sync still connected when a test ends
            conn.close()
            with anyio.move_on_after(5):
                await conn.wait_closed()
        self.live.clear()

    async def _handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command
        if not command:
            process.stderr.write(b"hub: interactive shells are not offered\n")
            process.exit(128)
            return
        argv = ["git-shell", "-c", command] if self.shell == "git-shell" else ["/bin/sh", "-c", command]
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
        if process.env.get("GIT_PROTOCOL"):
            env["GIT_PROTOCOL"] = str(process.env["GIT_PROTOCOL"])
        child = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=self.root,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        assert child.stderr is not None

        async def pump_out(src: asyncio.StreamReader, dst: asyncssh.SSHWriter[bytes]) -> None:
            # Explicit pumps, not process.redirect(): asyncssh's StreamReader redirect breaks under
            # back-pressure (research notes, pitfall 1). Always read to the end, so the child's
            # pipes close even when the client is gone.
            broken = False
            while data := await src.read(65536):
                if broken:
                    continue
                try:
                    dst.write(data)
                    await dst.drain()
                except (asyncssh.Error, OSError):
                    broken = True

        async def pump_in() -> None:
            assert child.stdin is not None
            try:
                while data := await process.stdin.read(65536):
                    child.stdin.write(data)
                    await child.stdin.drain()
            except (BrokenPipeError, ConnectionResetError, asyncssh.Error):
                pass
            finally:
                child.stdin.close()

        feeding = asyncio.ensure_future(pump_in())
        child_done = asyncio.ensure_future(
            asyncio.gather(child.wait(), pump_out(child.stdout, process.stdout), pump_out(child.stderr, process.stderr))
        )
        channel_gone = asyncio.ensure_future(process.channel.wait_closed())
        waiting: set[asyncio.Future[Any]] = {child_done, channel_gone}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        killed = not child_done.done()
        if killed:  # the client went away: sshd would close the pipes; we kill the child
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        rc = (await child_done)[0]
        channel_gone.cancel()
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding
        if killed:
            self.stats.sessions.append((command, "killed: client gone"))
            return
        self.stats.sessions.append((command, rc))
        with contextlib.suppress(asyncssh.Error, OSError):
            process.exit(rc)


@contextlib.asynccontextmanager
async def running_hub(
    root: Path, authorized: list[asyncssh.SSHKey] | None = None, *, shell: str = "sh", create: str | None = "memory.git"
) -> AsyncIterator[Hub]:
    """A hub serving `root`; with `create`, that bare repository already exists (as a user made it)."""
    root.mkdir(parents=True, exist_ok=True)
    if create:
        await anyio.run_process(["git", "init", "-q", "--bare", str(root / create)])
        await anyio.run_process(["git", "--git-dir", str(root / create), "symbolic-ref", "HEAD", "refs/heads/main"])
    hub = Hub(root, list(authorized or []), shell=shell)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


# -- the fault proxy -----------------------------------------------------------------------------


class FaultProxy:
    """A TCP proxy between a machine and the hub that can cut or freeze the stream on purpose.

    `cut_after_c2s=N`: reset both sockets once N bytes went client→hub (a cut mid-push);
    `cut_after_s2c=N`: the same for hub→client (a cut mid-fetch); `freeze_after_s2c=N`: stop
    forwarding but keep the sockets open (a hub that hangs). Set the fields to None to heal it.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut_after_c2s: int | None = None
        self.cut_after_s2c: int | None = None
        self.freeze_after_s2c: int | None = None
        self.port = 0
        self.cuts = 0
        self.tripped = anyio.Event()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FaultProxy]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, self._relay)
            try:
                yield self
            finally:
                group.cancel_scope.cancel()

    async def _relay(self, client: anyio.abc.SocketStream) -> None:
        cut, freeze_s2c = self.cut_after_c2s, self.freeze_after_s2c
        cut_s2c = self.cut_after_s2c
        try:
            hub = await anyio.connect_tcp("127.0.0.1", self.target_port)
        except OSError:
            await client.aclose()
            return
        done = anyio.Event()

        async def forward(
            src: anyio.abc.SocketStream, dst: anyio.abc.SocketStream, limit: int | None, freeze: int | None
        ) -> None:
            sent = 0
            try:
                while True:
                    data = await src.receive(65536)
                    if limit is not None and sent + len(data) > limit:
                        self.cuts += 1
                        self.tripped.set()
                        _reset(client)
                        _reset(hub)
                        break
                    if freeze is not None and sent + len(data) > freeze:
                        self.tripped.set()
                        await anyio.sleep_forever()
                    await dst.send(data)
                    sent += len(data)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
            finally:
                done.set()

        async with anyio.create_task_group() as group:
            group.start_soon(forward, client, hub, cut, None)
            group.start_soon(forward, hub, client, cut_s2c, freeze_s2c)
            await done.wait()
            group.cancel_scope.cancel()
        for stream in (client, hub):
            with contextlib.suppress(Exception):
                await stream.aclose()


def _reset(stream: anyio.abc.SocketStream) -> None:
    """Close with RST (SO_LINGER 0), as a dropped network link looks to both ends."""
    sock: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.shutdown(socket.SHUT_RDWR)


# -- simulated machines ----------------------------------------------------------------------------


def write_client_key(home: Path, key: asyncssh.SSHKey) -> Path:
    """The machine's sync key where Anamnesis looks for one (`<home>/ssh/id_ed25519`, mode 0600)."""
    path = home / "ssh" / "id_ed25519"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key.write_private_key(str(path))
    path.chmod(0o600)
    return path


async def append_line(memory: Memory, note_id: str, line: str) -> Note:
    """Add a line at the end of a note's body through the product's own write (a commit)."""
    note = await memory.get(note_id)
    draft = NoteDraft(type=note.type, title=note.title, note_id=note.id, body=f"{note.body}\n{line}")
    return await memory.write(draft)


@dataclass
class Machine:
    """One simulated machine: an Anamnesis home of its own, a key of its own."""

    name: str
    home: Path
    key: asyncssh.SSHKey

    @property
    def config(self) -> Config:
        return load_config(self.home, {})

    @property
    def memory_dir(self) -> Path:
        return self.home / "memory"

    async def write(self, title: str, body: str, **extra: Any) -> Note:
        async with open_memory(self.config) as memory:
            return await memory.write(NoteDraft(type=extra.pop("type", "semantic"), title=title, body=body, **extra))

    async def append(self, note_id: str, line: str) -> Note:
        """Add a line at the end of a note's body, as a session log grows."""
        async with open_memory(self.config) as memory:
            return await append_line(memory, note_id, line)

    async def sync(self) -> SyncReport:
        return await run_sync(self.config)

    def note_files(self) -> dict[str, str]:
        """Every note file in memory/: path relative to memory/ → text."""
        return {
            p.relative_to(self.memory_dir).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(self.memory_dir.glob("*/*.md"))
        }

    async def git(self, *args: str) -> str:
        result = await anyio.run_process(["git", "-C", str(self.memory_dir), *args])
        return result.stdout.decode().strip()

    async def tree(self) -> str:
        return await self.git("rev-parse", "HEAD^{tree}")

    def set_sync(self, **settings: Any) -> None:
        edit_config(self.home, lambda document: document.update(sync={**document.get("sync", {}), **settings}))


async def make_machine(
    base: Path,
    name: str,
    hub: Hub | None,
    *,
    key: asyncssh.SSHKey | None = None,
    url: str | None = None,
    trust: bool = True,
    authorize: bool = True,
    peer: str = "hub",
) -> Machine:
    """A fresh machine named `name`; with `hub`, already trusting it and configured to sync with it."""
    home = base / name / ".anamnesis"
    await init_home(load_config(home, {"ANAMNESIS_MACHINE_ID": name}).layout, name)
    machine = Machine(name, home, key or asyncssh.generate_private_key("ssh-ed25519"))
    write_client_key(home, machine.key)
    machine.set_sync(**TEST_SYNC_SETTINGS)
    if hub is not None:
        if authorize:
            hub.authorize(machine.key)
        target = url or hub.url()
        if trust:
            port = parse_hub_url(target).port
            add_known_host(home / "known_hosts", host_pattern("127.0.0.1", port), public_line(hub.host_key))
        save_peer(home / "config.json", Peer(name=peer, url=target))
    return machine
