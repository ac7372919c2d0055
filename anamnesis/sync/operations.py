"""The sync use cases: one cycle, the hubs this machine syncs with, trust on first use.

Each takes the transport it reaches hubs with (`LinkOpener`, or `HubTransport` for `peer add`)
and never picks one: the callers get these bound to SSH from `anamnesis.sync.wiring`. The
ones that need no transport are re-exported by the package (`from anamnesis.sync import
list_peers`), lazily, so that importing a light module of the package (`peers`, `quickcheck`)
does not load the engine and the index.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anyio.to_thread

from anamnesis.config import Config, reload_config
from anamnesis.errors import AnamnesisError, ConfigError, HostKeyError, NoHubError
from anamnesis.gitrepo import GitRepo
from anamnesis.home import require_home
from anamnesis.memory import Memory, open_memory
from anamnesis.sync.engine import NO_HUB, SyncEngine
from anamnesis.sync.hostkeys import HostKeyProbe, add_known_host, known_hosts_path, normalize_fingerprint
from anamnesis.sync.link import HubTransport, LinkOpener
from anamnesis.sync.peers import (
    Peer,
    check_peer_name,
    configured_peers,
    delete_peer,
    parse_hub_url,
    save_peer,
    sync_settings,
)
from anamnesis.sync.report import SyncReport

Confirm = Callable[[HostKeyProbe], Awaitable[bool]]


async def run_sync(config: Config, transport: LinkOpener, *, memory: Memory | None = None) -> SyncReport:
    """One sync cycle with every configured hub, reached through `transport`. Pass `memory`
    when one is already open.

    The hubs are read from config.json again each time, so a long-lived process (the service,
    an MCP server) follows `anamnesis peer add/remove` run in another terminal.
    """
    config = await anyio.to_thread.run_sync(current_config, config)
    peers = configured_peers(config)
    if not peers:
        raise NoHubError(NO_HUB)
    settings = sync_settings(config)
    async with AsyncExitStack() as stack:
        if memory is None:
            memory = await stack.enter_async_context(open_memory(config))
        return await SyncEngine(memory, settings, transport).run(peers)


def current_config(config: Config) -> Config:
    """`config` with config.json as it is on disk now; the environment still wins (`reload_config`)."""
    return reload_config(config)


@dataclass(frozen=True, slots=True)
class PeerAdded:
    """What `add_peer` did, step by step, for the CLI to tell the user."""

    peer: Peer
    fingerprint: str
    algorithm: str
    newly_trusted: bool
    created_repo: bool
    replaced: Peer | None
    report: SyncReport | None
    sync_error: AnamnesisError | None


async def add_peer(
    config: Config,
    name: str,
    url: str,
    transport: HubTransport,
    *,
    confirm: Confirm | None = None,
    fingerprint: str | None = None,
    first_sync: bool = True,
) -> PeerAdded:
    """Trust the hub's host key, create its repository if missing, record it, run the first sync.

    The key is trusted when it already is, when it matches `fingerprint`, or when `confirm`
    (shown the key) says yes; a changed key needs `fingerprint`. Nothing is recorded unless the
    hub is reachable, trusted and has a repository. A failed first sync leaves the peer recorded
    (its error is in the result): the next sync retries.
    """
    require_home(config.layout)
    check_peer_name(name)
    hub = parse_hub_url(url)
    settings = sync_settings(config)
    probe = await transport.probe_host_key(hub, settings)
    newly_trusted = await _decide_trust(probe, hub.address, name, url, confirm, fingerprint)
    if newly_trusted:
        path = known_hosts_path(config.layout)
        await anyio.to_thread.run_sync(
            lambda: add_known_host(path, probe.pattern, probe.public_key, replace=probe.status == "changed")
        )
    created = await transport.ensure_hub_repo(hub, name, settings)
    previous = {p.name: p for p in configured_peers(config)}.get(name)
    peer = Peer(name=name, url=hub.url, host_key=probe.fingerprint)
    await anyio.to_thread.run_sync(save_peer, config.layout.config_path, peer)
    updated = await anyio.to_thread.run_sync(current_config, config)
    report: SyncReport | None = None
    error: AnamnesisError | None = None
    if first_sync:
        try:
            report = await run_sync(updated, transport)
        except AnamnesisError as exc:
            error = exc
    return PeerAdded(
        peer=peer,
        fingerprint=probe.fingerprint,
        algorithm=probe.algorithm,
        newly_trusted=newly_trusted,
        created_repo=created,
        replaced=previous if previous is not None and previous.url != peer.url else None,
        report=report,
        sync_error=error,
    )


async def _decide_trust(
    probe: HostKeyProbe, address: str, name: str, url: str, confirm: Confirm | None, fingerprint: str | None
) -> bool:
    """True when the key must be written to known_hosts now; `HostKeyError` when it may not be."""
    shown = f"{address} presents {probe.algorithm} key {probe.fingerprint}"
    if fingerprint is not None:
        if normalize_fingerprint(fingerprint) != probe.fingerprint:
            raise HostKeyError(
                f"{shown}, not the expected {normalize_fingerprint(fingerprint)}; nothing was changed. "
                "Compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on the hub."
            )
        return probe.status != "trusted"
    if probe.status == "trusted":
        return False
    if probe.status == "changed":
        raise HostKeyError(
            f"the host key of {address} has CHANGED: it {shown.split(' ', 1)[1]}. Either the hub was reinstalled "
            "or someone is intercepting the connection. Check on the hub with "
            "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`; if it matches, run "
            f"`anamnesis peer add {name} {url} --fingerprint {probe.fingerprint}`."
        )
    if confirm is None:
        raise HostKeyError(
            f"{shown}, which is not trusted yet, and there is no terminal to ask. Check it on the hub with "
            f"`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`, then pass `--fingerprint {probe.fingerprint}`."
        )
    if not await confirm(probe):
        raise HostKeyError(f"the host key of {address} was not confirmed; nothing was changed")
    return True


async def remove_peer(config: Config, name: str) -> Peer:
    """Forget a hub: its config record and its git remote (the hub itself is untouched)."""
    removed = await anyio.to_thread.run_sync(delete_peer, config.layout.config_path, name)
    if removed is None:
        raise ConfigError(f"no peer named {name!r}; `anamnesis peer list` shows the peers")
    repo = GitRepo(config.layout.memory_dir, config.machine_id)
    if await repo.is_repo():
        await repo.run("remote", "remove", name, check=False)
    return removed


def list_peers(config: Config) -> list[Peer]:
    """The hubs this machine syncs with, in order."""
    return configured_peers(config)
