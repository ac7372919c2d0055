"""Faults on the way to the hub: a cut or frozen stream, a hub that is down or silent, a changed
host key, an unknown client key, four syncs at once. Each fails its cycle quickly with an error
that says what happened; local work goes on; the next cycle succeeds with nothing lost and
nothing duplicated."""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import asyncssh
import pytest

from anamnesis.errors import AuthRefusedError, BusyError, HostKeyError, PeerUnreachableError
from anamnesis.sync import fleet_status
from anamnesis.sync.peers import Peer, save_peer
from anamnesis.sync.report import SyncReport
from anamnesis.sync.wiring import add_peer
from tests.hubserver import FaultProxy, Hub, Machine, make_machine

pytestmark = pytest.mark.anyio
WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro", "si", "tu") for b in ("ba", "de", "fi", "go", "hu")]


@pytest.fixture
async def proxy(hub: Hub) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(hub.port).running() as running:
        yield running


async def write_bulky_notes(machine: Machine, count: int = 5) -> set[str]:
    """Notes big enough (≈60 KB each, ≈26 KB compressed) that a push or fetch takes many packets."""
    rng = random.Random(machine.name)
    titles = set()
    for i in range(count):
        body = " ".join(rng.choice(WORDS) + str(rng.randrange(10**6)) for _ in range(5500))
        titles.add((await machine.write(f"Bulky {machine.name} {i}", body)).title)
    return titles


def titles(machine: Machine) -> list[str]:
    return sorted(text.split("\ntitle: ", 1)[1].split("\n", 1)[0] for text in machine.note_files().values())


async def hub_main(hub: Hub) -> str | None:
    result = await anyio.run_process(
        ["git", "--git-dir", str(hub.repo()), "rev-parse", "-q", "--verify", "main"], check=False
    )
    return result.stdout.decode().strip() or None


async def test_a_connection_cut_mid_push_changes_nothing_and_the_next_cycle_pushes(
    tmp_path: Path, hub: Hub, proxy: FaultProxy
) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub, url=hub.url(port=proxy.port))
    desktop = await make_machine(tmp_path, "desktop", hub)
    written = await write_bulky_notes(laptop)
    proxy.cut_after_c2s = 30_000  # past the handshake and the fetch, inside the pack
    with pytest.raises(PeerUnreachableError, match="connection to the hub 'hub' was lost during the push"):
        await laptop.sync()
    assert proxy.cuts == 1
    assert await hub_main(hub) is None  # all or nothing: the hub has no half of it
    fsck = await anyio.run_process(["git", "--git-dir", str(hub.repo()), "fsck"], check=False)
    assert fsck.returncode == 0
    status = await fleet_status(laptop.config)
    assert status.consecutive_failures == 1
    assert "lost during the push" in (status.last_error or "")

    proxy.cut_after_c2s = None
    report = await laptop.sync()
    assert report.pushed
    await desktop.sync()
    assert titles(desktop) == sorted(written)  # each exactly once
    assert (await fleet_status(laptop.config)).consecutive_failures == 0


async def test_a_connection_cut_mid_fetch_fails_the_cycle_and_the_next_one_completes(
    tmp_path: Path, hub: Hub, proxy: FaultProxy
) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub, url=hub.url(port=proxy.port))
    written = await write_bulky_notes(laptop)
    await laptop.sync()
    mine = await desktop.write("Desktop's own note", "written while the hub was out of reach")
    proxy.cut_after_s2c = 30_000
    with pytest.raises(PeerUnreachableError, match="lost during the fetch"):
        await desktop.sync()
    assert await desktop.git("status", "--porcelain") == ""  # committed here, waiting for the hub
    assert await desktop.git("log", "--format=%an", "--", f"semantic/{mine.id}.md") == "desktop"
    proxy.cut_after_s2c = None
    await desktop.sync()
    await laptop.sync()
    expected = sorted([*written, "Desktop's own note"])
    assert titles(desktop) == expected
    assert titles(laptop) == expected


async def test_a_hub_that_stops_answering_mid_fetch_is_given_up_on_by_keepalive(
    tmp_path: Path, hub: Hub, proxy: FaultProxy
) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub, url=hub.url(port=proxy.port))
    desktop.set_sync(keepalive_interval=0.5, keepalive_count=2)
    await write_bulky_notes(laptop, 3)
    await laptop.sync()
    proxy.freeze_after_s2c = 30_000
    with pytest.raises(PeerUnreachableError, match="lost during the fetch"):
        await desktop.sync()
    assert proxy.tripped.is_set()
    proxy.freeze_after_s2c = None
    assert (await desktop.sync()).pulled == 3


