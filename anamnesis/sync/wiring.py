"""Sync over SSH: the one place that binds the SSH transport to the sync use cases.

The core (`operations`, `engine`) takes the transport it is handed and never picks one, so it
can be driven over another (the service's held connections, a test's own). Roots and adapters
that just want "sync this home with its hubs" call these, which hand the core a fresh
`SshTransport`; importing this module loads no asyncssh until a function here runs.
"""

from __future__ import annotations

from typing import Any

from anamnesis.config import Config
from anamnesis.memory import Memory
from anamnesis.sync import operations
from anamnesis.sync.link import HubTransport, LinkOpener
from anamnesis.sync.operations import Confirm, PeerAdded
from anamnesis.sync.report import SyncReport


def ssh_transport(config: Config) -> HubTransport:
    """The SSH transport for `config`'s home: a fresh connection per cycle."""
    from anamnesis.sync.ssh import SshTransport  # asyncssh: loaded only when a sync runs

    return SshTransport(config.layout)


async def run_sync(config: Config, *, memory: Memory | None = None, transport: LinkOpener | None = None) -> SyncReport:
    """One sync cycle with every configured hub (see `operations.run_sync`), over SSH unless
    `transport` says otherwise (the service passes the connections it keeps open)."""
    return await operations.run_sync(config, transport or ssh_transport(config), memory=memory)


async def sync_memory(memory: Memory) -> dict[str, Any]:
    """`run_sync` on an open memory, as the JSON-ready dict an adapter shows (MCP's `memory_sync`)."""
    return (await run_sync(memory.config, memory=memory)).as_dict()


async def add_peer(
    config: Config,
    name: str,
    url: str,
    *,
    confirm: Confirm | None = None,
    fingerprint: str | None = None,
    first_sync: bool = True,
) -> PeerAdded:
    """`operations.add_peer` over SSH: trust the hub's key, create its repository, record it, sync."""
    return await operations.add_peer(
        config, name, url, ssh_transport(config), confirm=confirm, fingerprint=fingerprint, first_sync=first_sync
    )
