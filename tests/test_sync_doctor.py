"""`anamnesis doctor` on sync: hubs reachable, the last sync, notes sync would hold back."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import asyncssh
import pytest

from anamnesis.doctor import Finding, run_doctor
from anamnesis.errors import HostKeyError
from anamnesis.sync.doctor import check_sync
from anamnesis.sync.peers import Peer, save_peer
from tests.hubserver import Hub, Machine, make_machine
from tests.ports import unused_port

pytestmark = pytest.mark.anyio


async def sync_findings(machine: Machine) -> list[Finding]:
    return [f for f in await run_doctor(machine.config, [check_sync]) if f.check == "sync"]


async def test_without_a_hub_sync_is_simply_off(tmp_path: Path) -> None:
    laptop = await make_machine(tmp_path, "laptop", None)
    findings = await sync_findings(laptop)
    assert [(f.level, f.message) for f in findings] == [("ok", "no hub configured: notes stay on this machine")]


async def test_a_synced_machine_with_a_reachable_hub_is_all_ok(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    await laptop.write("Deploys need a green staging run", "Always.")
    await laptop.sync()
    findings = await sync_findings(laptop)
    assert all(f.level == "ok" for f in findings), findings
    assert any("answers; its host key is the trusted one" in f.message for f in findings)
    assert any(f.message.startswith("last synced at") for f in findings)


async def test_an_unreachable_hub_is_a_warning_and_never_synced_says_what_to_run(tmp_path: Path) -> None:
    laptop = await make_machine(tmp_path, "laptop", None)
    save_peer(laptop.home / "config.json", Peer(name="home", url=f"ssh://git@127.0.0.1:{unused_port()}/srv/m.git"))
    findings = await sync_findings(laptop)
    levels = {f.level for f in findings}
    assert "error" not in levels
    assert any(f.level == "warning" and "cannot reach the hub" in f.message for f in findings)
    assert any(f.level == "warning" and f.fix == "run `anamnesis sync`" for f in findings)


async def test_a_changed_host_key_and_a_failed_last_sync_are_errors(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    await laptop.sync()
    await hub.stop()
    hub.host_key = asyncssh.generate_private_key("ssh-ed25519")  # the hub was reinstalled
    await hub.start()
    with pytest.raises(HostKeyError, match="CHANGED"):
        await laptop.sync()
    findings = await sync_findings(laptop)
    errors = [f.message for f in findings if f.level == "error"]
    assert any("CHANGED" in m and "hub hub" in m for m in errors), errors
    assert any(m.startswith("the last 1 sync(s) failed") for m in errors), errors


async def test_a_note_that_still_holds_a_secret_is_named_with_the_fix(tmp_path: Path) -> None:
    laptop = await make_machine(tmp_path, "laptop", None)
    note = await laptop.write("Staging access", "The staging API key is sk-ant-api03-" + "Xy9q" * 12 + "AA")
    await laptop.write("Release notes", "Version v4.37.7 ships on Friday; auth: v4.37.7 was the cause.")
    findings = await sync_findings(laptop)
    flagged = [f for f in findings if f.level == "error"]
    assert len(flagged) == 1
    assert note.id in flagged[0].message
    assert "sync will not push it" in flagged[0].message
    assert flagged[0].fix is not None


async def test_the_cli_doctor_fails_on_a_note_with_a_secret(tmp_path: Path) -> None:
    laptop = await make_machine(tmp_path, "laptop", None)
    await laptop.write("Staging access", "password: Hunter2-Staging-Xy9q")
    result = await anyio.run_process(
        [sys.executable, "-m", "anamnesis", "doctor"],
        env={**os.environ, "ANAMNESIS_HOME": str(laptop.home)},
        check=False,
    )
    out = result.stdout.decode()
    assert result.returncode == 1
    assert "[FAIL] sync:" in out
    assert "sync will not push it" in out


async def test_status_shows_the_last_sync(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    env = {**os.environ, "ANAMNESIS_HOME": str(laptop.home)}
    before = await anyio.run_process([sys.executable, "-m", "anamnesis", "status"], env=env)
    assert "sync      never synced" in before.stdout.decode()
    await laptop.sync()
    after = await anyio.run_process([sys.executable, "-m", "anamnesis", "status", "--json"], env=env)
    shown = json.loads(after.stdout)
    assert shown["hub"] == hub.url()
    assert shown["sync"]["last_ok"] is not None
    assert shown["sync"]["last_error"] is None
    assert shown["sync"]["withheld"] == []
