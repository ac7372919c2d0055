"""Fresh context at session start: when no sync ran lately, ask the hub and wait a moment for news.

The first session after sitting down at a machine is the one that matters, and the note the
other machine wrote an hour ago should be in its context. So when the last sync is older than
the interval, SessionStart starts `anamnesis sync --progress` at once (a detached process: the
hook never imports asyncssh) and reads its progress lines on a pipe, for at most `wait`
seconds (`sync.start_wait`, 1.5 by default). First, when OpenSSH's client is installed, one
round trip asks each hub where its main is (`anamnesis.sync.quickcheck`): with nothing new the
context is composed at once and the sync goes on detached, only pushing.

- `none`: the hub has nothing this machine lacks; the context is composed now (the sync goes on
  detached, pushing whatever this machine has);
- `news` then `done`: fetched, merged and indexed; the context includes it;
- `news` and the bound passes: the context comes from the index as it is, plus one line saying
  newer notes are arriving; the sync finishes detached;
- `failed`, silence, or the pipe closing: the context is composed now, and says nothing.

Within the interval of a sync (or of the service last hearing from the hub) nothing is started
and nothing waited for. An unreachable hub costs at most the bound, once per interval: the
marker is touched before the process starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from anamnesis.autosync import mark_requested, spawn, sync_due
from anamnesis.config import Config

ARRIVING = "Newer notes from your other machines are arriving right now; memory_search finds them in a few seconds."


def sync_at_start(config: Config, environ: Mapping[str, str], wait: float) -> str | None:
    """Start a sync when one is due and wait up to `wait` s for its news; a line for the context, or None."""
    if not sync_due(config):
        return None
    mark_requested(config.layout)
    deadline = time.monotonic() + wait
    if wait > 0:
        from anamnesis.sync.quickcheck import hub_has_news

        # One OpenSSH round trip answers "nothing new" without the sync's half-second start.
        if hub_has_news(config, wait) is False:
            wait = 0.0
    if wait <= 0 or time.monotonic() >= deadline:
        spawn(["sync", "--quiet"], environ)  # it still sends what this machine has
        return None
    child = spawn(["sync", "--progress"], environ, report=True)
    assert child.stdout is not None
    try:
        news = _wait_for_news(child.stdout.fileno(), deadline)
    finally:
        child.stdout.close()  # the child goes on; its further progress lines go nowhere
    return ARRIVING if news else None


def _wait_for_news(fd: int, deadline: float) -> bool:
    """Read progress lines until the sync says there is nothing, or is done, or the deadline: True
    when news was announced and the deadline passed before it arrived."""
    import select

    buffered = b""
    news = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return news
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return news
        chunk = os.read(fd, 4096)
        if not chunk:
            return False  # the sync ended without saying done (it failed): nothing to promise
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            word = line.strip().split(b" ", 1)[0]
            if word == b"news":
                news = True
            elif word in (b"none", b"done", b"failed"):
                return False
