"""Adding, listing and removing hubs: trust on first use made explicit, the hub's repository
created with safe settings (or the commands for a git-only account), and the CLI as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from anamnesis.config import load_config, read_config_file
from anamnesis.errors import ConfigError, HostKeyError, HubRepoMissingError, SyncError
from anamnesis.sync import list_peers, remove_peer
from anamnesis.sync.hostkeys import HostKeyProbe
from anamnesis.sync.peers import Peer, parse_hub_url, save_peer
from anamnesis.sync.quickcheck import main_in_advertisement
from anamnesis.sync.wiring import add_peer, run_sync
from tests.hubserver import Hub, Machine, make_machine, running_hub

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture
async def empty_hub(tmp_path: Path, no_agent: None) -> AsyncIterator[Hub]:
    """A hub account with a shell and no repository yet."""
    async with running_hub(tmp_path / "hubroot", create=None) as running:
        yield running


async def hub_config(hub: Hub, key: str) -> str:
    result = await anyio.run_process(["git", "--git-dir", str(hub.repo()), "config", "--get", key], check=False)
    return result.stdout.decode().strip()


@pytest.mark.anyio
async def test_peer_add_asks_before_trusting_creates_a_safe_repository_and_syncs(
    tmp_path: Path, empty_hub: Hub
) -> None:
    laptop = await make_machine(tmp_path, "laptop", None)
    empty_hub.authorize(laptop.key)
    await laptop.write("Before the hub", "a note that existed before the hub")
    shown: list[HostKeyProbe] = []

    async def confirm(probe: HostKeyProbe) -> bool:
        shown.append(probe)
        return True

    added = await add_peer(laptop.config, "homeserver", empty_hub.url(), confirm=confirm)
    assert [p.fingerprint for p in shown] == [empty_hub.fingerprint]
    assert added.newly_trusted
    assert added.created_repo
    assert added.report is not None
    assert added.report.pushed
    for key in ("receive.denyNonFastForwards", "receive.denyDeletes", "receive.fsckObjects"):
        assert await hub_config(empty_hub, key) == "true"
    assert (await anyio.run_process(["git", "--git-dir", str(empty_hub.repo()), "symbolic-ref", "HEAD"])).stdout == (
        b"refs/heads/main\n"
    )
    raw = read_config_file(laptop.home / "config.json")
    assert raw["remote"] == empty_hub.url()
    assert raw["peers"]["homeserver"]["host_key"] == empty_hub.fingerprint
    assert [p.name for p in list_peers(laptop.config)] == ["homeserver"]
    known = (laptop.home / "known_hosts").read_text()
    assert f"[127.0.0.1]:{empty_hub.port} ssh-ed25519 " in known
    assert (laptop.home / "known_hosts").stat().st_mode & 0o777 == 0o600

    # a second machine adding the same hub starts from what is there and merges its own notes
    desktop = await make_machine(tmp_path, "desktop", None)
    empty_hub.authorize(desktop.key)
    await desktop.write("Desktop before joining", "kept through the join")
    again = await add_peer(desktop.config, "homeserver", empty_hub.url(), fingerprint=empty_hub.fingerprint)
    assert not again.created_repo
    assert again.report is not None
    assert again.report.pulled == 1
    await laptop.sync()
    assert await laptop.tree() == await desktop.tree()
    assert len(laptop.note_files()) == 2


@pytest.mark.anyio
async def test_a_key_that_is_not_confirmed_or_does_not_match_changes_nothing(tmp_path: Path, empty_hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", None)
    empty_hub.authorize(laptop.key)

    async def refuse(probe: HostKeyProbe) -> bool:
        return False

    with pytest.raises(HostKeyError, match="not confirmed; nothing was changed"):
        await add_peer(laptop.config, "hub", empty_hub.url(), confirm=refuse)
    with pytest.raises(HostKeyError, match="not the expected"):
        await add_peer(laptop.config, "hub", empty_hub.url(), fingerprint="SHA256:" + "B" * 43)
    with pytest.raises(HostKeyError, match="no terminal to ask"):
        await add_peer(laptop.config, "hub", empty_hub.url())
    assert not (laptop.home / "known_hosts").exists()
    assert "peers" not in read_config_file(laptop.home / "config.json")
    assert not empty_hub.repo().exists()
    assert empty_hub.stats.sessions == []  # never logged in to an unverified hub


@pytest.mark.anyio
async def test_a_git_only_account_gets_the_commands_to_create_the_repository(tmp_path: Path, no_agent: None) -> None:
    async with running_hub(tmp_path / "hubroot", shell="git-shell", create=None) as hub:
        laptop = await make_machine(tmp_path, "laptop", None)
        hub.authorize(laptop.key)
        with pytest.raises(HubRepoMissingError, match="Create it once on the hub") as failure:
            await add_peer(laptop.config, "hub", hub.url(), fingerprint=hub.fingerprint)
        commands = str(failure.value).split("as that user:\n", 1)[1].rsplit("\nthen run", 1)[0]
        await anyio.run_process(["sh", "-c", commands], cwd=hub.root)  # what the user runs on the hub
        assert await hub_config(hub, "receive.denyDeletes") == "true"
        await laptop.write("Through git-shell", "only git-upload-pack and git-receive-pack are allowed")
        added = await add_peer(laptop.config, "hub", hub.url())
        assert added.report is not None
        assert added.report.pushed
        assert not added.newly_trusted  # trusted by the first attempt's fingerprint


@pytest.mark.anyio
async def test_removing_a_peer_forgets_it_and_its_remote(tmp_path: Path, no_agent: None) -> None:
    async with running_hub(tmp_path / "hubroot") as hub:
        laptop = await make_machine(tmp_path, "laptop", hub)
        await laptop.sync()
        assert "hub" in (await laptop.git("remote")).split()
        removed = await remove_peer(laptop.config, "hub")
        assert removed.url == hub.url()
        assert "remote" not in read_config_file(laptop.home / "config.json")
        assert (await laptop.git("remote")) == ""
        with pytest.raises(SyncError, match="no hub configured"):
            await run_sync(laptop.config)
        with pytest.raises(ConfigError, match="no peer named"):
            await remove_peer(laptop.config, "hub")


@pytest.mark.anyio
async def test_the_bridge_serves_a_users_own_git_commands(tmp_path: Path, no_agent: None) -> None:
    async with running_hub(tmp_path / "hubroot") as hub:
        laptop = await make_machine(tmp_path, "laptop", hub)
        await laptop.write("Via my own git", "cloned with GIT_SSH_COMMAND")
        await laptop.sync()
        env = {
            **os.environ,
            "ANAMNESIS_HOME": str(laptop.home),
            "GIT_SSH_COMMAND": f"{sys.executable} -m anamnesis.sync.git_ssh",
            "GIT_SSH_VARIANT": "ssh",
            "PYTHONPATH": str(REPO),
        }
        clone = tmp_path / "clone"
        await anyio.run_process(["git", "clone", "-q", hub.url(), str(clone)], env=env)
        assert len(list(clone.glob("semantic/*.md"))) == 1
        missing = await anyio.run_process(["git", "ls-remote", hub.url("nope.git")], env=env, check=False)
        assert missing.returncode == 128
        assert b"does not appear to be a git repository" in missing.stderr


# -- the CLI, as a user runs it (subprocesses; the hub keeps serving in this event loop) -----------


async def cli(machine: Machine, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    # Each machine's process gets a HOME of its own, next to its Anamnesis home.
    env = {**os.environ, "HOME": str(machine.home.parent), "ANAMNESIS_HOME": str(machine.home), "PYTHONPATH": str(REPO)}
    return await anyio.run_process([sys.executable, "-m", "anamnesis", *args], env=env, input=stdin, check=False)


@pytest.mark.anyio
async def test_the_cli_adds_lists_syncs_and_removes_a_peer(tmp_path: Path, empty_hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", None)
    empty_hub.authorize(laptop.key)
    refused = await cli(laptop, "peer", "add", "home", empty_hub.url())
    assert refused.returncode == 1
    assert empty_hub.fingerprint.encode() in refused.stderr
    assert b"--fingerprint" in refused.stderr

    added = await cli(laptop, "peer", "add", "home", empty_hub.url(), "--fingerprint", empty_hub.fingerprint)
    assert added.returncode == 0, added.stderr
    assert b"Created the hub's repository" in added.stdout
    assert b"Recorded peer home" in added.stdout

    listed = json.loads((await cli(laptop, "peer", "list", "--json")).stdout)
    assert [p["name"] for p in listed["peers"]] == ["home"]
    assert listed["last_ok"] is not None

    await laptop.write("From the CLI test", "synced by anamnesis sync")
    synced = await cli(laptop, "sync", "--json")
    assert synced.returncode == 0, synced.stderr
    report = json.loads(synced.stdout)
    assert report["ok"]
    assert report["pushed"]
    quiet = await cli(laptop, "sync", "--quiet")
    assert quiet.returncode == 0
    assert quiet.stdout == b""

    desktop = await make_machine(tmp_path, "desktop", None)
    empty_hub.authorize(desktop.key)
    trusting = await cli(desktop, "peer", "add", "home", empty_hub.url(), "--yes", "--json")
    assert trusting.returncode == 0, trusting.stderr
    assert empty_hub.fingerprint.encode() in trusting.stderr
    assert b"Trusting it (--yes)." in trusting.stderr
    assert json.loads(trusting.stdout)["sync"]["pulled"] == 1

    removed = await cli(laptop, "peer", "remove", "home")
    assert removed.returncode == 0
    failed = await cli(laptop, "sync")
    assert failed.returncode == 1
    assert b"no hub configured; add one with `anamnesis peer add NAME ssh://user@host/path`" in failed.stderr


@pytest.mark.anyio
async def test_four_cli_syncs_started_at_once_all_succeed_in_turn(tmp_path: Path, no_agent: None) -> None:
    async with running_hub(tmp_path / "hubroot") as hub:
        laptop = await make_machine(tmp_path, "laptop", hub)
        desktop = await make_machine(tmp_path, "desktop", hub)
        results: list[subprocess.CompletedProcess[bytes]] = []

        async def run(i: int) -> None:
            await laptop.write(f"Process {i}", f"note before sync {i}")
            results.append(await cli(laptop, "sync", "--json"))

        async with anyio.create_task_group() as group:
            for i in range(4):
                group.start_soon(run, i)
        assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
        await desktop.sync()
        assert len(desktop.note_files()) == 4


# -- pure parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "user", "host", "port", "path"),
    [
        ("ssh://anamnesis@homeserver/~/memory.git", "anamnesis", "homeserver", None, "~/memory.git"),
        ("ssh://nas.tailnet.ts.net:2222/srv/anamnesis.git", None, "nas.tailnet.ts.net", 2222, "/srv/anamnesis.git"),
        ("ssh://me@[fd7a::1]:22/srv/m.git", "me", "fd7a::1", 22, "/srv/m.git"),
        ("git@homeserver:memory.git", "git", "homeserver", None, "memory.git"),
        ("homeserver:~/memory.git", None, "homeserver", None, "~/memory.git"),
    ],
)
def test_hub_urls_parse_like_git_reads_them(url: str, user: str | None, host: str, port: int | None, path: str) -> None:
    hub = parse_hub_url(url)
    assert (hub.user, hub.host, hub.port, hub.path) == (user, host, port, path)


@pytest.mark.parametrize(
    "url", ["https://github.com/me/memory.git", "/srv/memory.git", "ssh://host", "ssh://h:99999/x"]
)
def test_anything_but_an_ssh_hub_url_is_refused_with_the_right_form(url: str) -> None:
    with pytest.raises(ConfigError, match=r"ssh://"):
        parse_hub_url(url)


def test_a_0_1_3_remote_counts_as_a_peer_and_peers_keep_their_order(tmp_path: Path) -> None:
    home = tmp_path / "home013"
    home.mkdir()
    (home / "config.json").write_text(json.dumps({"machine_id": "old", "remote": "ssh://h/~/m.git"}))
    assert list_peers(load_config(home, {})) == [Peer(name="hub", url="ssh://h/~/m.git")]
    save_peer(home / "config.json", Peer(name="zeta", url="ssh://h/~/m.git", added_at="2026-01-01T00:00:00Z"))
    save_peer(home / "config.json", Peer(name="alpha", url="ssh://b/~/m.git", added_at="2026-02-01T00:00:00Z"))
    assert [p.name for p in list_peers(load_config(home, {}))] == ["zeta", "alpha"]


def test_the_hubs_main_is_read_from_a_real_ref_advertisement(tmp_path: Path) -> None:
    bare = tmp_path / "hub.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    empty = subprocess.run(["git", "upload-pack", str(bare)], input=b"0000", capture_output=True, check=True)
    assert main_in_advertisement(empty.stdout) == ""
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", str(bare), "main", "main:other"], check=True)
    head = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    full = subprocess.run(["git", "upload-pack", str(bare)], input=b"0000", capture_output=True, check=True)
    assert main_in_advertisement(full.stdout) == head.stdout.strip()
    assert main_in_advertisement(b"000eversion 2\n0000") is None  # not v0: fetch as usual
    assert main_in_advertisement(full.stdout[:30]) is None  # cut short
