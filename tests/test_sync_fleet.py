"""The fleet files, this machine's sync record, and the known_hosts this home trusts (anyio only)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from anamnesis.config import Config
from anamnesis.errors import HostKeyError
from anamnesis.sync import fleet_status
from anamnesis.sync.fleet import FleetEntry, SyncState, read_fleet_files, state_path, write_fleet_file
from anamnesis.sync.hostkeys import add_known_host, host_pattern, key_fingerprint, normalize_fingerprint
from tests.conftest import both_backends
from tests.hubserver import Hub, make_machine

REPO = Path(__file__).resolve().parent.parent

NOW = 1_800_000_000.0
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def entry(machine: str, age: float) -> FleetEntry:
    return FleetEntry(
        machine=machine,
        synced_at="2027-01-15T08:00:00Z",
        synced_at_unix=NOW - age,
        head="ab" * 20,
        notes_written=3,
        conflicts=1,
    )


@both_backends
@pytest.mark.anyio
async def test_the_fleet_shows_every_machine_newest_first_and_marks_the_silent_ones(config: Config) -> None:
    memory_dir = config.layout.memory_dir
    write_fleet_file(memory_dir, entry("server", 10 * 3600))
    write_fleet_file(memory_dir, entry(config.machine_id, 60))
    (memory_dir / ".fleet" / "broken.json").write_text("{not json")
    SyncState(last_ok="2027-01-15T08:00:00Z", consecutive_failures=0, conflicts_total=2).save(state_path(config.layout))
    status = await fleet_status(config, now=NOW)
    assert [(m.machine, m.stale, m.this_machine) for m in status.machines] == [
        (config.machine_id, False, True),
        ("server", True, False),  # silent for more than three heartbeats
    ]
    assert status.conflicts_total == 2
    assert status.as_dict()["machines"][0]["notes_written"] == 3


def test_a_fleet_file_round_trips_and_a_damaged_record_reads_as_fresh(tmp_path: Path) -> None:
    write_fleet_file(tmp_path, entry("laptop", 0))
    assert read_fleet_files(tmp_path) == [entry("laptop", 0)]
    damaged = tmp_path / "sync.json"
    damaged.write_text("[1, 2")
    assert SyncState.load(damaged) == SyncState()


def test_fingerprints_match_ssh_keygen(tmp_path: Path) -> None:
    blob = base64.b64decode(KEY.split()[1])
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert key_fingerprint(KEY + " comment") == expected
    (tmp_path / "k.pub").write_text(KEY + "\n")
    shown = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True, check=False)
    if shown.returncode == 0:
        assert shown.stdout.split()[1] == expected
    assert normalize_fingerprint(expected.removeprefix("SHA256:")) == expected
    with pytest.raises(HostKeyError):
        key_fingerprint("ssh-ed25519 not-base64!")


def test_known_hosts_entries_are_added_once_and_replaced_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("# mine\nother.host ssh-rsa AAAA\n")
    pattern = host_pattern("127.0.0.1", 2222)
    assert pattern == "[127.0.0.1]:2222"
    assert host_pattern("hub", 22) == "hub"
    add_known_host(path, pattern, KEY)
    add_known_host(path, pattern, KEY)
    assert path.read_text().count(pattern) == 1
    add_known_host(path, pattern, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBB")
    assert path.read_text().count(pattern) == 2  # a second key for the host, e.g. another algorithm
    add_known_host(path, pattern, KEY, replace=True)
    lines = path.read_text().splitlines()
    assert lines == ["# mine", "other.host ssh-rsa AAAA", f"{pattern} {KEY}"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_userknownhostsfile_none_never_turns_host_key_checking_off(tmp_path: Path, isolated_env: Path) -> None:
    from anamnesis.config import Layout
    from anamnesis.sync.ssh import trusted_host_files

    layout = Layout(tmp_path / "anamnesis")
    layout.home.mkdir()
    (layout.home / "known_hosts").write_text(KEY + "\n")
    user_file = isolated_env / ".ssh" / "known_hosts"
    user_file.parent.mkdir()
    user_file.write_text("")
    ours = str(layout.home / "known_hosts")

    def files(value: list[str] | None) -> list[str]:
        return [p for p in trusted_host_files(layout, value) if not p.startswith("/etc/")]

    assert files(None) == [ours]  # "UserKnownHostsFile none"
    assert files([]) == [ours, str(user_file)]  # not set
    assert files([str(user_file)]) == [ours, str(user_file)]


# -- two machines of one name ------------------------------------------------------------------


@pytest.mark.anyio
async def test_two_machines_of_one_name_are_told_apart_and_told_how_to_rename(tmp_path: Path, hub: Hub) -> None:
    first = await make_machine(tmp_path / "home-laptop", "MacBook-Pro", hub)
    second = await make_machine(tmp_path / "work-laptop", "MacBook-Pro", hub)
    one = await first.write("Written on the home laptop", "first body")
    two = await second.write("Written on the work laptop", "second body")

    assert (await first.sync()).name_clash is None
    clashing = await second.sync()
    await first.sync()

    assert clashing.name_clash is not None
    assert "anamnesis init --machine-id" in clashing.name_clash
    fleet_files = sorted(p.name for p in (first.memory_dir / ".fleet").iterdir())
    assert len(fleet_files) == 2  # neither overwrote the other
    assert fleet_files[0] == "MacBook-Pro.json"
    assert fleet_files[1].startswith("MacBook-Pro~")
    for machine in (first, second):
        status = await fleet_status(machine.config)
        assert status.name_clash is not None  # both are told, at their next look
        assert [m.this_machine for m in status.machines if m.machine == "MacBook-Pro"].count(True) == 1
        texts = "".join(machine.note_files().values())
        assert one.id in texts
        assert two.id in texts  # nothing of either is lost


@pytest.mark.anyio
async def test_renaming_one_of_them_retires_its_fleet_file_and_ends_the_clash(tmp_path: Path, hub: Hub) -> None:
    first = await make_machine(tmp_path / "home-laptop", "MacBook-Pro", hub)
    second = await make_machine(tmp_path / "work-laptop", "MacBook-Pro", hub)
    await first.sync()
    await second.sync()

    env = {
        **os.environ,
        "ANAMNESIS_HOME": str(second.home),
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    renamed = await anyio.run_process(
        [sys.executable, "-m", "anamnesis", "init", "--machine-id", "mbp-work", "--no-claude"], env=env, check=False
    )
    assert renamed.returncode == 0, renamed.stderr
    assert b"Renamed this machine from MacBook-Pro to mbp-work" in renamed.stdout
    assert (await second.sync()).name_clash is None
    await first.sync()

    assert sorted(p.name for p in (first.memory_dir / ".fleet").iterdir()) == ["MacBook-Pro.json", "mbp-work.json"]
    for machine in (first, second):
        assert (await fleet_status(machine.config)).name_clash is None
