"""config.json has one writer, `edit_config`: read, change, write atomically, under a lock.

Many processes share a home (`peer add` in two terminals, the service making its token, `init`
renaming the machine); without the lock, two read-modify-writes at once lose one of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anamnesis.config import load_config, read_config_file
from anamnesis.configedit import edit_config
from anamnesis.errors import BusyError
from anamnesis.locks import release_file_lock, try_file_lock
from tests.conftest import run_cli_env

PEERS_EACH = 60

_WRITER = """
import sys
from pathlib import Path
from anamnesis.sync.peers import Peer, save_peer

home, prefix, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
sys.stdin.readline()  # start together: the parent releases both writers at once
for n in range(count):
    save_peer(home / "config.json", Peer(name=f"{prefix}{n}", url=f"ssh://{prefix}{n}.example/srv/memory.git"))
"""


def test_two_processes_adding_peers_at_once_lose_none(tmp_path: Path) -> None:
    home = tmp_path / "shared"
    home.mkdir()
    (home / "config.json").write_text('{"machine_id": "desktop", "hand_written": {"kept": true}}\n')
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(home), prefix, str(PEERS_EACH)],
            stdin=subprocess.PIPE,
            env=run_cli_env(home),
            text=True,
        )
        for prefix in ("a", "b")
    ]
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.close()
        assert writer.wait(timeout=120) == 0

    names = {peer.name for peer in load_config(home, {}).peers}
    expected = {f"{prefix}{n}" for prefix in ("a", "b") for n in range(PEERS_EACH)}
    assert sorted(expected - names) == []
    assert read_config_file(home / "config.json")["hand_written"] == {"kept": True}


def test_an_edit_waits_for_the_lock_and_gives_up_with_busy_leaving_the_file(tmp_path: Path) -> None:
    home = tmp_path / "shared"
    home.mkdir()
    (home / "config.json").write_text('{"machine_id": "desktop"}\n')
    held = try_file_lock(home / "state" / "config.lock")  # as another process mid-edit holds it
    assert held is not None
    try:
        with pytest.raises(BusyError, match=r"config\.lock"):
            edit_config(home, lambda document: document.update(machine_id="laptop"), timeout=0.2)
    finally:
        release_file_lock(held)
    assert json.loads((home / "config.json").read_text()) == {"machine_id": "desktop"}
    edit_config(home, lambda document: document.update(machine_id="laptop"))
    assert load_config(home, {}).machine_id == "laptop"
