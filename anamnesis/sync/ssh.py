"""The SSH transport: asyncssh connections to a hub, and git's ssh program as a bridge to them.

git does the data; this module only gives git a pipe to the hub's `git-upload-pack` and
`git-receive-pack`. Two ways, both through `GIT_SSH_COMMAND` (with `GIT_SSH_VARIANT=ssh`):

- shared (`HubLinkMux`, the default): one asyncssh connection per sync cycle, held by the
  syncing process. git's ssh program is a stdlib-only shim that passes its stdin, stdout and
  stderr over a private Unix socket (`SCM_RIGHTS`); we open a channel on the shared connection
  and splice those descriptors onto it. One handshake per cycle, not one per git command.
- bridge (`python -m anamnesis.sync.git_ssh`): a process per git command with its own
  connection, for platforms without descriptor passing and for a user's own git commands.

Both honour `~/.ssh/config`, keys and the agent, plus a dedicated key at `<home>/ssh/`. Host
keys are strict: the trusted set is `<home>/known_hosts` and the user's known_hosts, never
`known_hosts=None` (asyncssh turns `UserKnownHostsFile none` into exactly that; we do not).
Connect timeout and keepalives are always set. asyncssh comes from `sshlib`, its one importer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import socket
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

import anamnesis
from anamnesis.config import Layout, home_from_env, load_config
from anamnesis.errors import AnamnesisError, ConfigError, HostKeyError, PeerUnreachableError, SyncError
from anamnesis.sync.engine import BRIDGE_MARK, HubLink
from anamnesis.sync.hostkeys import host_pattern, key_fingerprint, known_hosts_path
from anamnesis.sync.peers import HubURL, Peer, SyncSettings, sync_settings
from anamnesis.sync.sshlib import asyncssh

logger = logging.getLogger(__name__)

_PACKAGE_PARENT = str(Path(anamnesis.__file__).resolve().parent.parent)
_SYSTEM_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")


# -- options: one place decides what a connection trusts and how patient it is ---------------


def _dedicated_keys(layout: Layout, settings: SyncSettings) -> list[Path]:
    if settings.identity_file:
        return [Path(os.path.expanduser(settings.identity_file))]
    return [p for p in (layout.home / "ssh" / n for n in ("id_ed25519", "id_ecdsa", "id_rsa")) if p.is_file()]


def trusted_host_files(layout: Layout, from_ssh_config: Sequence[str] | None) -> list[str]:
    """Our known_hosts, then the user's: the files ssh_config names, else ~/.ssh/known_hosts.

    asyncssh reads `UserKnownHostsFile none` as None, which to it means "check nothing"; here
    it only means "no user file": our own file and the system one are still checked.
    """
    paths = [str(known_hosts_path(layout))]
    if from_ssh_config:
        paths += [os.path.expanduser(str(p)) for p in from_ssh_config]
    elif from_ssh_config is not None:  # [] : the option is not set
        paths.append(str(Path.home() / ".ssh" / "known_hosts"))
    paths.append(str(_SYSTEM_KNOWN_HOSTS))
    return [p for p in dict.fromkeys(paths) if os.path.isfile(p)]


async def client_options(layout: Layout, settings: SyncSettings, hub: HubURL) -> asyncssh.SSHClientConnectionOptions:
    """Connection options for `hub`: the user's ssh config first, our policy filling the gaps."""
    if settings.ssh_config is None:
        config_arg: Any = ()
    elif settings.ssh_config == "none":
        config_arg = None
    else:
        config_arg = [os.path.expanduser(settings.ssh_config)]  # noqa: ASYNC240 - no I/O, string work
    common: dict[str, Any] = {
        "host": hub.host,
        "port": hub.port or (),
        "username": hub.user or (),
        "config": config_arg,
        "agent_forwarding": False,
        "x11_forwarding": False,
    }
    try:
        first = await asyncssh.SSHClientConnectionOptions.construct(**common)
    except (OSError, ValueError, asyncssh.Error) as exc:  # a broken ~/.ssh/config, an unreadable key
        raise ConfigError(f"cannot use the SSH settings for {hub.address}: {exc}; check ~/.ssh/config") from exc
    files = trusted_host_files(layout, first.known_hosts)
    extra: dict[str, Any] = {"known_hosts": files or ([], [], [])}  # an empty list means ~/.ssh: no
    if first.connect_timeout is None:
        extra["connect_timeout"] = settings.connect_timeout
    if not first.keepalive_interval:
        extra["keepalive_interval"] = settings.keepalive_interval
        extra["keepalive_count_max"] = settings.keepalive_count
    dedicated = [p for p in _dedicated_keys(layout, settings) if p.is_file()]
    if dedicated:
        try:
            ours = asyncssh.load_keypairs([str(p) for p in dedicated])
        except (OSError, asyncssh.KeyImportError) as exc:
            raise SyncError(f"cannot read the sync key {dedicated[0]}: {exc}; fix or remove it") from exc
        extra["client_keys"] = [*ours, *(first.client_keys or [])]
    options: asyncssh.SSHClientConnectionOptions = await asyncssh.SSHClientConnectionOptions.construct(first, **extra)
    return options


