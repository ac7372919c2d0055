"""The hub's bare repository, asked about over an open connection: is it there, where is main, create it.

These run single commands on the hub (`git-upload-pack` ended at our flush packet, or the
`git init --bare` steps), never a git process here, so `peer add` and the service's frequent
"has the hub moved?" question cost one channel each on a connection already open. A hub
created here refuses what would let one machine undo another's work (forced pushes, deleted
branches) and keeps a reflog, so a mistake on any machine can be undone on the hub.
"""

from __future__ import annotations

import shlex

import anyio

from anamnesis.errors import HubRepoMissingError, PeerUnreachableError, SyncError
from anamnesis.sync.peers import HubURL
from anamnesis.sync.quickcheck import main_in_advertisement
from anamnesis.sync.ssh.connection import unreachable
from anamnesis.sync.sshlib import asyncssh

_SAFE_HUB_CONFIG = (
    ("receive.denyNonFastForwards", "true"),  # nobody rewrites what others already have
    ("receive.denyDeletes", "true"),
    ("receive.fsckObjects", "true"),
    ("core.logAllRefUpdates", "true"),  # a bare repo keeps no reflog unless asked
)


def _sq(text: str) -> str:
    """Quote like git does for the path argument of git-upload-pack (git-shell accepts this)."""
    return "'" + text.replace("'", "'\\''") + "'"


def _shell_path(path: str) -> str:
    """`path` for a POSIX shell, with a leading ~ or ~/ left for the shell to expand."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def init_commands(path: str) -> str:
    """The shell commands that create the hub's bare repository with safe settings."""
    p = _shell_path(path)
    steps = [f"git init --bare -q {p}", f"git --git-dir={p} symbolic-ref HEAD refs/heads/main"]
    steps += [f"git --git-dir={p} config {key} {value}" for key, value in _SAFE_HUB_CONFIG]
    return " && ".join(steps)


async def hub_repo_exists(conn: asyncssh.SSHClientConnection, hub: HubURL, timeout: float) -> bool:
    """Ask the hub's git-upload-pack for the repository (a flush packet ends the talk politely)."""
    with anyio.fail_after(timeout):
        result = await conn.run(f"git-upload-pack {_sq(hub.path)}", input=b"0000", encoding=None, check=False)
    if result.exit_status == 0:
        return True
    stderr = (result.stderr or b"").decode("utf-8", "replace") if isinstance(result.stderr, bytes) else ""
    if "does not appear to be a git repository" in stderr or "not a git repository" in stderr.lower():
        return False
    raise SyncError(
        f"the hub {hub.address} could not run git-upload-pack (exit {result.exit_status}): {stderr.strip()[:300]}. "
        "Is git installed on the hub and on the account's PATH?"
    )


async def hub_main(conn: asyncssh.SSHClientConnection, hub: HubURL, timeout: float) -> str | None:
    """Where the hub's main is, from one exec on the open connection (no git process here)."""
    try:
        return await ask_hub_main(conn, hub, timeout)
    except PeerUnreachableError:
        return None


async def ask_hub_main(conn: asyncssh.SSHClientConnection, hub: HubURL, timeout: float) -> str | None:
    """`hub_main`, but a connection that fails or stays silent is `PeerUnreachableError`, not None.

    The hub's git-upload-pack advertises its refs and ends at our flush packet: one channel,
    a few hundred bytes, no git process on this side. None when the answer is not one we read.
    """
    try:
        with anyio.fail_after(timeout):
            result = await conn.run(f"git-upload-pack {_sq(hub.path)}", input=b"0000", encoding=None, check=False)
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise unreachable(hub, exc, "") from exc
    if result.exit_status != 0 or not isinstance(result.stdout, bytes):
        return None
    return main_in_advertisement(result.stdout)


async def ensure_hub_repo(conn: asyncssh.SSHClientConnection, hub: HubURL, timeout: float = 60.0) -> bool:
    """Create the bare repository on the hub when it is missing; True when it was created."""
    if await hub_repo_exists(conn, hub, timeout):
        return False
    with anyio.fail_after(timeout):
        result = await conn.run(init_commands(hub.path), encoding="utf-8", errors="replace", check=False)
    if result.exit_status == 0 and await hub_repo_exists(conn, hub, timeout):
        return True
    commands = init_commands(hub.path).replace(" && ", " &&\n    ")
    raise HubRepoMissingError(
        f"there is no repository at {hub.path} on {hub.address}, and this account cannot create one "
        f"({str(result.stderr or '').strip()[:200] or f'exit {result.exit_status}'}); that is expected for an "
        f"account restricted to git. Create it once on the hub as that user:\n    {commands}\n"
        "then run `anamnesis peer add` again."
    )
