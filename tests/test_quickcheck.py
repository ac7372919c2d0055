"""The session-start hook's quick look at the hub, through the system's OpenSSH client, against
the real test hub (asyncssh on 127.0.0.1 with real git behind it): news, no news, and "don't
know" whenever trust or reach is not what the sync itself would accept."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest

from anamnesis.sync.hostkeys import add_known_host, host_pattern, known_hosts_path
from anamnesis.sync.quickcheck import hub_has_news, local_ref
from anamnesis.sync.sshlib import asyncssh
from tests.hubserver import Hub, make_machine, public_line

pytestmark = pytest.mark.anyio
BOUND = 10.0


@pytest.fixture(autouse=True)
def openssh_client() -> None:
    if shutil.which("ssh") is None:
        pytest.skip("the OpenSSH client (ssh) is not installed; .ci/run installs openssh-server, which brings it")


async def ask(machine_config: object) -> bool | None:
    return await anyio.to_thread.run_sync(hub_has_news, machine_config, BOUND)


async def test_it_says_no_news_when_the_hub_holds_what_was_fetched_and_news_when_it_moved(
    tmp_path: Path, hub: Hub
) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    await laptop.write("First", "the first note")
    await laptop.sync()
    await desktop.sync()
    assert await ask(desktop.config) is False

    await laptop.write("While the desktop slept", "a note the desktop has not fetched")
    await laptop.sync()

    assert await ask(desktop.config) is True
    await desktop.sync()
    assert await ask(desktop.config) is False


async def test_an_unknown_host_key_is_never_accepted_it_answers_dont_know(tmp_path: Path, hub: Hub) -> None:
    desktop = await make_machine(tmp_path, "desktop", hub)
    await desktop.sync()
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    known = known_hosts_path(desktop.config.layout)
    known.unlink()
    add_known_host(known, host_pattern("127.0.0.1", hub.port), public_line(impostor))

    assert await ask(desktop.config) is None
    assert known.read_text().count("\n") == 1  # nothing was added to what this home trusts


async def test_an_unreachable_hub_or_a_refused_key_is_dont_know(tmp_path: Path, hub: Hub) -> None:
    stranger = await make_machine(tmp_path, "stranger", hub, authorize=False)
    assert await ask(stranger.config) is None
    gone = await make_machine(tmp_path, "gone", hub, url=hub.url(port=1))
    assert await ask(gone.config) is None


def test_a_ref_is_read_loose_or_packed(tmp_path: Path) -> None:
    git_dir = tmp_path / ".git"
    (git_dir / "refs" / "remotes" / "hub").mkdir(parents=True)
    (git_dir / "packed-refs").write_text("# pack-refs with: peeled\n" + "b" * 40 + " refs/remotes/hub/main\n")
    assert local_ref(git_dir, "refs/remotes/hub/main") == "b" * 40
    (git_dir / "refs" / "remotes" / "hub" / "main").write_text("a" * 40 + "\n")
    assert local_ref(git_dir, "refs/remotes/hub/main") == "a" * 40
    assert local_ref(git_dir, "refs/remotes/other/main") is None