def _trusted_keys_for(options: asyncssh.SSHClientConnectionOptions, host: str, port: int | None) -> list[Any]:
    files = options.known_hosts
    if not files or not isinstance(files, list):
        return []
    try:
        trusted = asyncssh.match_known_hosts(files, host, "", port if port != 22 else None)[0]
    except (OSError, ValueError):
        return []
    return list(trusted)


# -- connecting, with errors that say what to do --------------------------------------------


class _HubClient(asyncssh.SSHClient):
    """Remembers why the connection ended and any banner (Tailscale's check mode sends one)."""

    def __init__(self) -> None:
        self.lost_reason: str | None = None
        self.banner = ""

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_reason = str(exc) if exc else "closed"

    def auth_banner_received(self, msg: str, lang: str) -> None:
        self.banner += msg


@dataclass(frozen=True, slots=True)
class HostKeyProbe:
    """The key a hub presented, and whether this home already trusts it."""

    host: str
    port: int | None
    pattern: str  # known_hosts name for host and port
    public_key: str  # "ssh-ed25519 AAAA…"
    algorithm: str
    fingerprint: str
    status: str  # "trusted" | "unknown" | "changed"


async def probe_host_key(layout: Layout, settings: SyncSettings, hub: HubURL) -> HostKeyProbe:
    """Fetch the hub's host key (key exchange only, no login) and compare it with the trusted set."""
    options = await client_options(layout, settings, hub)
    host = options.host_key_alias or options.host
    port = options.port if options.port != 22 else None
    trusted = _trusted_keys_for(options, host, port)
    algs: Any = ()
    try:
        with anyio.fail_after((options.connect_timeout or settings.connect_timeout) + 5):
            key = await asyncssh.get_server_host_key(options.host, options.port, options=options)
            if key is not None and trusted and key not in trusted:
                # The hub may hold several keys; ask for the kind we already trust before crying "changed".
                algs = [a.decode() if isinstance(a, bytes) else a for k in trusted for a in k.sig_algorithms]
                again = await asyncssh.get_server_host_key(
                    options.host, options.port, options=options, server_host_key_algs=algs
                )
                key = again if again is not None and again in trusted else key
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise _unreachable(hub, exc, "") from exc
    if key is None:
        raise HostKeyError(f"{hub.address} did not present a host key; Anamnesis needs one to verify the hub")
    public = key.export_public_key("openssh").decode().split()
    line = f"{public[0]} {public[1]}"
    status = "trusted" if key in trusted else ("changed" if trusted else "unknown")
    return HostKeyProbe(
        host=host,
        port=port,
        pattern=host_pattern(host, port),
        public_key=line,
        algorithm=key.get_algorithm(),
        fingerprint=key_fingerprint(line),
        status=status,
    )


