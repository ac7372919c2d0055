"""Each way a hub can fail reaches the caller as its own error type, whichever way git got there.

With the SSH transport the connection is made before git runs; with git's ssh program as a
process of its own (the bridge), the failure can only come back through git's stderr, as a
code the engine turns back into the type. Either way the CLI, MCP and doctor can tell a hub
that is away (retry later) from a key to confirm, a key to authorize or a repository to create.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from anamnesis.config import Layout
from anamnesis.errors import (
    AnamnesisError,
    AuthRefusedError,
    ConfigError,
    GitError,
    HostKeyError,
    HubRepoMissingError,
    PeerUnreachableError,
    SyncError,
)
from anamnesis.sync import operations
from anamnesis.sync.hostkeys import add_known_host, host_pattern
from anamnesis.sync.link import BRIDGE_MARK, HubLink, LinkFailure, mark, read_marks
from anamnesis.sync.peers import Peer, SyncSettings
from anamnesis.sync.ssh import bridge_env
from anamnesis.sync.sshlib import asyncssh
from anamnesis.sync.wiring import ssh_transport
from tests.hubserver import Hub, Machine, make_machine, public_line

pytestmark = pytest.mark.anyio


class BridgeOnly:
    """A transport that connects nowhere itself: every git command runs the bridge process."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    @asynccontextmanager
    async def open_link(self, peer: Peer, settings: SyncSettings) -> AsyncIterator[HubLink]:
        yield HubLink(env=bridge_env(self.layout))


async def host_key_changed(tmp_path: Path, hub: Hub) -> Machine:
    laptop = await make_machine(tmp_path, "laptop", hub, trust=False)
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    add_known_host(laptop.home / "known_hosts", host_pattern("127.0.0.1", hub.port), public_line(impostor))
    return laptop


async def hub_down(tmp_path: Path, hub: Hub) -> Machine:
    laptop = await make_machine(tmp_path, "laptop", hub)
    await hub.stop()
    return laptop


async def key_not_authorized(tmp_path: Path, hub: Hub) -> Machine:
    return await make_machine(tmp_path, "laptop", hub, authorize=False)


async def no_repository(tmp_path: Path, hub: Hub) -> Machine:
    return await make_machine(tmp_path, "laptop", hub, url=hub.url("nope.git"))


KINDS: dict[str, tuple[Callable[[Path, Hub], Awaitable[Machine]], type[SyncError]]] = {
    "host key changed": (host_key_changed, HostKeyError),
    "hub unreachable": (hub_down, PeerUnreachableError),
    "key refused": (key_not_authorized, AuthRefusedError),
    "no repository": (no_repository, HubRepoMissingError),
}


@pytest.mark.parametrize("transport", ["ssh", "bridge"])
@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_hub_failure_arrives_as_its_type_over_either_transport(
    tmp_path: Path, hub: Hub, kind: str, transport: str
) -> None:
    arrange, expected = KINDS[kind]
    laptop = await arrange(tmp_path, hub)
    await laptop.write("Stays here", "written while the hub could not take it")
    over = BridgeOnly(laptop.config.layout) if transport == "bridge" else ssh_transport(laptop.config)
    with pytest.raises(SyncError) as failure:
        await operations.run_sync(laptop.config, over)
    assert type(failure.value) is expected, failure.value
    assert BRIDGE_MARK not in str(failure.value)  # the code stays between transport and engine
    assert "[" + LinkFailure.of(failure.value).value + "]" not in str(failure.value)
    assert await laptop.git("status", "--porcelain") == ""  # the note is committed here all the same


@pytest.mark.parametrize(
    "error",
    [
        HostKeyError("the host key of hub has CHANGED"),
        PeerUnreachableError("cannot reach the hub hub: timed out"),
        AuthRefusedError("the hub refused this machine's SSH keys"),
        HubRepoMissingError("there is no repository at memory.git"),
        ConfigError("cannot use the SSH settings"),
        SyncError("something else"),
    ],
)
def test_a_failure_told_through_git_stderr_comes_back_as_the_same_type(error: AnamnesisError) -> None:
    stderr = f"{mark(LinkFailure.of(error), str(error))}\nfatal: Could not read from remote repository.\n"
    [(failure, text)] = read_marks(stderr)
    back = failure.error(text)
    assert type(back) is type(error)
    assert str(back) == str(error)


def test_the_type_comes_from_the_code_not_the_words() -> None:
    [(failure, _text)] = read_marks(f"{BRIDGE_MARK} [host-key] cannot reach the hub (words that say otherwise)\n")
    assert failure is LinkFailure.HOST_KEY
    [(unknown, text)] = read_marks(f"{BRIDGE_MARK} the host key of hub has CHANGED\n")  # no code: no guessing
    assert unknown is LinkFailure.OTHER
    assert type(unknown.error(text)) is SyncError
    assert not isinstance(unknown.error(text), GitError)
    [(newer, _)] = read_marks(f"{BRIDGE_MARK} [a-code-from-a-newer-release] something\n")
    assert newer is LinkFailure.OTHER
