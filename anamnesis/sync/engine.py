"""The sync cycle: commit, fetch, integrate, push, refresh the index; one at a time per home.

One cycle, for each hub in turn: commit what changed here (as this machine), fetch the hub,
integrate (fast-forward, or a merge that keeps both sides of a collision), publish this
machine's fleet file when there is something to send anyway, hold back notes that still
hold secrets, and push, never forced. A push that loses a race with another machine fetches,
merges and tries again after a random pause. Afterwards only the notes that changed are
re-read into the index.

The engine does not know SSH: the transport it is handed (`LinkOpener`, see `link`) gives it
the environment git needs to reach a hub for the length of a cycle, and reports a failure as a
code that the engine turns back into its error type. Which transport that is, the wiring
decides (`anamnesis.sync.wiring`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import PurePosixPath
from typing import Any

import anyio
import anyio.to_thread

from anamnesis.errors import (
    AnamnesisError,
    BusyError,
    GitError,
    HubRepoMissingError,
    NoHubError,
    PeerUnreachableError,
    SyncError,
)
from anamnesis.gitrepo import BRANCH
from anamnesis.locks import file_lock, git_lock
from anamnesis.memory import Memory
from anamnesis.notes import NOTE_TYPES, utc_now
from anamnesis.sync.fleet import (
    FleetEntry,
    SyncState,
    install_id,
    name_clash_message,
    own_fleet_path,
    state_path,
    write_fleet_file,
)
from anamnesis.sync.gate import PushPlan, plan_push
from anamnesis.sync.link import HubLink, LinkFailure, LinkOpener, read_marks
from anamnesis.sync.merge import MergeOutcome, integrate
from anamnesis.sync.peers import Peer, SyncSettings
from anamnesis.sync.repo import SyncRepo
from anamnesis.sync.report import HubResult, SyncReport

logger = logging.getLogger(__name__)

NO_HUB = "no hub configured; add one with `anamnesis peer add NAME ssh://user@host/path`"
# What git itself (not our transport, which sends a code) says when the connection dies under it.
_GIT_LOST_SIGNS = ("unexpected disconnect", "early EOF", "the remote end hung up", "Connection reset", "Broken pipe")
_REF_RACE_SIGNS = ("failed to update ref", "cannot lock ref", "incorrect old value", "non-fast-forward", "fetch first")


def is_note_path(path: str) -> bool:
    """A path in memory/ that the index reads: `<type>/<name>.md`."""
    parts = PurePosixPath(path).parts
    return len(parts) == 2 and parts[0] in NOTE_TYPES and parts[1].endswith(".md")


class SyncEngine:
    """Runs sync cycles for one open memory."""

    def __init__(self, memory: Memory, settings: SyncSettings, transport: LinkOpener) -> None:
        self.memory = memory
        self.settings = settings
        self.transport = transport
        self.layout = memory.config.layout
        self.machine = memory.config.machine_id
        self.repo = SyncRepo(self.layout.memory_dir, self.machine)

    # -- the cycle ------------------------------------------------------------------------------

    async def run(self, peers: Sequence[Peer]) -> SyncReport:
        """One cycle with every hub; the report, or the error when no hub could be synced."""
        if not peers:
            raise NoHubError(NO_HUB)
        async with self._sync_lock():
            return await self._locked_run(peers)

    @asynccontextmanager
    async def _sync_lock(self) -> AsyncIterator[None]:
        """One cycle at a time per home; a second caller waits a little, then says a sync is running."""
        entered = False
        try:
            async with file_lock(self.layout.state_dir / "sync.lock", self.settings.lock_wait, "the sync"):
                entered = True
                yield
        except BusyError as exc:
            if entered:
                raise
            raise BusyError(
                f"a sync of this home is already running (waited {self.settings.lock_wait:g} s); "
                "it carries what is committed, and the next sync carries the rest"
            ) from exc

    async def _locked_run(self, peers: Sequence[Peer]) -> SyncReport:
        path = state_path(self.layout)
        state = await anyio.to_thread.run_sync(SyncState.load, path)
        state.last_attempt = utc_now()
        report = SyncReport(machine=self.machine)
        failures: list[AnamnesisError] = []
        try:
            await self._cycle(peers, report, state, failures)
        except AnamnesisError as exc:
            state.last_error = str(exc)
            state.consecutive_failures += 1
            await anyio.to_thread.run_sync(state.save, path)
            raise
        state.conflicts_total += len(report.conflicts)
        if report.pushed:
            state.last_pushed = utc_now()
        state.withheld_paths = [w.path for w in report.withheld]
        state.last_summary = {k: v for k, v in report.as_dict().items() if k in ("pushed", "pulled", "head", "errors")}
        if failures:
            state.last_error = str(failures[0])
            state.consecutive_failures += 1
        else:
            state.last_ok, state.last_error, state.consecutive_failures = state.last_attempt, None, 0
        await anyio.to_thread.run_sync(state.save, path)
        if failures and len(failures) == len(report.hubs):
            raise failures[0]
        return report

    async def _cycle(
        self, peers: Sequence[Peer], report: SyncReport, state: SyncState, failures: list[AnamnesisError]
    ) -> None:
        repo = self.repo
        await repo.check_state()
        await repo.prepare()
        report.recovered_locks = await repo.recover_stale_locks(self.settings.stale_lock_age)
        if report.recovered_locks:
            logger.warning("removed stale git locks: %s", ", ".join(report.recovered_locks))
        start = await repo.rev("HEAD")
        async with git_lock(self.layout.state_dir):
            head, report.left_out = await repo.commit_layout(f"anamnesis: sync on {self.machine}")
            report.committed = head is not None
        if report.left_out:
            logger.warning("not synced (not notes): %s", ", ".join(report.left_out[:10]))
        published = False
        for peer in peers:
            result = HubResult(peer.name, peer.url)
            report.hubs.append(result)
            try:
                published = await self._sync_hub(peer, result, report, state, published)
            except AnamnesisError as exc:  # one hub's failure must not keep the others from syncing
                result.error = str(exc)
                failures.append(exc)
                logger.warning("sync with %s failed: %s", peer.name, exc)
        report.fleet_published = published
        report.head = await repo.rev("HEAD")
        changed = [p for p in await repo.changed_paths(start, report.head) if is_note_path(p)]
        rel_root = self.layout.memory_dir.relative_to(self.layout.home)
        report.changed_paths = [(rel_root / p).as_posix() for p in changed]
        if report.changed_paths:
            refreshed = await self.memory.refresh_paths(report.changed_paths)
            report.indexed = refreshed.added + refreshed.updated + refreshed.removed

    async def _sync_hub(
        self, peer: Peer, result: HubResult, report: SyncReport, state: SyncState, published: bool
    ) -> bool:
        repo = self.repo
        remote_ref = f"refs/remotes/{peer.name}/{BRANCH}"
        await self._ensure_remote(peer)
        async with self.transport.open_link(peer, self.settings) as link:
            for attempt in range(1, self.settings.push_attempts + 1):
                result.attempts = attempt
                await self._fetch(peer, link, remote_ref, may_skip=attempt == 1)
                async with git_lock(self.layout.state_dir):
                    before = await repo.rev("HEAD")
                    merged = await self._integrate(remote_ref, peer)
                    if merged.head is not None:
                        result.pulled += sum(is_note_path(p) for p in await repo.changed_paths(before, merged.head))
                    report.conflicts += merged.conflicts
                    report.kept_edits += merged.kept_edits
                    theirs = await repo.rev(remote_ref)
                    if not published:
                        published = await self._publish_fleet(theirs, report, state)
                    plan: PushPlan = await plan_push(repo, theirs, self.machine)
                    report.withheld = plan.withheld
                    if plan.withheld:
                        logger.warning("not pushed (secrets): %s", "; ".join(w.describe() for w in plan.withheld))
                if plan.rev is None:
                    return published
                if await self._push(peer, link, plan.rev):
                    result.pushed = True
                    return published
                await anyio.sleep(random.uniform(0.05, 0.4) * attempt)
        raise SyncError(
            f"the hub '{peer.name}' kept changing during {self.settings.push_attempts} push attempts (other machines "
            "syncing at the same moment); nothing is lost and the next sync tries again"
        )

    # -- pieces ---------------------------------------------------------------------------------

    async def _integrate(self, remote_ref: str, peer: Peer) -> MergeOutcome:
        """Commit what is here, then integrate; again if a file was saved by hand in between.

        Anamnesis's own writers wait for the git lock we hold, but an editor does not: if it
        saves a note the merge touches after our commit, the fast-forward refuses to overwrite
        it. Committing that edit and merging again keeps it.
        """
        for attempt in range(3):
            await self.repo.commit_all(f"anamnesis: sync on {self.machine}")
            try:
                return await integrate(self.repo, remote_ref, self.machine, peer.name)
            except GitError as exc:
                if "would be overwritten" not in exc.stderr or attempt == 2:
                    raise
                logger.info("a note was saved during the merge; committing it and merging again")
        raise AssertionError("unreachable")

    async def _ensure_remote(self, peer: Peer) -> None:
        """The peer as a normal git remote in memory/, so the user's own `git pull NAME` works too."""
        current = await self.repo.run("config", "--get", f"remote.{peer.name}.url", check=False)
        url = current.stdout.decode().strip()
        if current.returncode != 0:
            await self.repo.run("remote", "add", peer.name, peer.url)
        elif url != peer.url:
            await self.repo.run("remote", "set-url", peer.name, peer.url)

    async def _publish_fleet(self, theirs: str | None, report: SyncReport, state: SyncState) -> bool:
        """Write and commit this machine's fleet file when a push happens anyway, or on the heartbeat."""
        repo = self.repo
        head = await repo.rev("HEAD")
        install = await anyio.to_thread.run_sync(install_id, self.layout)
        own, clash = await anyio.to_thread.run_sync(own_fleet_path, self.layout.memory_dir, self.machine, install)
        if clash is not None:
            report.name_clash = name_clash_message(self.machine, clash)
        exists = await anyio.Path(self.layout.memory_dir / own).exists()
        ahead = False
        if head is not None and head != theirs and not (theirs and await repo.is_ancestor(head, theirs)):
            quiet = {own, *(w.path for w in report.withheld), *state.withheld_paths}
            ahead = any(p not in quiet for p in await repo.changed_paths(theirs, head))
        heartbeat_due = time.time() - state.fleet_published_at >= self.settings.fleet_heartbeat
        if not (ahead or heartbeat_due or not exists):
            return False
        entry = FleetEntry(
            machine=self.machine,
            synced_at=utc_now(),
            synced_at_unix=time.time(),
            head=head,
            notes_written=await self._notes_written(),
            conflicts=state.conflicts_total + len(report.conflicts),
            withheld=len(report.withheld),
            pushed_at=utc_now() if ahead else state.last_pushed,  # when ahead, this cycle pushes
            heard_at=utc_now(),  # published right after a fetch (or a check that made one needless)
            install=install,
        )
        rel = await anyio.to_thread.run_sync(write_fleet_file, self.layout.memory_dir, entry, own)
        await repo.commit_paths([rel], f"anamnesis: fleet status of {self.machine}")
        state.fleet_published_at = entry.synced_at_unix
        return True

    async def _notes_written(self) -> int:
        return await self.memory.notes_written_by(self.machine)

    async def _fetch(self, peer: Peer, link: HubLink, remote_ref: str, *, may_skip: bool) -> None:
        """Fetch the hub, unless it says its main is what we fetched last time (never after a lost race)."""
        if may_skip and link.hub_main is not None:
            seen = await link.hub_main()
            if seen is not None and seen == (await self.repo.rev(remote_ref) or ""):
                return
        argv = ["fetch", "--quiet", "--no-tags", "--prune", "--no-write-fetch-head", peer.name]
        # The glob refspec also works on an empty hub, where refs/heads/main does not exist yet.
        result = await self._network(link, peer, "fetch", [*argv, f"+refs/heads/*:refs/remotes/{peer.name}/*"])
        if result.returncode != 0:
            raise self._network_error(peer, link, "fetch", argv, result.returncode, _text(result.stderr))

    async def _push(self, peer: Peer, link: HubLink, rev: str) -> bool:
        """Push `rev` as the hub's main, never forced; False when another machine got there first."""
        argv = ["push", "--porcelain", "--no-verify", peer.name, f"{rev}:refs/heads/{BRANCH}"]
        result = await self._network(link, peer, "push", argv)
        if result.returncode == 0:
            return True
        out, err = _text(result.stdout), _text(result.stderr)
        for line in out.splitlines():
            if not line.startswith("!"):
                continue
            if "[remote rejected]" in line:
                if any(sign in line or sign in err for sign in _REF_RACE_SIGNS):
                    return False
                reason = line.split("\t")[-1]
                raise SyncError(
                    f"the hub '{peer.name}' refused the push: {reason} {_remote_lines(err)}".strip()
                    + ". Nothing was changed on the hub; check its disk space and hooks (peers/README.md)."
                )
            if "[rejected]" in line:
                return False
        raise self._network_error(peer, link, "push", argv, result.returncode, err)

    async def _network(self, link: HubLink, peer: Peer, what: str, argv: list[str]) -> Any:
        try:
            return await self.repo.run(*argv, check=False, env=dict(link.env), timeout=self.settings.git_timeout)
        except GitError as exc:
            if isinstance(exc.__cause__, TimeoutError):  # gitrepo gave up waiting on git
                raise PeerUnreachableError(
                    f"the hub '{peer.name}' did not finish the {what} within {self.settings.git_timeout:g} s; "
                    "notes stay safe here and the next sync retries"
                ) from exc
            raise

    def _network_error(
        self, peer: Peer, link: HubLink, what: str, argv: list[str], code: int, stderr: str
    ) -> AnamnesisError:
        """The typed error for a failed fetch or push: from the transport's code, else from git's words."""
        if "does not appear to be a git repository" in stderr:  # the hub's git-upload-pack says so
            return HubRepoMissingError(
                f"the hub '{peer.name}' has no repository at {peer.hub.path}; run "
                f"`anamnesis peer add {peer.name} {peer.url}` to create it"
            )
        if "command not found" in stderr or "git-upload-pack: not found" in stderr:
            return SyncError(
                f"the hub '{peer.name}' has no git-upload-pack on the account's PATH; install git there, or link "
                "git-upload-pack and git-receive-pack into /usr/local/bin (peers/README.md)"
            )
        marks = read_marks(stderr)
        for failure, text in marks:  # a failure to connect says more than the lost link it caused
            if failure not in (LinkFailure.LOST, LinkFailure.OTHER):
                return failure.error(text)
        lost = link.lost()
        if lost or any(f is LinkFailure.LOST for f, _ in marks) or any(s in stderr for s in _GIT_LOST_SIGNS):
            because = f" ({lost})" if lost and lost != "closed" else ""
            return PeerUnreachableError(
                f"the connection to the hub '{peer.name}' was lost during the {what}{because}. A push is all or "
                "nothing, so the hub is as it was; notes stay safe here and the next sync retries"
            )
        if marks:
            return marks[0][0].error(marks[0][1])
        return GitError(["git", *argv], code, stderr)


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def _remote_lines(stderr: str) -> str:
    lines = [line.removeprefix("remote: ").strip() for line in stderr.splitlines() if line.startswith("remote:")]
    return "(" + "; ".join(lines[:3]) + ")" if lines else ""
