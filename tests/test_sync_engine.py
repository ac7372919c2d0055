"""Sync cycles between simulated machines through a real SSH hub (asyncssh server, real git)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import anyio
import pytest

from anamnesis.errors import SyncError
from anamnesis.memory import open_memory
from anamnesis.search import SearchFilters
from anamnesis.sync import fleet_status
from anamnesis.sync.hostkeys import add_known_host, host_pattern
from anamnesis.sync.peers import Peer, save_peer
from anamnesis.sync.report import SyncReport
from anamnesis.sync.wiring import run_sync
from tests.hubserver import Hub, Machine, make_machine, public_line, running_hub

pytestmark = pytest.mark.anyio
SECRET = "ghp_R8x2Lq9ZtV4mN7pK1sW3yB6cD0fH5jE2aG8u"


async def found(machine: Machine, words: str) -> list[str]:
    async with open_memory(machine.config) as memory:
        return [hit.title for hit in await memory.search(words, SearchFilters())]


async def test_note_written_on_laptop_is_found_on_desktop_after_sync(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    await laptop.write("Friday deploys", "We never deploy on Fridays; the on-call rotation is thin.")
    first = await laptop.sync()
    assert first.ok
    assert first.pushed
    await desktop.sync()
    assert await found(desktop, "deploy fridays") == ["Friday deploys"]
    log = await desktop.git("log", "--format=%an", "--", "semantic")
    assert "laptop" in log.split()  # commits say which machine wrote them


async def test_one_ssh_connection_serves_every_git_command_of_a_cycle(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    await laptop.write("Shared connection", "One handshake per cycle.")
    connections, sessions = hub.stats.connections, len(hub.stats.sessions)
    report = await laptop.sync()
    assert report.pushed
    assert hub.stats.connections - connections == 1
    assert len(hub.stats.sessions) - sessions == 2  # upload-pack (fetch) and receive-pack (push)


async def test_the_bridge_process_syncs_when_the_connection_is_not_shared(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    for machine in (laptop, desktop):
        machine.set_sync(shared_connection=False)
    await laptop.write("Bridge mode", "git runs python -m anamnesis.sync.git_ssh for each command.")
    assert (await laptop.sync()).pushed
    await desktop.sync()
    assert await found(desktop, "bridge mode") == ["Bridge mode"]


async def test_the_users_ssh_config_alias_and_identity_file_are_honoured(
    tmp_path: Path, hub: Hub, isolated_env: Path
) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub, url=f"ssh://myhub{hub.root}/memory.git")
    ssh_dir = isolated_env / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    key = laptop.home / "ssh" / "id_ed25519"
    key.rename(ssh_dir / "hub_key")  # only ~/.ssh/config says where the key is
    (ssh_dir / "config").write_text(
        f"Host myhub\n  HostName 127.0.0.1\n  Port {hub.port}\n  IdentityFile {ssh_dir / 'hub_key'}\n"
        "  IdentitiesOnly yes\n"
    )
    (ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{hub.port} {public_line(hub.host_key)}\n")
    (laptop.home / "known_hosts").unlink()  # trusted through the user's own known_hosts
    laptop.set_sync(ssh_config=None)
    await laptop.write("Via an alias", "Host myhub in ~/.ssh/config")
    assert (await laptop.sync()).pushed


async def test_an_idle_cycle_commits_nothing_and_pushes_nothing(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    await laptop.write("Idle", "Nothing changes after this.")
    await laptop.sync()
    head = await laptop.git("rev-parse", "HEAD")
    hub_head = (await anyio.run_process(["git", "--git-dir", str(hub.repo()), "rev-parse", "main"])).stdout
    for _ in range(2):
        report = await laptop.sync()
        assert not report.pushed
        assert not report.fleet_published
    assert await laptop.git("rev-parse", "HEAD") == head
    assert (await anyio.run_process(["git", "--git-dir", str(hub.repo()), "rev-parse", "main"])).stdout == hub_head


async def test_three_machines_converge_syncing_in_turns_and_at_once(tmp_path: Path, hub: Hub) -> None:
    machines = [await make_machine(tmp_path, name, hub) for name in ("laptop", "desktop", "server")]
    for round_ in range(2):
        for machine in machines:
            await machine.write(f"{machine.name} in turns {round_}", f"zebra{machine.name}{round_} was learned here.")
            await machine.sync()
    for machine in machines:
        await machine.write(f"{machine.name} at once", f"yak{machine.name} was learned at the same moment.")
    reports: list[SyncReport] = []

    async def sync(machine: Machine) -> None:
        reports.append(await machine.sync())

    async with anyio.create_task_group() as group:
        for machine in machines:
            group.start_soon(sync, machine)
    assert all(r.ok and r.pushed for r in reports)  # every race lost was retried and won
    for machine in machines:  # one more round so the first pushers get the last ones
        await machine.sync()
    trees = {await m.tree() for m in machines}
    assert len(trees) == 1
    files = [m.note_files() for m in machines]
    assert files[0] == files[1] == files[2]
    assert len(files[0]) == 9
    for machine in machines:
        for other in machines:
            assert await found(machine, f"zebra{other.name}1") == [f"{other.name} in turns 1"]
            assert await found(machine, f"yak{other.name}") == [f"{other.name} at once"]
    for text in files[0].values():
        assert "<<<<<<<" not in text


async def test_every_machine_publishes_its_fleet_file_and_reads_the_fleet(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    await laptop.write("One", "first")
    await laptop.write("Two", "second")
    await laptop.sync()
    await desktop.sync()
    await laptop.sync()
    published = json.loads((desktop.memory_dir / ".fleet" / "laptop.json").read_text())
    assert published["machine"] == "laptop"
    assert published["notes_written"] == 2
    status = await fleet_status(laptop.config)
    assert {m.machine for m in status.machines} == {"laptop", "desktop"}
    assert [m.this_machine for m in status.machines if m.machine == "laptop"] == [True]
    assert status.last_ok is not None
    assert status.last_error is None
    shown = status.as_dict()
    assert shown["hubs"] == [hub.url()]
    assert {m["machine"] for m in shown["machines"]} == {"laptop", "desktop"}


async def test_a_git_lock_left_by_a_killed_git_is_recovered(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    await laptop.write("Before a crash", "then git was killed while holding its index lock")
    stale = laptop.memory_dir / ".git" / "index.lock"
    stale.write_text("")
    os.utime(stale, (time.time() - 600, time.time() - 600))
    report = await laptop.sync()
    assert report.recovered_locks == [".git/index.lock"]
    assert report.pushed
    assert not stale.exists()


async def test_no_hub_configured_says_how_to_add_one(tmp_path: Path) -> None:
    lonely = await make_machine(tmp_path, "lonely", None)
    with pytest.raises(SyncError, match=r"no hub configured; add one with `anamnesis peer add NAME ssh://"):
        await run_sync(lonely.config)


async def test_a_note_holding_a_secret_stays_here_and_the_sync_says_which(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    leaky = await laptop.write("CI setup", f"The CI token is {SECRET}")
    await laptop.write("Clean note", "Nothing secret here.")
    report = await laptop.sync()
    assert report.pushed
    assert [(w.note_id, w.kinds) for w in report.withheld] == [(leaky.id, ("github-token",))]
    assert report.as_dict()["withheld"][0]["note_id"] == leaky.id
    await desktop.sync()
    assert await found(desktop, "clean note") == ["Clean note"]
    assert await found(desktop, "CI setup") == []
    everything = await anyio.run_process(["git", "--git-dir", str(hub.repo()), "log", "-p", "--all"])
    assert SECRET.encode() not in everything.stdout
    again = await laptop.sync()
    assert not again.pushed  # an idle cycle with a withheld note adds nothing
    assert len(again.withheld) == 1


async def test_a_second_hub_receives_everything_too(tmp_path: Path, hub: Hub) -> None:
    async with running_hub(tmp_path / "backup-root") as backup:
        laptop = await make_machine(tmp_path, "laptop", hub)
        backup.authorize(laptop.key)
        add_known_host(
            laptop.home / "known_hosts", host_pattern("127.0.0.1", backup.port), public_line(backup.host_key)
        )
        save_peer(laptop.home / "config.json", Peer(name="backup", url=backup.url()))
        await laptop.write("Two hubs", "Both get it.")
        report = await laptop.sync()
        assert [h.name for h in report.hubs] == ["hub", "backup"]
        assert all(h.pushed for h in report.hubs)
        for repo in (hub.repo(), backup.repo()):
            tree = await anyio.run_process(["git", "--git-dir", str(repo), "ls-tree", "-r", "--name-only", "main"])
            assert b"semantic/" in tree.stdout
