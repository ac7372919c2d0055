"""The hub host keys this home trusts: `<home>/known_hosts`, OpenSSH format. Pure and blocking.

Anamnesis keeps its own known_hosts next to config.json so that `peer add` can record a key the
user confirmed without touching `~/.ssh/known_hosts`; the SSH transport trusts both files (and
the one `UserKnownHostsFile` names). asyncssh has no `StrictHostKeyChecking accept-new`, so
trust on first use is explicit here: a key is written only after the user saw its fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path

from anamnesis.atomic import atomic_write
from anamnesis.config import Layout
from anamnesis.errors import HostKeyError

DEFAULT_SSH_PORT = 22


@dataclass(frozen=True, slots=True)
class HostKeyProbe:
    """The key a hub presented, and whether this home already trusts it."""

    host: str
    port: int | None
    pattern: str  # known_hosts name for host and port
    public_key: str  # "ssh-ed25519 AAAA…"
    algorithm: str
    fingerprint: str
    status: str  # "trusted" | "unknown" | "changed"


def known_hosts_path(layout: Layout) -> Path:
    return layout.home / "known_hosts"


def host_pattern(host: str, port: int | None) -> str:
    """How known_hosts names a host: `host`, or `[host]:port` off port 22 (as OpenSSH writes)."""
    return host if port in (None, DEFAULT_SSH_PORT) else f"[{host}]:{port}"


def key_fingerprint(public_key: str) -> str:
    """`SHA256:…` of an OpenSSH public key line (`ssh-ed25519 AAAA… comment`), as ssh-keygen -l shows."""
    parts = public_key.split()
    if len(parts) < 2:
        raise HostKeyError(f"not an SSH public key: {public_key[:40]!r}")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HostKeyError(f"not an SSH public key: {public_key[:40]!r}") from exc
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def normalize_fingerprint(text: str) -> str:
    """Accept `SHA256:abc` or `abc` (ssh-keygen output pasted with or without the prefix)."""
    value = text.strip()
    if value.upper().startswith("SHA256:"):
        value = value[7:]
    return "SHA256:" + value.rstrip("=")


def add_known_host(path: Path, pattern: str, public_key: str, *, replace: bool = False) -> None:
    """Trust `public_key` for `pattern`; with `replace`, forget this file's other keys for it.

    Written atomically with mode 0600; lines for other hosts are kept as they are.
    """
    key_type, key_data = public_key.split()[:2]
    lines: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        lines = path.read_text(encoding="utf-8").splitlines()
    entry = f"{pattern} {key_type} {key_data}"
    kept = []
    for line in lines:
        fields = line.split()
        hosts = fields[0].split(",") if fields and not line.lstrip().startswith("#") else []
        if pattern in hosts and (replace or fields[1:3] == [key_type, key_data]):
            continue
        kept.append(line)
    kept.append(entry)
    atomic_write(path, "\n".join(kept) + "\n", mode=0o600)
