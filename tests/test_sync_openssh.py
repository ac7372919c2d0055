"""End to end against Debian's OpenSSH sshd on a loopback port: a hub exactly as peers/README.md
sets one up (one key restricted to git with git-shell), two machines, and the user's own
`git pull` through OpenSSH's ssh in the same memory/ repository."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import asyncssh
import pytest

from anamnesis.sync.wiring import add_peer
from tests.hubserver import Machine, make_machine, public_line
from tests.ports import unused_port

SSHD = Path("/usr/sbin/sshd")
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not SSHD.exists(), reason="needs Debian's openssh-server (apt-get install openssh-server)"),
]


@dataclass
class OpenSSHHub:
    port: int
    host_key: asyncssh.SSHKey
    authorized_keys: Path
    root: Path

    @property
    def fingerprint(self) -> str:
        return str(self.host_key.get_fingerprint("sha256"))

    def url(self) -> str:
        return f"ssh://{getpass.getuser()}@127.0.0.1:{self.port}{self.root}/memory.git"


@pytest.fixture
async def sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OpenSSHHub]:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    directory = tmp_path / "sshd"
    directory.mkdir(mode=0o700)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(directory / "host_ed25519"))
    (directory / "host_ed25519").chmod(0o600)  # sshd refuses a key others can read
    authorized = directory / "authorized_keys"
    authorized.write_text("")
    authorized.chmod(0o600)
    root = tmp_path / "hubroot"
    root.mkdir()
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    for _attempt in range(3):
        port = unused_port()
        (directory / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {directory / 'host_ed25519'}\n"
            f"PidFile {directory / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\nUsePAM no\nStrictModes no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "AcceptEnv GIT_PROTOCOL\nLogLevel VERBOSE\n"
        )
        process = await anyio.open_process([str(SSHD), "-D", "-e", "-f", str(directory / "sshd_config")])
        assert process.stderr is not None
        log = b""
        with anyio.move_on_after(20):
            async for chunk in process.stderr:
                log += chunk
                if b"Server listening" in log or process.returncode is not None:
                    break
        if b"Server listening" in log:
            break
        process.kill()
        await process.aclose()
    else:
        pytest.fail(f"sshd did not start: {log.decode(errors='replace')}")
    try:
        yield OpenSSHHub(port, host_key, authorized, root)
    finally:
        process.terminate()
        with anyio.move_on_after(10):
            await process.wait()
        await process.aclose()


def authorize(hub: OpenSSHHub, machine: Machine, *, git_only: bool) -> None:
    """An authorized_keys line as peers/README.md writes it (git-only) or a plain one."""
    options = 'restrict,command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"" ' if git_only else ""
    with hub.authorized_keys.open("a") as handle:
        handle.write(f"{options}{public_line(machine.key)} {machine.name}\n")


async def test_two_machines_sync_through_openssh_and_the_users_own_git_pull_works(
    tmp_path: Path, sshd: OpenSSHHub
) -> None:
    desktop = await make_machine(tmp_path, "desktop", None)
    laptop = await make_machine(tmp_path, "laptop", None)
    authorize(sshd, desktop, git_only=False)  # a shell account: peer add creates the repository
    authorize(sshd, laptop, git_only=True)  # restricted to git, as the guide recommends

    await desktop.write("Desktop note", "written on the desktop before the hub existed")
    first = await add_peer(desktop.config, "home", sshd.url(), fingerprint=sshd.fingerprint)
    assert first.created_repo
    assert first.report is not None
    assert first.report.pushed

    await laptop.write("Laptop note", "written on the laptop")
    second = await add_peer(laptop.config, "home", sshd.url(), fingerprint=sshd.fingerprint)
    assert not second.created_repo
    assert second.report is not None
    assert second.report.pulled == 1
    await desktop.sync()
    assert await desktop.tree() == await laptop.tree()
    assert len(desktop.note_files()) == 2

    # The remote is an ordinary ssh:// remote: OpenSSH's own client pulls through it.
    await desktop.write("Pulled by hand", "the user ran git pull themselves")
    await desktop.sync()
    known = tmp_path / "openssh_known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {public_line(sshd.host_key)}\n")
    ssh = shutil.which("ssh")
    assert ssh is not None
    command = (
        f"{ssh} -i {laptop.home / 'ssh' / 'id_ed25519'} -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -F /dev/null"
    )
    env = {**os.environ, "GIT_SSH_COMMAND": command}
    env.pop("GIT_SSH_VARIANT", None)
    pulled = await anyio.run_process(
        ["git", "-C", str(laptop.memory_dir), "pull", "-q", "--ff-only", "home", "main"], env=env, check=False
    )
    assert pulled.returncode == 0, pulled.stderr
    assert "Pulled by hand" in "".join(laptop.note_files().values())
    report = await laptop.sync()  # our sync carries on from the user's pull
    assert report.ok
    assert await laptop.tree() == await desktop.tree()

    # git-shell really restricts that key: no shell commands
    shell = subprocess.run(
        [*command.split(), "-p", str(sshd.port), f"{getpass.getuser()}@127.0.0.1", "id"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert shell.returncode != 0
