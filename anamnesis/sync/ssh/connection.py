"""Connections to a hub with asyncssh: what a connection trusts, how patient it is, typed failures.

Every way git reaches the hub (the shared connection, the bridge process, `peer add`'s checks)
connects through `connect_hub`, so the policy lives in one place: the user's `~/.ssh/config`,
keys and agent, plus a dedicated key at `<home>/ssh/`; strict host keys from `<home>/known_hosts`
and the user's known_hosts, never `known_hosts=None` (asyncssh turns `UserKnownHostsFile none`
into exactly that; we do not); a connect timeout and keepalives always set. A failure leaves as
the error type that says what to do (`HostKeyError`, `AuthRefusedError`, `PeerUnreachableError`),
so nothing downstream has to read the message. asyncssh comes from `sshlib`, its one importer.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from anamnesis.config import Layout
from anamnesis.errors import (
    AnamnesisError,
    AuthRefusedError,
    ConfigError,
    HostKeyError,
    PeerUnreachableError,
    SyncError,
)
from anamnesis.sync.hostkeys import HostKeyProbe, host_pattern, key_fingerprint, known_hosts_path
from anamnesis.sync.peers import HubURL, SyncSettings
from anamnesis.sync.sshlib import asyncssh

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
        raise unreachable(hub, exc, "") from exc
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


def unreachable(hub: HubURL, exc: BaseException, banner: str) -> AnamnesisError:
    """The `PeerUnreachableError` for a connection that failed with `exc`, saying what to check."""
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
        raise AuthRefusedError(
            f"the hub {hub.address} refused this machine's SSH keys. Put this machine's public key "
            "(e.g. ~/.ssh/id_ed25519.pub, or a sync key in ~/.anamnesis/ssh/) in the hub account's "
            "~/.ssh/authorized_keys (peers/README.md shows a git-only entry), or check the user name in the URL."
        ) from exc
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise unreachable(hub, exc, client.banner) from exc
    return conn, client


async def _probe_or_none(layout: Layout, settings: SyncSettings, hub: HubURL) -> HostKeyProbe | None:
    try:
        return await probe_host_key(layout, settings, hub)
    except AnamnesisError:
        return None
