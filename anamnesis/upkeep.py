"""Upkeep of a store that lives for years: a packed repository, a history index, pruned state.

Every note write is a commit, and every git call runs with automatic gc off (a background
commit must never stall on a gc), so without upkeep `memory/.git` only grows: about 24 KB of
loose objects per tiny note, 130,000 loose files after three years. Upkeep keeps it packed
(a geometric repack: it rolls the loose objects and the small packs into one, and leaves the
big packs alone, so each run's work is bounded by what changed since the last; once a month a
full repack on one thread searches deltas afresh, which keeps the repository within about
1.1x of `git gc --aggressive`) and keeps a
commit-graph with changed-path Bloom filters, which `git log -- <note paths>` needs to answer a
note's history in milliseconds at 30,000 commits. It also prunes the machine-local files that
grow per session (see `prune_state`).

It runs only in long-lived or detached processes (the service, and the detached `capture` and
`sync` processes), never on a hook's path; at most once per `UPKEEP_EVERY`, one at a time per
home, under the git lock so no commit runs halfway through. A run killed halfway leaves git's
own temporary files and locks; the next run clears those it can prove stale and starts again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio

from anamnesis.atomic import atomic_write
from anamnesis.config import Config, Layout
from anamnesis.errors import BusyError, GitError
from anamnesis.gitrepo import STALE_GIT_LOCK_AGE, GitRepo
from anamnesis.locks import file_lock, git_lock

logger = logging.getLogger(__name__)

UPKEEP_EVERY = 3600.0  # seconds between runs
FULL_REPACK_EVERY = 30 * 86400.0  # a full repack recomputes deltas: 9 MB where geometric kept 17 MB
LOOSE_OBJECT_LIMIT = 256  # more loose objects than this, or
PACK_LIMIT = 12  # more packs than this: repack
STATE_MAX_AGE = 45 * 24 * 3600.0  # per-session files older than this are forgotten (transcripts live 30 days)
LOG_MAX_BYTES = 1 << 20  # a log past this keeps its newest quarter
UPKEEP_TIMEOUT = 600.0
_RECORD = "upkeep.json"


@dataclass(frozen=True, slots=True)
class RepoFootprint:
    """What `git count-objects -v` says, plus whether a commit-graph exists."""

    loose_objects: int = 0
    loose_bytes: int = 0
    packs: int = 0
    pack_bytes: int = 0
    commit_graph: bool = False

    @property
    def needs_repack(self) -> bool:
        return self.loose_objects > LOOSE_OBJECT_LIMIT or self.packs > PACK_LIMIT


@dataclass(frozen=True, slots=True)
class UpkeepRecord:
    """One run, as `state/upkeep.json` keeps it for `doctor` and `status`."""

    finished_at: float
    seconds: float
    before: RepoFootprint
    after: RepoFootprint
    repacked: bool
    pruned_files: int
    error: str | None = None
    full_repack_at: float | None = None  # the last full repack, this run's or an earlier one's

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def footprint(repo: GitRepo) -> RepoFootprint:
    result = await repo.run("count-objects", "-v", check=False)
    fields: dict[str, int] = {}
    for line in result.stdout.decode("utf-8", errors="replace").splitlines():
        key, _, value = line.partition(":")
        if value.strip().isdigit():
            fields[key.strip()] = int(value.strip())
    info = repo.git_dir / "objects" / "info"
    has_graph = (info / "commit-graph").is_file() or (info / "commit-graphs" / "commit-graph-chain").is_file()
    return RepoFootprint(
        loose_objects=fields.get("count", 0),
        loose_bytes=fields.get("size", 0) * 1024,
        packs=fields.get("packs", 0),
        pack_bytes=fields.get("size-pack", 0) * 1024,
        commit_graph=has_graph,
    )


def last_upkeep(layout: Layout) -> UpkeepRecord | None:
    try:
        data = json.loads((layout.state_dir / _RECORD).read_text(encoding="utf-8"))
        return UpkeepRecord(
            finished_at=float(data["finished_at"]),
            seconds=float(data["seconds"]),
            before=RepoFootprint(**data["before"]),
            after=RepoFootprint(**data["after"]),
            repacked=bool(data["repacked"]),
            pruned_files=int(data["pruned_files"]),
            error=data.get("error"),
            full_repack_at=data.get("full_repack_at"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def upkeep_due(layout: Layout, now: float | None = None) -> bool:
    record = last_upkeep(layout)
    return record is None or (now if now is not None else time.time()) - record.finished_at >= UPKEEP_EVERY


async def run_upkeep(config: Config, *, force: bool = False) -> UpkeepRecord | None:
    """Repack, refresh the history index and prune state when due (or `force`); None when not run.

    Not run when the last run is recent, or when another process is running upkeep now.
    """
    layout = config.layout
    if not force and not upkeep_due(layout):
        return None
    try:
        async with file_lock(layout.state_dir / "upkeep.lock", 0.0, "upkeep"):
            if not force and not upkeep_due(layout):  # another process just finished one
                return None
            return await _run(config)
    except BusyError:
        return None


async def _run(config: Config) -> UpkeepRecord:
    layout = config.layout
    started = time.monotonic()
    pruned = await anyio.to_thread.run_sync(prune_state, layout)
    repo = GitRepo(layout.memory_dir, config.machine_id)
    before = after = RepoFootprint()
    repacked = False
    error = None
    previous = last_upkeep(layout)
    full_repack_at = previous.full_repack_at if previous is not None else None
    full_due = full_repack_at is None or time.time() - full_repack_at >= FULL_REPACK_EVERY
    try:
        with anyio.fail_after(UPKEEP_TIMEOUT):
            async with git_lock(layout.state_dir):
                if await repo.is_repo():
                    await repo.recover_stale_locks(STALE_GIT_LOCK_AGE)
                    await anyio.to_thread.run_sync(_remove_stale_pack_temporaries, repo.git_dir)
                    before = await footprint(repo)
                    if full_due and await repo.head() is not None:
                        # Monthly, everything into one pack with deltas searched afresh (-f): what a
                        # fetch or an old geometric roll-up stored whole gets compressed. One thread,
                        # so the user's machine keeps a core; a window of 20 (git's default is 10)
                        # keeps a years-old store near gc --aggressive (window 250) at a tenth of its time.
                        await repo.run(
                            "-c",
                            "pack.threads=1",
                            "-c",
                            "pack.window=20",
                            "repack",
                            "-a",
                            "-d",
                            "-f",
                            "-q",
                            "--no-write-bitmap-index",
                            timeout=UPKEEP_TIMEOUT,
                        )
                        repacked, full_repack_at = True, time.time()
                    elif before.needs_repack:
                        # -d also removes the loose objects it packed (git prune-packed).
                        await repo.run(
                            "repack", "-d", "-q", "--geometric=2", "--no-write-bitmap-index", timeout=UPKEEP_TIMEOUT
                        )
                        repacked = True
                    await repo.run(
                        "commit-graph",
                        "write",
                        "--reachable",
                        "--changed-paths",
                        "--split",
                        "--no-progress",
                        timeout=UPKEEP_TIMEOUT,
                    )
                    after = await footprint(repo)
    except (GitError, BusyError, TimeoutError) as exc:
        error = str(exc) or type(exc).__name__
        logger.warning("upkeep of %s failed: %s", layout.memory_dir, error)
    record = UpkeepRecord(
        time.time(), time.monotonic() - started, before, after, repacked, pruned, error, full_repack_at
    )
    _save(layout, record)
    return record


def _save(layout: Layout, record: UpkeepRecord) -> None:
    path = layout.state_dir / _RECORD
    atomic_write(path, json.dumps(record.as_dict(), indent=2) + "\n")


def _remove_stale_pack_temporaries(git_dir: Path) -> None:
    """Temporary packs of a repack or fetch that was killed (git leaves them for ever)."""
    cutoff = time.time() - STALE_GIT_LOCK_AGE
    pack_dir = git_dir / "objects" / "pack"
    for pattern in (".tmp-*", "tmp_pack_*", "tmp_idx_*"):
        for path in pack_dir.glob(pattern):
            try:
                if path.lstat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                continue
    for lock in (git_dir / "objects" / "info").glob("**/commit-graph*.lock"):
        try:
            if lock.lstat().st_mtime < cutoff:
                lock.unlink()
        except OSError:
            continue


# -- machine-local state that grows per session --------------------------------------------------

# (directory under state/, file pattern): one file per Claude Code session or reflection run.
# The capture cursors (state/capture/sessions/) prune themselves when a session starts.
_PER_SESSION = (("sessions", "*.json"), ("reflection", "*.json"))
_LOGS = ("hooks.log", "service.log")


def prune_state(layout: Layout, now: float | None = None) -> int:
    """Forget per-session files older than `STATE_MAX_AGE` and trim logs past `LOG_MAX_BYTES`.

    What grows per session: the prompt hook's "already shown" list (`state/sessions/`), decided
    reflection proposals
    (`state/reflection/`, pending ones are kept whatever their age) and the logs. The number of
    files removed or trimmed is returned.
    """
    cutoff = (now if now is not None else time.time()) - STATE_MAX_AGE
    changed = 0
    for subdir, pattern in _PER_SESSION:
        for path in (layout.state_dir / subdir).glob(pattern):
            try:
                if path.lstat().st_mtime >= cutoff or (subdir == "reflection" and _pending(path)):
                    continue
                path.unlink()
                changed += 1
            except OSError:
                continue
    for name in _LOGS:
        changed += _trim_log(layout.state_dir / name)
    return changed


def _pending(path: Path) -> bool:
    try:
        status = json.loads(path.read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return False
    return bool(status == "pending")


def _trim_log(path: Path) -> int:
    """Keep the newest quarter of a log past the limit, from a line start; 1 when trimmed.

    Trimmed in place, not replaced: the service's log is held open (O_APPEND) by systemd or
    launchd, which would go on writing into a replaced file's old, unlinked inode.
    """
    try:
        with open(path, "r+b") as handle:
            if os.fstat(handle.fileno()).st_size <= LOG_MAX_BYTES:
                return 0
            handle.seek(-(LOG_MAX_BYTES // 4), os.SEEK_END)
            tail = handle.read()
            tail = tail[tail.find(b"\n") + 1 :]
            handle.seek(0)
            handle.write(tail)
            handle.truncate()
        return 1
    except OSError:
        return 0


async def keep_up(config: Config, *, check_every: float = 600.0, first_after: float = 60.0) -> None:
    """The service's upkeep task: a look a minute after start, then every ten minutes; it runs
    when the last run (by any process of this home) is `UPKEEP_EVERY` old."""
    await anyio.sleep(first_after)  # let the service's first sync and refresh go first
    while True:
        try:
            record = await run_upkeep(config)
        except Exception:  # upkeep must never take the service down
            logger.exception("upkeep failed unexpectedly")
        else:
            if record is not None:
                logger.info("upkeep: %s", record.after)
        await anyio.sleep(check_every)
