"""`SshTransport`: the SSH adapter as the sync core sees it (the `HubTransport` protocol).

The engine asks a transport for a link to a hub for one cycle; `peer add` also asks it for
the hub's host key and for the hub's repository. This connects first, so the typed errors
(`HostKeyError`, `AuthRefusedError`, `PeerUnreachableError`) come from here before git runs,
then gives git the shared connection, or the bridge process where that cannot work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from anamnesis.config import Layout
from anamnesis.sync.hostkeys import HostKeyProbe
from anamnesis.sync.link import HubLink
from anamnesis.sync.peers import HubURL, Peer, SyncSettings
from anamnesis.sync.ssh.bridge import bridge_env
from anamnesis.sync.ssh.connection import connect_hub, probe_host_key
from anamnesis.sync.ssh.hubrepo import ensure_hub_repo, hub_main
from anamnesis.sync.ssh.mux import HubLinkMux, can_share_connection


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


class SshTransport:
    """Reaches hubs over SSH with a fresh connection per cycle, trusting what `layout`'s home trusts."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def open_link(self, peer: Peer, settings: SyncSettings) -> AbstractAsyncContextManager[HubLink]:
        return open_hub_link(self.layout, settings, peer)

    async def probe_host_key(self, hub: HubURL, settings: SyncSettings) -> HostKeyProbe:
        return await probe_host_key(self.layout, settings, hub)

    async def ensure_hub_repo(self, hub: HubURL, peer_name: str, settings: SyncSettings) -> bool:
        conn, _client = await connect_hub(self.layout, settings, hub, peer_name)
        async with conn:
            created = await ensure_hub_repo(conn, hub, settings.connect_timeout + 30)
        return created
