"""Syncs nobody asks for: when one is due, a push soon after a change, and whether a service runs.

Three kinds of process write notes: the service (which watches memory/ and pushes by itself),
the MCP server of each Claude Code session, and hooks or detached captures. When no service
runs, a writer calls `push_soon`: it starts one detached `anamnesis sync --settle` that waits
until memory/ has been quiet for a moment, then syncs, so a burst of writes is one push. While
that process is still waiting it holds `state/push-pending.lock`, and further writers start
nothing: the waiting process carries their notes too.

What time says "synced lately": the newest of `state/sync-requested` (a sync was started),
`state/sync.json` (a cycle ended) and `state/hub-heard.json` (the service asked the hub where
its main is). Only stats: the session-start hook reads this on every start.

Stdlib only at import time: the hooks import this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from anamnesis.atomic import atomic_write
from anamnesis.config import Config, Layout

if TYPE_CHECKING:
    import subprocess

REQUESTED_FILE = "sync-requested"
HEARD_FILE = "hub-heard.json"
STATE_FILE = "sync.json"  # written by the sync engine (`anamnesis.sync.fleet.state_path`)
PENDING_LOCK = "push-pending.lock"
SERVICE_INFO = "service.json"  # written by the running service (`anamnesis.service`)
SETTLE_SECONDS = 2.0  # a detached push waits for memory/ to be this quiet


def spawn(arguments: list[str], environ: Mapping[str, str], *, report: bool = False) -> subprocess.Popen[bytes]:
    """Start `anamnesis ARGUMENTS` in its own session, so it outlives the caller.

    With `report`, its stdout is a pipe the caller may read (and may stop reading: the child
    must survive a closed pipe), and the caller is expected to exit soon (a hook). Otherwise
    everything goes to /dev/null and a shell in between starts it in the background and exits
    at once, so a long-lived caller (an MCP server) is left with no child to reap.
    """
    import subprocess  # here: 2.5 ms the session-start hook only pays when it starts a sync

    command = [sys.executable, "-m", "anamnesis", *arguments]
    if not report:
        command = ["/bin/sh", "-c", '"$@" &', "sh", *command]
    child = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if report else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        env=dict(environ),
    )
    if not report:
        child.wait()  # the shell only forks: a few milliseconds
    return child


def service_alive(layout: Layout) -> bool:
    """Whether `anamnesis serve` runs for this home (its info file names a live process)."""
    try:
        info = json.loads((layout.state_dir / SERVICE_INFO).read_text(encoding="utf-8"))
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def push_soon(config: Config, environ: Mapping[str, str]) -> str:
    """Make sure what was just written reaches the hub within seconds; says how.

    "service" (the running service pushes it), "started" (a detached push was started),
    "pending" (one is already waiting and will carry it), "off" (no hub) or "failed" (no
    process could be started: the next sync carries it).
    """
    if not config.has_hub:
        return "off"
    layout = config.layout
    if service_alive(layout):
        return "service"
    from anamnesis.locks import release_file_lock, try_file_lock

    try:
        fd = try_file_lock(layout.state_dir / PENDING_LOCK)
        if fd is None:
            return "pending"
        release_file_lock(fd)  # the child takes it; two children racing here: the second one exits
        spawn(["sync", "--quiet", "--settle", f"{SETTLE_SECONDS:g}"], {**environ, "ANAMNESIS_HOME": str(config.home)})
    except OSError:
        return "failed"
    return "started"


def last_synced(layout: Layout) -> float:
    """When a sync last started or ended, or the service last heard from the hub (epoch seconds, 0 if never)."""
    newest = 0.0
    for name in (REQUESTED_FILE, STATE_FILE, HEARD_FILE):
        with contextlib.suppress(OSError):
            newest = max(newest, os.path.getmtime(layout.state_dir / name))
    return newest


def sync_due(config: Config, now: float | None = None) -> bool:
    """A hub is configured and nothing synced with it within the sync interval."""
    if not config.has_hub:
        return False
    moment = time.time() if now is None else now
    return moment - last_synced(config.layout) >= config.sync_interval


def mark_requested(layout: Layout) -> None:
    """Record that a sync was started now (sessions starting together then start one between them)."""
    marker = layout.state_dir / REQUESTED_FILE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def read_heard(layout: Layout) -> dict[str, Any]:
    """What the service last heard from its hubs: {"heard_at_unix": …, "peers": {name: main}}, or {}."""
    path = layout.state_dir / HEARD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        heard = os.path.getmtime(path)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {"heard_at_unix": heard, "peers": data.get("peers") if isinstance(data.get("peers"), dict) else {}}


def record_heard(layout: Layout, peers: Mapping[str, str]) -> None:
    """The service heard from the hub now: rewrite the file when a main moved, else just touch it.

    Its mtime is the time last heard, so a check every few seconds costs one `utime`.
    """
    path = layout.state_dir / HEARD_FILE
    text = json.dumps({"peers": dict(sorted(peers.items()))}, sort_keys=True) + "\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            os.utime(path)
            return
    except OSError:
        pass
    atomic_write(path, text)