def _unreachable(hub: HubURL, exc: BaseException, banner: str) -> AnamnesisError:
    if isinstance(exc, TimeoutError):
        what = "timed out (no SSH answer)"
    elif isinstance(exc, socket.gaierror):
        what = f"unknown host name ({exc.strerror})"
    elif isinstance(exc, OSError):
        what = exc.strerror or str(exc)
    else:
        what = str(exc) or type(exc).__name__
    hint = "Is the hub on and reachable (Tailscale up, sshd running)?"
    if "tailscale" in banner.lower():
        hint = "Tailscale SSH asks for a browser check; set the hub's SSH ACL action to accept (see peers/README.md)."
    return PeerUnreachableError(
        f"cannot reach the hub {hub.address}: {what}. {hint} Notes stay safe here; the next sync retries."
    )


async def connect_hub(
    layout: Layout, settings: SyncSettings, hub: HubURL, peer_name: str = "NAME"
) -> tuple[asyncssh.SSHClientConnection, _HubClient]:
    """An authenticated connection to `hub`; typed errors that say what to do otherwise."""
    options = await client_options(layout, settings, hub)
    client = _HubClient()
    add_again = f"anamnesis peer add {peer_name} {hub.url}"
    try:
        # asyncssh's connect_timeout is the first line; this backstop also covers a ProxyCommand
        with anyio.fail_after((options.connect_timeout or settings.connect_timeout) + 5):
            conn = await asyncssh.connect(options.host, options.port, options=options, client_factory=lambda: client)
    except asyncssh.HostKeyNotVerifiable as exc:
        host = options.host_key_alias or options.host
        port = options.port if options.port != 22 else None
        if _trusted_keys_for(options, host, port):
            probe = await _probe_or_none(layout, settings, hub)
            shown = f": it now presents {probe.algorithm} {probe.fingerprint}" if probe else ""
            raise HostKeyError(
                f"the host key of {hub.address} has CHANGED{shown}. Either the hub was reinstalled or "
                "someone is intercepting the connection. Check the key on the hub with "
                "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`; only if it matches, trust it with "
                f"`{add_again} --fingerprint {probe.fingerprint if probe else 'SHA256:…'}`."
            ) from exc
        raise HostKeyError(
            f"the host key of {hub.address} is not trusted yet; run `{add_again}` to see its fingerprint and confirm it"
        ) from exc
    except asyncssh.PermissionDenied as exc:
        raise SyncError(
            f"the hub {hub.address} refused this machine's SSH keys. Put this machine's public key "
            "(e.g. ~/.ssh/id_ed25519.pub, or a sync key in ~/.anamnesis/ssh/) in the hub account's "
            "~/.ssh/authorized_keys (peers/README.md shows a git-only entry), or check the user name in the URL."
        ) from exc
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise _unreachable(hub, exc, client.banner) from exc
    return conn, client


async def _probe_or_none(layout: Layout, settings: SyncSettings, hub: HubURL) -> HostKeyProbe | None:
    try:
        return await probe_host_key(layout, settings, hub)
    except AnamnesisError:
        return None


# -- the hub's repository ----------------------------------------------------------------------

_SAFE_HUB_CONFIG = (
    ("receive.denyNonFastForwards", "true"),  # nobody rewrites what others already have
    ("receive.denyDeletes", "true"),
    ("receive.fsckObjects", "true"),
    ("core.logAllRefUpdates", "true"),  # a bare repo keeps no reflog unless asked
)


def _sq(text: str) -> str:
    """Quote like git does for the path argument of git-upload-pack (git-shell accepts this)."""
    return "'" + text.replace("'", "'\\''") + "'"


def _shell_path(path: str) -> str:
    """`path` for a POSIX shell, with a leading ~ or ~/ left for the shell to expand."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def init_commands(path: str) -> str:
    """The shell commands that create the hub's bare repository with safe settings."""
    p = _shell_path(path)
    steps = [f"git init --bare -q {p}", f"git --git-dir={p} symbolic-ref HEAD refs/heads/main"]
    steps += [f"git --git-dir={p} config {key} {value}" for key, value in _SAFE_HUB_CONFIG]
    return " && ".join(steps)


