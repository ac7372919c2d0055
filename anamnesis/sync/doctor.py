"""`anamnesis doctor`'s sync checks: can this machine reach its hubs, how did the last sync go,
and which notes would sync hold back because they still look like they hold a secret.

An unreachable hub is a warning (a laptop away from home is normal; notes are safe here); a
refused key, an untrusted or changed host key, a failing sync and a note that cannot be pushed
are errors: each needs the user to act, and the finding says how.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio.to_thread

from anamnesis.config import Config
from anamnesis.doctor import Finding
from anamnesis.errors import AnamnesisError, PeerUnreachableError
from anamnesis.store import read_regular_file
from anamnesis.sync import current_config
from anamnesis.sync.fleet import SyncState, state_path
from anamnesis.sync.gate import describe_withheld, withheld_kinds
from anamnesis.sync.peers import Peer, configured_peers, parse_hub_url, sync_settings

CHECK = "sync"
DOCTOR_CONNECT_TIMEOUT = 8.0  # seconds: enough for a tailnet hub, short enough to wait for
SHOWN = 10


async def check_sync(config: Config) -> list[Finding]:
    """Hubs reachable, last sync, notes held back: what `anamnesis doctor` shows under `sync`."""
    config = await anyio.to_thread.run_sync(current_config, config)
    findings = await anyio.to_thread.run_sync(_notes_withheld, config.layout.memory_dir)
    peers = configured_peers(config)
    if not peers:
        return [Finding("ok", CHECK, "no hub configured: notes stay on this machine"), *findings]
    for peer in peers:
        findings.insert(0, await _reach(config, peer))
    return [*findings, _last_sync(SyncState.load(state_path(config.layout)))]


async def _reach(config: Config, peer: Peer) -> Finding:
    from anamnesis.sync.ssh import connect_hub

    settings = dataclasses.replace(sync_settings(config), connect_timeout=DOCTOR_CONNECT_TIMEOUT)
    try:
        hub = parse_hub_url(peer.url)
        conn, _ = await connect_hub(config.layout, settings, hub, peer.name)
    except PeerUnreachableError as exc:
        return Finding("warning", CHECK, f"hub {peer.name}: {exc}", "sync resumes once the hub is reachable")
    except AnamnesisError as exc:
        return Finding("error", CHECK, f"hub {peer.name}: {exc}", "see the message; then run `anamnesis sync`")
    conn.close()
    await conn.wait_closed()
    return Finding("ok", CHECK, f"hub {peer.name} ({peer.url}) answers; its host key is the trusted one")


def _last_sync(state: SyncState) -> Finding:
    if state.consecutive_failures and state.last_error:
        return Finding(
            "error",
            CHECK,
            f"the last {state.consecutive_failures} sync(s) failed: {state.last_error}",
            "fix what the message says, then run `anamnesis sync`",
        )
    if state.last_ok is None:
        return Finding("warning", CHECK, "this machine has never synced", "run `anamnesis sync`")
    return Finding("ok", CHECK, f"last synced at {state.last_ok}")


def _notes_withheld(memory_dir: Path) -> list[Finding]:
    """Notes the next push would hold back (the sync gate's own test): one error each, with the fix."""
    texts: dict[str, str] = {}
    for path in sorted(memory_dir.glob("*/*.md")):
        try:
            if path.parent.is_symlink():
                continue  # never read through a link (the notes check lists it)
            data = read_regular_file(str(path))
        except (OSError, AnamnesisError):
            continue
        texts[path.relative_to(memory_dir).as_posix()] = data.decode("utf-8", errors="replace")
    flagged = sorted(withheld_kinds(texts).items())
    findings = [
        Finding(
            "error",
            CHECK,
            f"{describe_withheld(name, texts[name], kinds).describe()} (sync will not push it until then)",
            "edit the note; only this machine's git history keeps the old text",
        )
        for name, kinds in flagged[:SHOWN]
    ]
    if len(flagged) > SHOWN:
        findings.append(Finding("error", CHECK, f"… and {len(flagged) - SHOWN} more notes that sync holds back"))
    return findings
