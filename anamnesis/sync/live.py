"""Sync as things happen: hub connections kept open, the hub's main checked often, changes pushed soon.

While the service runs it holds one SSH connection per hub (`HubConnections`). Every
`check_interval` seconds (5 by default) `listen_to_hub` asks each hub where its main is: one
exec of `git-upload-pack` on the open connection, read up to its ref advertisement and ended
with a flush packet (a few hundred bytes, no handshake, no git process here). Only when main
is not where this machine last fetched it does the sync loop wake up and fetch. A hub that
does not answer is asked again less and less often (up to once a minute), on a new connection.

`push_on_change` watches memory/: once it has been quiet for `push_delay` seconds and this
machine has commits or edits the hub lacks, the sync loop wakes up and pushes, so a burst of
writes is one push. Syncs use the same connections, so a cycle costs no handshake either.

`sync_reporting` is what `anamnesis sync --progress` runs for the session-start hook: one
connection, a ref check reported as `news` or `none`, then the sync over the same connection,
then `done`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread

from anamnesis.autosync import record_heard
from anamnesis.config import Config, Layout
from anamnesis.errors import AnamnesisError
from anamnesis.gitrepo import BRANCH
from anamnesis.memory import open_memory
from anamnesis.notes import NOTE_TYPES
from anamnesis.sync.link import HubLink
from anamnesis.sync.peers import Peer, SyncSettings, configured_peers, sync_settings
from anamnesis.sync.repo import SyncRepo
from anamnesis.sync.report import SyncReport
from anamnesis.sync.ssh import HubLinkMux, ask_hub_main, can_share_connection, connect_hub, open_hub_link

logger = logging.getLogger(__name__)

MAX_BACKOFF = 60.0  # an unreachable hub is retried at least this often
WATCH_POLL = 0.5  # seconds between looks at memory/'s directories


class HubConnections:
    """One SSH connection per hub, opened on first use and again after it is lost."""

    def __init__(self, config: Config) -> None:
        self.layout: Layout = config.layout
        try:
            self.settings: SyncSettings = sync_settings(config)
        except AnamnesisError:  # a broken `sync` block: defaults until the watcher reads a good one
            self.settings = SyncSettings()
        self._held: dict[str, tuple[Any, Any, str]] = {}  # peer name → (connection, client, url)
        self._lock = anyio.Lock()

    async def __aenter__(self) -> HubConnections:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            for name in list(self._held):
                await self._drop(name)

    async def _drop(self, name: str) -> None:
        held = self._held.pop(name, None)
        if held is not None:
            held[0].close()
            with anyio.move_on_after(2), contextlib.suppress(Exception):
                await held[0].wait_closed()

    async def _connection(self, peer: Peer) -> tuple[Any, Any]:
        async with self._lock:
            held = self._held.get(peer.name)
            if held is not None and held[2] == peer.url and held[1].lost_reason is None:
                return held[0], held[1]
            await self._drop(peer.name)
            conn, client = await connect_hub(self.layout, self.settings, peer.hub, peer.name)
            self._held[peer.name] = (conn, client, peer.url)
            return conn, client

    async def hub_main(self, peer: Peer) -> str | None:
        """Where `peer`'s main is ("" when it has none; None when its answer could not be read).

        `PeerUnreachableError` (and the other connect errors) when it cannot be asked; the
        connection is then dropped, and the next call connects afresh.
        """
        conn, _client = await self._connection(peer)
        try:
            return await ask_hub_main(conn, peer.hub, self.settings.connect_timeout)
        except AnamnesisError:
            await self._drop(peer.name)
            raise

    @asynccontextmanager
    async def open_link(self, peer: Peer, settings: SyncSettings) -> AsyncIterator[HubLink]:
        """A link for the sync engine over the held connection (git's commands share it): a `LinkOpener`."""
        if not settings.shared_connection or not can_share_connection():
            async with open_hub_link(self.layout, settings, peer) as fresh:
                yield fresh
            return
        conn, client = await self._connection(peer)
        hub, timeout = peer.hub, settings.git_timeout

        async def main_now() -> str | None:
            try:
                return await ask_hub_main(conn, hub, timeout)
            except AnamnesisError:
                return None

        async with HubLinkMux(conn, hub).serving() as mux:
            yield HubLink(env=mux.env(), lost=lambda: client.lost_reason, hub_main=main_now)


def memory_stamp(layout: Layout) -> str:
    """The mtimes of memory/ and its type directories: a note added, replaced or removed moves one."""
    stamps = []
    for directory in (layout.memory_dir, *(layout.memory_dir / t for t in NOTE_TYPES)):
        try:
            stamps.append(os.stat(directory).st_mtime_ns)
        except OSError:
            stamps.append(0)
    return ",".join(map(str, stamps))


async def has_unsent(repo: SyncRepo, peers: Sequence[Peer]) -> bool:
    """Whether memory/ holds edits or commits that some hub (as last fetched) lacks."""
    if await repo.status_paths():
        return True
    head = await repo.rev("HEAD")
    if head is None:
        return False
    for peer in peers:
        theirs = await repo.rev(f"refs/remotes/{peer.name}/{BRANCH}")
        if theirs is None or (head != theirs and not await repo.is_ancestor(head, theirs)):
            return True
    return False


async def _peers_and_settings(config: Config) -> tuple[list[Peer], SyncSettings]:
    from anamnesis.sync import current_config

    current = await anyio.to_thread.run_sync(current_config, config)
    return configured_peers(current), sync_settings(current)


def _idle() -> bool:
    return False


async def listen_to_hub(
    config: Config, connections: HubConnections, wake: Callable[[], None], busy: Callable[[], bool] = _idle
) -> None:
    """Ask every hub where its main is, every `check_interval`; wake the sync when one moved.

    Not while `busy()` (a cycle is running): its fetch is about to move the local ref, and a
    check in between would wake a second, empty cycle.
    """
    repo = SyncRepo(config.layout.memory_dir, config.machine_id)
    failures = 0
    while True:
        delay = connections.settings.check_interval
        try:
            if busy():
                await anyio.sleep(delay)
                continue
            peers, settings = await _peers_and_settings(config)
            connections.settings = settings
            delay = settings.check_interval
            heard: dict[str, str] = {}
            for peer in peers:
                try:
                    main = await connections.hub_main(peer)
                except AnamnesisError as exc:
                    failures += 1
                    logger.info("hub %s not reached: %s", peer.name, exc)
                    continue
                if main is None:
                    continue
                heard[peer.name] = main
                if main != (await repo.rev(f"refs/remotes/{peer.name}/{BRANCH}") or "") and not busy():
                    logger.info("hub %s moved to %s: syncing", peer.name, main[:10])
                    wake()
            if heard:
                failures = 0
                await anyio.to_thread.run_sync(record_heard, config.layout, heard)
        except AnamnesisError as exc:  # a broken config.json: look again later
            logger.warning("cannot check the hub: %s", exc)
        if failures:
            delay = min(MAX_BACKOFF, delay * 2 ** min(failures, 6))
        await anyio.sleep(delay)


async def push_on_change(
    config: Config, wake: Callable[[], None], busy: Callable[[], bool] = _idle, poll: float = WATCH_POLL
) -> None:
    """Wake the sync once memory/ changed and then stayed quiet for `push_delay`, if a hub lacks it.

    While `busy()` the decision waits: the running cycle may carry the change (or make it).
    """
    repo = SyncRepo(config.layout.memory_dir, config.machine_id)
    stamp = await anyio.to_thread.run_sync(memory_stamp, config.layout)
    changed_at: float | None = None
    while True:
        await anyio.sleep(poll)
        now = await anyio.to_thread.run_sync(memory_stamp, config.layout)
        if now != stamp:
            stamp, changed_at = now, anyio.current_time()
            continue
        if changed_at is None or busy():
            continue
        try:
            peers, settings = await _peers_and_settings(config)
        except AnamnesisError as exc:
            logger.warning("cannot read the sync settings: %s", exc)
            changed_at = None
            continue
        if anyio.current_time() - changed_at < settings.push_delay:
            continue
        changed_at = None
        if peers and await has_unsent(repo, peers):
            logger.info("notes changed here: syncing")
            wake()


async def sync_reporting(config: Config, tell: Callable[[str], None]) -> SyncReport:
    """Check the hubs, tell `news` or `none`, sync over the same connections, tell `done`.

    `failed` when no hub could be reached (then the error is raised) or the sync failed.
    """
    peers, _settings = await _peers_and_settings(config)
    repo = SyncRepo(config.layout.memory_dir, config.machine_id)
    async with HubConnections(config) as connections:
        news, reached, first_error = False, False, None
        for peer in peers:
            try:
                main = await connections.hub_main(peer)
            except AnamnesisError as exc:
                first_error = first_error or exc
                continue
            reached = True
            if main is None or main != (await repo.rev(f"refs/remotes/{peer.name}/{BRANCH}") or ""):
                news = True
        if first_error is not None and not reached:
            tell(f"failed {first_error}")
            raise first_error
        tell("news" if news else "none")
        from anamnesis.sync.operations import run_sync

        try:
            async with open_memory(config) as memory:
                report = await run_sync(config, connections, memory=memory)
                if report.changed_paths:
                    await memory.ensure_fresh(quick=True)  # records the stamp: hooks read without catching up
        except AnamnesisError as exc:
            tell(f"failed {exc}")
            raise
    tell("done")
    return report