async def hub_repo_exists(conn: asyncssh.SSHClientConnection, hub: HubURL, timeout: float) -> bool:
    """Ask the hub's git-upload-pack for the repository (a flush packet ends the talk politely)."""
    with anyio.fail_after(timeout):
        result = await conn.run(f"git-upload-pack {_sq(hub.path)}", input=b"0000", encoding=None, check=False)
    if result.exit_status == 0:
        return True
    stderr = (result.stderr or b"").decode("utf-8", "replace") if isinstance(result.stderr, bytes) else ""
    if "does not appear to be a git repository" in stderr or "not a git repository" in stderr.lower():
        return False
    raise SyncError(
        f"the hub {hub.address} could not run git-upload-pack (exit {result.exit_status}): {stderr.strip()[:300]}. "
        "Is git installed on the hub and on the account's PATH?"
    )


def main_in_advertisement(data: bytes) -> str | None:
    """The object id of refs/heads/main in a protocol v0 ref advertisement ("" when absent).

    None when the answer is not what we expect (another protocol version, a short read): the
    caller then fetches as usual.
    """
    position = 0
    first = True
    while position + 4 <= len(data):
        try:
            length = int(data[position : position + 4], 16)
        except ValueError:
            return None
        if length == 0:
            return ""
        if length < 4 or position + length > len(data):
            return None
        payload = data[position + 4 : position + length].split(b"\0", 1)[0].rstrip(b"\n")
        position += length
        if first and payload.startswith(b"version "):
            return None
        first = False
        oid, _, name = payload.partition(b" ")
        if name == b"refs/heads/main":
            return oid.decode("ascii", errors="replace")
    return None


async def hub_main(conn: asyncssh.SSHClientConnection, hub: HubURL, timeout: float) -> str | None:
    """Where the hub's main is, from one exec on the open connection (no git process here)."""
    try:
        with anyio.fail_after(timeout):
            result = await conn.run(f"git-upload-pack {_sq(hub.path)}", input=b"0000", encoding=None, check=False)
    except (OSError, TimeoutError, asyncssh.Error):
        return None
    if result.exit_status != 0 or not isinstance(result.stdout, bytes):
        return None
    return main_in_advertisement(result.stdout)


async def ensure_hub_repo(conn: asyncssh.SSHClientConnection, hub: HubURL, timeout: float = 60.0) -> bool:
    """Create the bare repository on the hub when it is missing; True when it was created."""
    if await hub_repo_exists(conn, hub, timeout):
        return False
    with anyio.fail_after(timeout):
        result = await conn.run(init_commands(hub.path), encoding="utf-8", errors="replace", check=False)
    if result.exit_status == 0 and await hub_repo_exists(conn, hub, timeout):
        return True
    commands = init_commands(hub.path).replace(" && ", " &&\n    ")
    raise SyncError(
        f"there is no repository at {hub.path} on {hub.address}, and this account cannot create one "
        f"({str(result.stderr or '').strip()[:200] or f'exit {result.exit_status}'}); that is expected for an "
        f"account restricted to git. Create it once on the hub as that user:\n    {commands}\n"
        "then run `anamnesis peer add` again."
    )


# -- the shared connection: git's ssh program hands us its pipes --------------------------------

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
    sys.stderr.write("anamnesis-ssh: the sync's SSH connection is gone (%s)\n" % exc)
    os._exit(255)