async def test_a_hub_that_is_down_fails_fast_and_the_note_is_committed_here(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    await hub.stop()
    note = await laptop.write("Written offline", "the hub was down")
    with pytest.raises(PeerUnreachableError, match=r"cannot reach the hub .*Notes stay safe here"):
        await laptop.sync()
    assert await laptop.git("status", "--porcelain") == ""
    assert note.id in await laptop.git("log", "-1", "--name-only", "--format=")
    await hub.start()  # back on the same port
    assert (await laptop.sync()).pushed
    await desktop.sync()
    assert titles(desktop) == ["Written offline"]


async def test_a_hub_that_accepts_but_never_speaks_times_out(tmp_path: Path) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def hold(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, hold)
        silent = await make_machine(tmp_path, "laptop", None)
        save_peer(silent.home / "config.json", Peer("hub", f"ssh://127.0.0.1:{port}/srv/memory.git"))
        silent.set_sync(connect_timeout=0.5)
        with pytest.raises(PeerUnreachableError, match="timed out"):
            await silent.sync()
        group.cancel_scope.cancel()


async def test_a_changed_host_key_is_refused_until_the_new_fingerprint_is_confirmed(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    await laptop.write("Before the reinstall", "synced once")
    await laptop.sync()
    await hub.stop()
    hub.host_key = asyncssh.generate_private_key("ssh-ed25519")  # the hub was reinstalled
    await hub.start()
    with pytest.raises(HostKeyError, match=re.escape(f"CHANGED: it now presents ssh-ed25519 {hub.fingerprint}")):
        await laptop.sync()
    with pytest.raises(HostKeyError, match="CHANGED"):
        await add_peer(laptop.config, "hub", hub.url(), confirm=None)
    with pytest.raises(HostKeyError, match="not the expected"):
        await add_peer(laptop.config, "hub", hub.url(), fingerprint="SHA256:" + "A" * 43)
    added = await add_peer(laptop.config, "hub", hub.url(), fingerprint=hub.fingerprint)
    assert added.newly_trusted
    assert added.report is not None
    assert added.report.ok


async def test_an_unknown_host_key_is_never_trusted_silently(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub, trust=False)
    with pytest.raises(HostKeyError, match="not trusted yet; run `anamnesis peer add hub ssh://"):
        await laptop.sync()
    assert hub.stats.sessions == []


async def test_a_client_key_the_hub_does_not_know_is_refused_with_the_fix(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub, authorize=False)
    with pytest.raises(AuthRefusedError, match=r"refused this machine's SSH keys.*authorized_keys"):
        await laptop.sync()


async def test_four_syncs_at_once_on_one_machine_lose_nothing_and_leave_nothing_stuck(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    laptop.set_sync(lock_wait=0.05)  # a waiting caller soon says a sync is running
    outcomes: list[SyncReport | BaseException] = []

    async def write_and_sync(i: int) -> None:
        await laptop.write(f"Concurrent {i}", f"note {i}")
        try:
            outcomes.append(await laptop.sync())
        except BusyError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as group:
        for i in range(4):
            group.start_soon(write_and_sync, i)
    assert len(outcomes) == 4
    busy = [o for o in outcomes if isinstance(o, BusyError)]
    assert all("already running" in str(b) for b in busy)
    assert any(isinstance(o, SyncReport) for o in outcomes)
    assert not (laptop.memory_dir / ".git" / "index.lock").exists()
    laptop.set_sync(lock_wait=60)
    assert (await laptop.sync()).ok
    await desktop.sync()
    assert titles(desktop) == [f"Concurrent {i}" for i in range(4)]


async def test_a_sync_killed_inside_the_merge_leaves_a_state_the_next_sync_completes(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    shared = await laptop.write("Shared", "version one")
    await laptop.sync()
    await desktop.sync()
    await laptop.write("Shared", "version two", note_id=shared.id)
    added = await laptop.write("Added on the laptop", "arrives with the merge")
    await laptop.sync()
    await desktop.write("Mine", "written on the desktop meanwhile")  # so the desktop must really merge
    # What a SIGKILL inside the merge step leaves behind: the hub's objects fetched, a private
    # index of the merge, a fast-forward that had written one file of the work tree but not the
    # index (git's index.lock still there) nor moved main.
    await desktop.git("fetch", "-q", str(hub.repo()), "+refs/heads/main:refs/remotes/hub/main")
    added_rel = f"semantic/{added.id}.md"
    (desktop.memory_dir / added_rel).write_text(await desktop.git("show", f"hub/main:{added_rel}") + "\n")
    stale = time.time() - 600
    for name in ("index.lock", "anamnesis-sync-4242-1.index"):
        leftover = desktop.memory_dir / ".git" / name
        leftover.write_text("")
        os.utime(leftover, (stale, stale))

    report = await desktop.sync()

    assert report.ok
    assert report.pushed
    assert report.conflicts == []
    assert sorted(report.recovered_locks) == [".git/anamnesis-sync-4242-1.index", ".git/index.lock"]
    await laptop.sync()
    assert laptop.note_files() == desktop.note_files()
    texts = desktop.note_files()
    assert len(texts) == 3
    assert "version two" in texts[f"semantic/{shared.id}.md"]
    assert await desktop.git("status", "--porcelain") == ""
