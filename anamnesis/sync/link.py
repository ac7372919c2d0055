"""What the sync engine needs from a transport: a link to a hub for one cycle, and failures as codes.

The engine does not know SSH. A transport hands it a `HubLink` (the environment git needs to
reach one hub, and how to tell the link died) through the small `LinkOpener` protocol; the SSH
adapter (`anamnesis.sync.ssh`) and the service's held connections (`anamnesis.sync.live`) are
the two that exist. Which one a sync uses is decided by the wiring (`anamnesis.sync.wiring`).

git's ssh program runs as a process of its own, so what it knows about a failure can only
reach the engine through git's stderr. It says it in one marked line that carries a code,
`anamnesis-ssh: [host-key] the host key of …`; `read_marks` turns that code back into a
`LinkFailure`, and `LinkFailure.error` into the error type. The engine branches on the code,
never on the English that follows it (which is for the user).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from anamnesis.errors import (
    AnamnesisError,
    AuthRefusedError,
    ConfigError,
    HostKeyError,
    HubRepoMissingError,
    PeerUnreachableError,
    SyncError,
)

if TYPE_CHECKING:
    from anamnesis.sync.hostkeys import HostKeyProbe
    from anamnesis.sync.peers import HubURL, Peer, SyncSettings

BRIDGE_MARK = "anamnesis-ssh:"  # how a transport marks what it tells git's stderr
_MARKED = re.compile(r"\[(?P<code>[a-z-]+)\]\s*(?P<text>.*)")


def _never_lost() -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class HubLink:
    """What git needs to reach one hub during a cycle, and how to tell the link died.

    `hub_main`, when the transport can answer it cheaply, says where the hub's main is (an
    object id, "" when it has none, None when it cannot tell), so an idle cycle skips the fetch.
    """

    env: Mapping[str, str]
    lost: Callable[[], str | None] = _never_lost
    hub_main: Callable[[], Awaitable[str | None]] | None = None


class LinkOpener(Protocol):
    """Gives the engine a link to `peer` for the length of a cycle; typed errors when it cannot."""

    def open_link(self, peer: Peer, settings: SyncSettings) -> AbstractAsyncContextManager[HubLink]: ...


class HubTransport(LinkOpener, Protocol):
    """A transport that can also meet a new hub: what `peer add` needs (the core cannot name SSH)."""

    async def probe_host_key(self, hub: HubURL, settings: SyncSettings) -> HostKeyProbe: ...

    async def ensure_hub_repo(self, hub: HubURL, peer_name: str, settings: SyncSettings) -> bool: ...


class LinkFailure(enum.Enum):
    """Why a transport could not carry a git command; the code crosses the process boundary."""

    HOST_KEY = "host-key"
    UNREACHABLE = "unreachable"
    AUTH_REFUSED = "auth-refused"
    NO_REPOSITORY = "no-repository"
    LOST = "lost"  # the connection died under a running command
    CONFIG = "config"
    OTHER = "other"

    def error(self, text: str) -> AnamnesisError:
        """The typed error this failure is, with the transport's words for the user."""
        return _ERRORS[self](text)

    @classmethod
    def of(cls, exc: AnamnesisError) -> LinkFailure:
        """The code for an error a transport raised; OTHER for any other kind of failure."""
        for failure, kind in _ERRORS.items():
            if failure not in (cls.LOST, cls.OTHER) and isinstance(exc, kind):
                return failure
        return cls.OTHER


_ERRORS: dict[LinkFailure, type[AnamnesisError]] = {
    LinkFailure.HOST_KEY: HostKeyError,
    LinkFailure.UNREACHABLE: PeerUnreachableError,
    LinkFailure.AUTH_REFUSED: AuthRefusedError,
    LinkFailure.NO_REPOSITORY: HubRepoMissingError,
    LinkFailure.LOST: PeerUnreachableError,
    LinkFailure.CONFIG: ConfigError,
    LinkFailure.OTHER: SyncError,
}


def mark(failure: LinkFailure, text: str) -> str:
    """The line a transport writes to git's stderr for `failure` (no newline)."""
    return f"{BRIDGE_MARK} [{failure.value}] {text}"


def read_marks(stderr: str) -> list[tuple[LinkFailure, str]]:
    """Every marked line in git's stderr, as (code, text); a line without a known code is OTHER."""
    found = []
    for line in stderr.splitlines():
        if BRIDGE_MARK not in line:
            continue
        rest = line.split(BRIDGE_MARK, 1)[1].strip()
        match = _MARKED.fullmatch(rest)
        try:
            found.append((LinkFailure(match["code"]), match["text"]) if match else (LinkFailure.OTHER, rest))
        except ValueError:  # a code this version does not know
            found.append((LinkFailure.OTHER, rest))
    return found
