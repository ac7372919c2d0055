"""A quick look at where each hub's main is, with the system's OpenSSH client, for session start.

Knowing that the hub has nothing new should cost a starting session one SSH round trip, not
the half second a Python process spends importing asyncssh before it can ask. When `ssh` is
installed, the session-start hook runs it with the sync's own trust: strict host keys from
this home's known_hosts and the user's (never a prompt, never a new key accepted), this
home's key and the user's, the user's ssh config (or the one `sync.ssh_config` names), and a
connect timeout within the hook's bound. It reads the hub's ref advertisement and compares
main with what this machine fetched last. Anything unexpected (no `ssh`, a refused key, an
unknown or changed host key, a timeout, an answer it does not read) is "don't know", and the
hook falls back to the full check.

Stdlib only (with the light config and peer modules): the hooks import this.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

from anamnesis.config import Config
from anamnesis.errors import AnamnesisError
from anamnesis.sync.hostkeys import known_hosts_path
from anamnesis.sync.peers import HubURL, configured_peers, parse_hub_url, sync_settings

BRANCH_REF = "refs/heads/main"
_SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"


def hub_has_news(config: Config, timeout: float) -> bool | None:
    """True when some hub's main differs from what this machine fetched last, False when none
    does, None when that could not be learned quickly (then ask the slow way). Blocking."""
    ssh = shutil.which("ssh")
    if ssh is None:
        return None
    try:
        peers = configured_peers(config)
        settings = sync_settings(config)
    except AnamnesisError:
        return None
    if not peers:
        return None
    news = False
    for peer in peers:
        try:
            hub = parse_hub_url(peer.url)
        except AnamnesisError:
            return None
        argv = ssh_argv(ssh, config, hub, settings.identity_file, settings.ssh_config, timeout)
        if argv is None:
            return None
        try:
            done = subprocess.run(argv, input=b"0000", capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        main = main_in_advertisement(done.stdout) if done.returncode == 0 else None
        if main is None:
            return None
        fetched = local_ref(config.layout.memory_dir / ".git", f"refs/remotes/{peer.name}/main")
        news = news or main != (fetched or "")
    return news


def ssh_argv(
    ssh: str, config: Config, hub: HubURL, identity_file: str | None, ssh_config: str | None, timeout: float
) -> list[str] | None:
    """OpenSSH's command line for `git-upload-pack PATH` on the hub; None when a path in it
    could not be passed safely (OpenSSH splits known-hosts lists on white space)."""
    layout = config.layout
    known = [str(known_hosts_path(layout)), os.path.expanduser("~/.ssh/known_hosts")]
    if any(any(c.isspace() for c in path) for path in known):
        return None
    argv = [
        ssh, "-T", "-x", "-a",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UpdateHostKeys=no",
        "-o", f"UserKnownHostsFile={' '.join(known)}",
        "-o", f"GlobalKnownHostsFile={_SYSTEM_KNOWN_HOSTS}",
        "-o", f"ConnectTimeout={max(1, math.ceil(timeout))}",
    ]  # fmt: skip
    if ssh_config:
        argv += ["-F", "none" if ssh_config == "none" else os.path.expanduser(ssh_config)]
    keys = [Path(os.path.expanduser(identity_file))] if identity_file else []
    keys += [layout.home / "ssh" / name for name in ("id_ed25519", "id_ecdsa", "id_rsa")]
    argv += [arg for key in keys if key.is_file() for arg in ("-i", str(key))]
    if hub.port is not None:
        argv += ["-p", str(hub.port)]
    if hub.user:
        argv += ["-l", hub.user]
    return [*argv, "--", hub.host, f"git-upload-pack {_quoted(hub.path)}"]


def _quoted(path: str) -> str:
    """The path as git quotes it for git-upload-pack (a git-shell account accepts this form)."""
    return "'" + path.replace("'", "'\\''") + "'"


def main_in_advertisement(data: bytes) -> str | None:
    """The object id of refs/heads/main in a protocol v0 ref advertisement ("" when absent).

    None when the answer is not what we expect (another protocol version, a short read): the
    caller then fetches as usual.
    """
    position = 0
    first = True
    while position + 4 <= len(data):
        try:
            length = int(data[position : position + 4], 16)
        except ValueError:
            return None
        if length == 0:
            return ""
        if length < 4 or position + length > len(data):
            return None
        payload = data[position + 4 : position + length].split(b"\0", 1)[0].rstrip(b"\n")
        position += length
        if first and payload.startswith(b"version "):
            return None
        first = False
        oid, _, name = payload.partition(b" ")
        if name == BRANCH_REF.encode():
            return oid.decode("ascii", errors="replace")
    return None


def local_ref(git_dir: Path, ref: str) -> str | None:
    """A ref's object id read from the repository's files (loose, then packed-refs); no git process."""
    try:
        return (git_dir / ref).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        pass
    try:
        packed = (git_dir / "packed-refs").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in packed.splitlines():
        oid, _, name = line.partition(" ")
        if name == ref:
            return oid
    return None
