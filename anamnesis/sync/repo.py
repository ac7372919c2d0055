"""The git plumbing a sync needs on top of `GitRepo`: revisions, blobs, private indexes, safety.

A sync never merges or rebases in the work tree: it builds trees with a private index and
`commit-tree`, then moves the branch with one fast-forward. Claude Code may be writing notes
at that moment, and an interrupted sync must leave nothing half-done behind.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from anamnesis.errors import SyncError
from anamnesis.gitrepo import BRANCH, GitRepo

ZERO_OID = "0" * 40
# .git/info/attributes outranks every .gitattributes and the user's global attributes file, so
# no filter, ident expansion, re-encoding, diff or merge driver named elsewhere ever runs here,
# even one the user configured globally for their other repositories; notes get our driver.
_ATTRIBUTES = ("* -filter -ident -working-tree-encoding -diff merge=text", "*.md diff merge=anamnesis")
_EXCLUDES = (".*.tmp", "*.swp", "*~", ".DS_Store", "*.sync-tmp")
_UNFINISHED = {
    "MERGE_HEAD": "a merge",
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase or `git am`",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "REVERT_HEAD": "a revert",
}


@dataclass(frozen=True, slots=True)
class TreeEntry:
    mode: str
    oid: str
    path: str


class SyncRepo(GitRepo):
    """memory/ as the sync engine drives it."""

    async def rev(self, ref: str) -> str | None:
        """The commit `ref` names, or None when it does not exist (an empty hub, an unborn branch)."""
        result = await self.run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
        return result.stdout.decode().strip() or None if result.returncode == 0 else None

    async def tree_of(self, rev: str) -> str:
        return await self.output("rev-parse", f"{rev}^{{tree}}")

    async def is_ancestor(self, older: str, newer: str) -> bool:
        result = await self.run("merge-base", "--is-ancestor", older, newer, check=False)
        return result.returncode == 0

    async def blobs(self, oids: Sequence[str]) -> dict[str, bytes]:
        """The contents of these blobs, read in one `cat-file --batch`."""
        if not oids:
            return {}
        unique = list(dict.fromkeys(oids))
        out = (await self.run("cat-file", "--batch", input=("\n".join(unique) + "\n").encode())).stdout
        contents: dict[str, bytes] = {}
        position = 0
        for oid in unique:
            end = out.index(b"\n", position)
            header = out[position:end].decode().split()
            position = end + 1
            if len(header) < 3 or header[1] == "missing":
                continue
            size = int(header[2])
            contents[oid] = out[position : position + size]
            position += size + 1
        return contents

    async def blobs_sent(self, head: str, theirs: str | None) -> list[str]:
        """Every blob a push of `head` to a hub at `theirs` would send (each once, any path)."""
        listing = await self.run(
            "rev-list", "--objects", "--filter=object:type=blob", "--filter-provided-objects", head,
            *(["--not", theirs] if theirs else []),
        )  # fmt: skip
        return list(dict.fromkeys(line.split(" ", 1)[0] for line in listing.stdout.decode().splitlines() if line))

    async def write_blob(self, data: bytes) -> str:
        return (await self.run("hash-object", "-w", "--stdin", input=data)).stdout.decode().strip()

    async def tree_entries(self, rev: str, paths: Sequence[str] = ()) -> list[TreeEntry]:
        """Files of `rev` (all, or just `paths`)."""
        out = (await self.run("ls-tree", "-r", "-z", "--full-tree", rev, "--", *paths)).stdout.decode()
        entries = []
        for record in out.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            mode, kind, oid = meta.split()
            if kind == "blob":
                entries.append(TreeEntry(mode, oid, path))
        return entries

    async def entries_new_in(self, rev: str, base: str | None) -> list[TreeEntry]:
        """Every entry of `rev`'s tree (links and submodules too) that `base` lacks or holds
        differently; all of them when `base` is None."""
        if base is None:
            out = (await self.run("ls-tree", "-r", "-z", "--full-tree", rev)).stdout.decode("utf-8", "surrogateescape")
            records = [r.split("\t", 1) for r in out.split("\0") if r]
            return [TreeEntry(meta.split()[0], meta.split()[2], path) for meta, path in records]
        raw = await self.run("diff-tree", "-r", "-z", "--no-renames", "--raw", base, rev)
        fields = raw.stdout.decode("utf-8", "surrogateescape").split("\0")
        entries = []
        for meta, path in zip(fields[0::2], fields[1::2], strict=False):
            _, new_mode, _, new_oid, status = meta.lstrip(":").split()
            if status != "D":
                entries.append(TreeEntry(new_mode, new_oid, path))
        return entries

    async def changed_paths(self, old: str | None, new: str | None) -> list[str]:
        """Files that differ between two commits (every file of `new` when `old` is None)."""
        if new is None or old == new:
            return []
        if old is None:
            return [e.path for e in await self.tree_entries(new)]
        out = (await self.run("diff", "--name-only", "-z", "--no-renames", old, new)).stdout.decode()
        return [p for p in out.split("\0") if p]

    async def last_change(self, rev: str, path: str, fmt: str) -> str:
        return await self.output("log", "-1", f"--format={fmt}", rev, "--", path)

    @asynccontextmanager
    async def private_index(self, tree: str | None) -> AsyncIterator[dict[str, str]]:
        """An index file of our own, seeded with `tree`: the env that points git at it."""
        index = self.git_dir / f"anamnesis-sync-{os.getpid()}-{time.monotonic_ns()}.index"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            if tree is not None:
                await self.run("read-tree", tree, env=env)
            else:
                await self.run("read-tree", "--empty", env=env)
            yield env
        finally:
            with contextlib.suppress(FileNotFoundError):
                index.unlink()

    async def set_entries(self, env: dict[str, str], entries: Iterable[TreeEntry], removed: Iterable[str] = ()) -> None:
        lines = [f"0 {ZERO_OID}\t{p}" for p in removed]
        lines += [f"0 {ZERO_OID}\t{e.path}" for e in entries]  # drop every stage, then set stage 0
        lines += [f"{e.mode} {e.oid}\t{e.path}" for e in entries]
        if lines:
            await self.run("update-index", "-z", "--index-info", input="\0".join(lines).encode() + b"\0", env=env)

    async def write_tree(self, env: dict[str, str]) -> str:
        return await self.output("write-tree", env=env)

    async def commit_tree(self, tree: str, parents: Sequence[str | None], message: str) -> str:
        args = ["commit-tree", tree]
        for parent in parents:
            if parent:
                args += ["-p", parent]
        return await self.output(*args, "-m", message, env=self.identity_env)

    async def move_branch(self, new: str, expected_old: str | None) -> None:
        """Point main at `new` only if it still is at `expected_old` (the work tree already matches)."""
        await self.run("update-ref", "-m", "anamnesis sync", f"refs/heads/{BRANCH}", new, expected_old or ZERO_OID)

    async def fast_forward(self, commit: str) -> None:
        await self.run("merge", "-q", "--ff-only", "--no-edit", commit, env=self.identity_env)

    # -- safety -------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Per-clone settings the sync relies on: note-aware merges and no other drivers or
        filters, ignored temp files."""

        def write_info() -> None:
            info = self.git_dir / "info"
            info.mkdir(exist_ok=True)
            _ensure_first_lines(info / "attributes", list(_ATTRIBUTES))
            _ensure_lines(info / "exclude", list(_EXCLUDES))

        await anyio.to_thread.run_sync(write_info)

    async def check_state(self) -> None:
        """`SyncError` with the fix when a hand-started git operation is unfinished here."""
        for name, what in _UNFINISHED.items():
            if await anyio.Path(self.git_dir / name).exists():
                raise SyncError(
                    f"{what} was started by hand in {self.path} and is not finished; finish or abort it "
                    f"(e.g. `git -C {self.path} merge --abort`), then sync again"
                )
        branch = await self.run("symbolic-ref", "-q", "HEAD", check=False)
        ref = branch.stdout.decode().strip()
        if ref != f"refs/heads/{BRANCH}":
            shown = ref or "a detached HEAD"
            raise SyncError(
                f"{self.path} is on {shown}, not on branch {BRANCH}; run `git -C {self.path} switch {BRANCH}` "
                "and sync again"
            )


def _ensure_first_lines(path: Path, lines: list[str]) -> None:
    """`lines` first, in order (a later attributes line wins), then the file's other lines."""
    try:
        existing = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        existing = []
    if existing[: len(lines)] != lines:
        path.write_text("\n".join([*lines, *(x for x in existing if x not in lines)]) + "\n", encoding="utf-8")


def _ensure_lines(path: Path, lines: list[str]) -> None:
    try:
        existing = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        existing = []
    missing = [line for line in lines if line not in existing]
    if missing:
        body = "\n".join([*existing, *missing]) + "\n"
        path.write_text(body, encoding="utf-8")
