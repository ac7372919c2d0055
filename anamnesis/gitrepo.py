"""The notes' git repository, driven through the git CLI with `anyio.run_process`.

Every call runs with the user's hooks, signing and auto-gc switched off (a global pre-commit
hook or a hardware signing key must never block a background commit) and with a deadline.
Commits are authored by the machine, so history and the fleet view say where a change came from.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from anamnesis.errors import GitError
from anamnesis.layout import GITATTRIBUTES, content_problem, layout_problem
from anamnesis.settings import STALE_GIT_LOCK_AGE as STALE_GIT_LOCK_AGE  # also sync.stale_lock_age's default

BRANCH = "main"
DEFAULT_TIMEOUT = 60.0
_SAFE_CONFIG = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "commit.gpgSign=false",
    "-c", "tag.gpgSign=false",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "core.autocrlf=false",
    "-c", "core.quotePath=false",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """One commit touching a note, as history pages show it."""

    sha: str
    author: str
    email: str
    timestamp: str
    subject: str
    path: str = ""  # the note's file in this commit (its directory changes with its type)
    deleted: bool = False  # this commit removed the file


def split_by_layout(root: Path, paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """(paths a commit may take, paths it must leave out) of these changed paths in `root`.

    A path may be committed when it is gone (a deletion) or is a regular file where
    `anamnesis.layout` allows one, with content it allows. Blocking.
    """
    send: list[str] = []
    left_out: list[str] = []
    for path in paths:
        full = root / path
        try:
            mode = os.lstat(full).st_mode
            parent_mode = os.lstat(full.parent).st_mode
        except (FileNotFoundError, NotADirectoryError):
            send.append(path)  # a deletion
            continue
        fits = stat.S_ISREG(mode) and stat.S_ISDIR(parent_mode) and layout_problem(path) is None
        if fits and path == GITATTRIBUTES:
            fits = content_problem(path, full.read_bytes()) is None
        (send if fits else left_out).append(path)
    return send, left_out


_FIELD, _RECORD = "\x1f", "\x1e"


class GitRepo:
    """A non-bare repository whose commits are authored by `machine_id`."""

    def __init__(self, path: Path, machine_id: str) -> None:
        self.path = path
        self.machine_id = machine_id

    @property
    def git_dir(self) -> Path:
        return self.path / ".git"

    @property
    def identity_env(self) -> dict[str, str]:
        email = f"anamnesis@{self.machine_id}"
        return {
            "GIT_AUTHOR_NAME": self.machine_id,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": self.machine_id,
            "GIT_COMMITTER_EMAIL": email,
        }

    async def run(
        self,
        *args: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `git args…` in the repo; `GitError` on failure when `check`, or past `timeout`."""
        argv = ["git", *_SAFE_CONFIG, *args]
        full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
        try:
            with anyio.fail_after(timeout):
                result = await anyio.run_process(argv, cwd=self.path, env=full_env, input=input, check=False)
        except TimeoutError as exc:
            raise GitError(["git", *args], -1, f"timed out after {timeout:g} s") from exc
        except FileNotFoundError as exc:
            raise GitError(["git", *args], -1, "git is not installed or not on PATH") from exc
        if check and result.returncode != 0:
            stderr = result.stderr.decode("utf-8", errors="replace")
            raise GitError(["git", *args], result.returncode, stderr)
        return result

    async def output(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        result = await self.run(*args, env=env)
        return result.stdout.decode("utf-8", errors="replace").strip()

    async def is_repo(self) -> bool:
        if not self.git_dir.exists():
            return False
        result = await self.run("rev-parse", "--git-dir", check=False)
        return result.returncode == 0

    async def init(self) -> bool:
        """Create the repo on branch main if it is not one yet; True when it was created."""
        if await self.is_repo():
            return False
        self.path.mkdir(parents=True, exist_ok=True)
        result = await self.run("init", "-q", "-b", BRANCH, check=False)
        if result.returncode != 0:  # git < 2.28 has no -b
            await self.run("init", "-q")
            await self.run("symbolic-ref", "HEAD", f"refs/heads/{BRANCH}")
        return True

    async def head(self) -> str | None:
        result = await self.run("rev-parse", "--verify", "-q", "HEAD", check=False)
        return result.stdout.decode().strip() or None if result.returncode == 0 else None

    async def branch(self) -> str | None:
        result = await self.run("symbolic-ref", "--short", "-q", "HEAD", check=False)
        return result.stdout.decode().strip() or None if result.returncode == 0 else None

    async def file_at(self, sha: str, path: str) -> str:
        """The file `path` as commit `sha` has it; empty when it has none there."""
        result = await self.run("show", f"{sha}:{path}", check=False)
        return result.stdout.decode("utf-8", errors="replace") if result.returncode == 0 else ""

    async def commit_summary(self, rev: str) -> tuple[str, str] | None:
        """(subject, author time) of commit `rev`, or None when this repo does not have it."""
        shown = await self.run("log", "-1", "--format=%s%x1f%aI", f"{rev}^{{commit}}", "--", check=False)
        if shown.returncode != 0 or not shown.stdout.strip():
            return None
        subject, _, time = shown.stdout.decode("utf-8", errors="replace").strip().partition("\x1f")
        return subject, time

    async def ahead_behind(self, rev: str) -> tuple[int | None, int | None]:
        """(commits `rev` has that HEAD lacks, commits HEAD has that `rev` lacks), in one git call."""
        result = await self.run("rev-list", "--left-right", "--count", f"{rev}...HEAD", "--", check=False)
        parts = result.stdout.decode().split()
        if result.returncode != 0 or len(parts) != 2 or not all(p.isdigit() for p in parts):
            return None, None
        return int(parts[0]), int(parts[1])

    async def status_paths(self, *, renames: bool = True, errors: str = "replace") -> list[tuple[str, str]]:
        """(two-letter status, path) for every change not yet committed; `errors` decodes the
        paths ("surrogateescape" gives names git and the file system take back byte for byte)."""
        rename_flag = [] if renames else ["--no-renames"]
        out = (await self.run("status", "--porcelain=v1", "-z", "--untracked-files=all", *rename_flag)).stdout
        entries: list[tuple[str, str]] = []
        fields = out.decode("utf-8", errors=errors).split("\0")
        index = 0
        while index < len(fields):
            field = fields[index]
            index += 1
            if len(field) < 4:
                continue
            code, path = field[:2], field[3:]
            if code[0] in "RC":  # a rename is followed by its source path
                index += 1
            entries.append((code, path))
        return entries

    async def commit_all(self, message: str) -> str | None:
        """Commit every change to what memory/ may hold, as this machine; the new head or None."""
        head, _ = await self.commit_layout(message)
        return head

    async def commit_layout(self, message: str) -> tuple[str | None, list[str]]:
        """Commit every change to what memory/ may hold (`anamnesis.layout`) and nothing else.

        Returns the new head (None when nothing changed) and the changed paths left out: an
        editor backup, a `.env`, a link. They stay on disk, uncommitted, so they never reach a hub.
        Deletions are always committed. What the user staged by hand elsewhere stays staged.
        """
        pending = await self.status_paths(renames=False, errors="surrogateescape")
        send, left_out = await anyio.to_thread.run_sync(split_by_layout, self.path, [p for _, p in pending])
        if not send:
            return None, left_out
        # A private index seeded with HEAD takes just these paths, so what the user staged by
        # hand (a `git add .env`) is not committed with them; the real index then catches up.
        spec = "\0".join(send).encode("utf-8", errors="surrogateescape") + b"\0"
        before = await self.head()
        index = self.git_dir / f"anamnesis-commit-{os.getpid()}-{time.monotonic_ns()}.index"
        private = {"GIT_INDEX_FILE": str(index)}
        try:
            await self.run("read-tree", *([before] if before else ["--empty"]), env=private)
            await self.run("update-index", "--add", "--remove", "-z", "--stdin", input=spec, env=private)
            tree = (await self.run("write-tree", env=private)).stdout.decode().strip()
        finally:
            index.unlink(missing_ok=True)
        if before is not None and tree == (await self.run("rev-parse", f"{before}^{{tree}}")).stdout.decode().strip():
            return None, left_out  # changed back between the status and now
        parents = ["-p", before] if before else []
        commit = (await self.run("commit-tree", tree, *parents, "-m", message, env=self.identity_env)).stdout
        new_head = commit.decode().strip()
        await self.run("update-ref", "-m", f"commit: {message.splitlines()[0]}", "HEAD", new_head, before or "0" * 40)
        await self.run("update-index", "--add", "--remove", "-z", "--stdin", input=spec)
        return new_head, left_out

    async def commit_paths(self, paths: Sequence[str], message: str) -> str | None:
        """Commit just these paths (added, changed or deleted); None when they had no change."""
        if not paths:
            return None
        await self.run("add", "-A", "--", *paths)
        staged = await self.run("diff", "--cached", "--quiet", "--", *paths, check=False)
        if staged.returncode == 0:
            return None
        await self.run("commit", "-q", "--no-verify", "-m", message, "--", *paths, env=self.identity_env)
        return await self.head()

    async def recover_stale_locks(self, older_than: float) -> list[str]:
        """Delete git lock files (and our private indexes) left by a killed git or sync; only ever
        called with our own locks held.

        The age guard leaves alone a lock that a user's own git, running right now, may hold.
        """

        def sweep() -> list[str]:
            now = time.time()
            candidates = [self.git_dir / n for n in ("index.lock", "HEAD.lock", "packed-refs.lock", "config.lock")]
            candidates += list((self.git_dir / "refs").rglob("*.lock"))
            # Private indexes of a sync or commit killed mid-way (SIGKILL, power loss).
            candidates += list(self.git_dir.glob("anamnesis-*.index"))
            removed = []
            for path in candidates:
                try:
                    if now - path.stat().st_mtime > older_than:
                        path.unlink()
                        removed.append(str(path.relative_to(self.path)))
                except FileNotFoundError:
                    continue
            return removed

        return await anyio.to_thread.run_sync(sweep)

    async def note_log(self, paths: Sequence[str], limit: int = 50) -> list[CommitInfo]:
        """Commits that touched any of these note paths, newest first.

        A note's id names its file and its type names the directory, so a type change is a
        move: callers pass the note's file name in every type directory. Literal paths (no glob
        magic) let git answer from the commit-graph's changed-path Bloom filters that upkeep
        keeps (`anamnesis.upkeep`): 25 ms at 30,000 commits where a `*/<id>.md` pattern walked
        every commit's tree (3.5 s). `git log --follow` is no substitute: it detects copies and
        would adopt the history of a look-alike note.
        """
        fmt = _RECORD + _FIELD.join(("%H", "%an", "%ae", "%aI", "%s"))
        result = await self.run(
            "--literal-pathspecs",
            "log",
            f"--max-count={limit}",
            "--no-renames",
            "--name-status",
            f"--format={fmt}",
            "--",
            *paths,
            check=False,
        )
        if result.returncode != 0:
            return []
        commits = []
        for record in result.stdout.decode("utf-8", errors="replace").split(_RECORD):
            head, _, files = record.partition("\n")
            parts = head.split(_FIELD)
            if len(parts) != 5:
                continue
            changes = [line.split("\t") for line in files.splitlines() if "\t" in line]
            # A move is a delete and an add in one commit: the version is the added side.
            chosen = next((c for c in changes if not c[0].startswith("D")), changes[0] if changes else ["M", ""])
            status, path = chosen[0], chosen[-1]
            sha, author, email, timestamp, subject = parts
            commits.append(CommitInfo(sha, author, email, timestamp, subject, path, status.startswith("D")))
        return commits