os._exit(int(rc) if rc.strip().isdigit() else 255)
"""


def can_share_connection() -> bool:
    return os.name == "posix" and hasattr(socket, "send_fds")


def parse_ssh_argv(argv: Sequence[str]) -> tuple[str | None, int | None, str, str]:
    """(user, port, host, command) from the arguments git gives its ssh program."""
    port: int | None = None
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        option = argv[i]
        if option in ("-p", "-o", "-l", "-i", "-F"):
            i += 1
            if option == "-p" and i < len(argv):
                port = int(argv[i])
        elif option not in ("-G", "-4", "-6", "-T", "-x", "-a"):
            raise ValueError(f"unsupported ssh option {option}")
        i += 1
    if i >= len(argv):
        raise ValueError("no host given")
    host, user = argv[i], None
    if "@" in host:
        user, host = host.rsplit("@", 1)
    return user, port, host, " ".join(argv[i + 1 :])


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
        def tell_git(text: str) -> None:
            with contextlib.suppress(OSError):
                os.write(fds[2], f"{BRIDGE_MARK} {text}\n".encode())

        try:
            _user, port, host, command = parse_ssh_argv(request["argv"])
        except ValueError as exc:
            tell_git(str(exc))
            return 255
        if host.lower() != self.hub.host.lower() or (port or None) != (self.hub.port or None):
            tell_git(f"this connection goes to {self.hub.address}, not {host}")
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
            tell_git(f"the hub refused a channel: {exc.reason}")
            return 255
        except (OSError, asyncssh.Error) as exc:
            tell_git(f"connection to the hub lost: {exc}")
            return 255
        result = await process.wait()
        if result.exit_status is None or result.exit_status < 0:
            tell_git("connection to the hub lost (the remote command ended without a status)")
            return 255
        return int(result.exit_status)


def bridge_env(layout: Layout) -> dict[str, str]:
    """git's ssh program as a process per command (`python -m anamnesis.sync.git_ssh`)."""
    return {
        "GIT_SSH_COMMAND": f"{shlex.quote(sys.executable)} -m anamnesis.sync.git_ssh",
        "GIT_SSH_VARIANT": "ssh",
        "ANAMNESIS_HOME": str(layout.home),
        "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")])),
    }


@asynccontextmanager
async def open_hub_link(layout: Layout, settings: SyncSettings, peer: Peer) -> AsyncIterator[HubLink]:
    """Connect to `peer` (typed errors come from here, before git runs) and give git a way in."""
    hub = peer.hub
    conn, client = await connect_hub(layout, settings, hub, peer.name)
    async with conn:
        if not settings.shared_connection or not can_share_connection():
            conn.close()
            yield HubLink(env=bridge_env(layout))
            return

        async def main_now() -> str | None:
            return await hub_main(conn, hub, settings.git_timeout)

        async with HubLinkMux(conn, hub).serving() as mux:
            yield HubLink(env=mux.env(), lost=lambda: client.lost_reason, hub_main=main_now)


# -- the bridge: `python -m anamnesis.sync.git_ssh` ------------------------------------------------


def _stdin_source() -> Any:
    mode = os.fstat(0).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return os.dup(0)
    if stat.S_ISREG(mode):  # epoll cannot watch a regular file
        return os.fdopen(os.dup(0), "rb")
    return asyncssh.DEVNULL


async def bridge(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run one git command on the hub named in `argv`, wired to our stdin/stdout/stderr."""
    try:
        user, port, host, command = parse_ssh_argv(argv)
    except ValueError as exc:
        print(f"{BRIDGE_MARK} {exc}", file=sys.stderr)
        return 255
    if "-G" in argv:
        return 0
    try:
        config = load_config(home_from_env(environ), environ)
        hub = HubURL(url=f"ssh://{host}", host=host, path="", user=user, port=port)
        conn, _client = await connect_hub(config.layout, sync_settings(config), hub)
        async with conn:
            env = {"GIT_PROTOCOL": environ["GIT_PROTOCOL"]} if environ.get("GIT_PROTOCOL") else {}
            process = await conn.create_process(
                command, env=env, encoding=None, stdin=_stdin_source(), stdout=os.dup(1), stderr=os.dup(2)
            )
            result = await process.wait()
    except AnamnesisError as exc:
        print(f"{BRIDGE_MARK} {exc}", file=sys.stderr)
        return 255
    except (OSError, asyncssh.Error) as exc:
        print(f"{BRIDGE_MARK} connection to the hub lost: {exc}", file=sys.stderr)
        return 255
    if result.exit_status is None or result.exit_status < 0:
        print(f"{BRIDGE_MARK} connection to the hub lost (no exit status)", file=sys.stderr)
        return 255
    return int(result.exit_status)


def bridge_main() -> None:
    sys.exit(anyio.run(bridge, sys.argv[1:], dict(os.environ), backend="asyncio"))
