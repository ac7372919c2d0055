"""Integrating the hub's history: fast-forward, or a merge that never stops and never loses.

`git merge-tree --write-tree` merges without touching the work tree, running our note merge
driver for each note both sides changed. What still collides is resolved by keeping both:
the newer version stays at its path and the other becomes a note of its own (a new id,
`conflict_of: <id>`, tagged `conflict`) for the user to decide on later. An edit against a
delete keeps the edit. The resolved tree is committed with both parents, so history holds
every version, and conflict markers never reach a file, a commit or the hub.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath

from anamnesis.errors import NoteFormatError, SyncError
from anamnesis.ids import new_ulid
from anamnesis.notes import NOTE_TYPES, normalize_tags, parse_note, render_note
from anamnesis.sync.incoming import check_incoming
from anamnesis.sync.repo import SyncRepo, TreeEntry

logger = logging.getLogger(__name__)

CONFLICT_TAG = "conflict"
_PACKAGE_PARENT = str(PurePosixPath(__file__).parent.parent.parent)


def driver_config() -> list[str]:
    """`-c` options that make `merge=anamnesis` (set in .git/info/attributes) run our driver.

    Passed on each call rather than stored in .git/config: the user's own `git merge` then falls
    back to git's text merge instead of a Python path that may have moved.
    """
    command = f"{shlex.quote(sys.executable)} -m anamnesis.sync.merge_driver %O %A %B %P"
    return ["-c", "merge.anamnesis.name=anamnesis note merge", "-c", f"merge.anamnesis.driver={command}"]


def driver_env() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))}


@dataclass(frozen=True, slots=True)
class ConflictCopy:
    """A note both sides changed in ways that do not merge: one stayed, the other was copied."""

    path: str  # relative to memory/: the version that stayed here
    note_id: str | None
    kept: str  # "local" or "hub": whose version stayed in place
    copy_path: str
    copy_id: str | None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass(slots=True)
class MergeOutcome:
    """What integrating the hub did: the new head (None when there was nothing to do)."""

    head: str | None = None
    fast_forward: bool = False
    conflicts: list[ConflictCopy] = field(default_factory=list)
    kept_edits: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Stages:
    base: TreeEntry | None = None
    ours: TreeEntry | None = None
    theirs: TreeEntry | None = None


async def integrate(repo: SyncRepo, theirs_ref: str, machine: str, hub_name: str) -> MergeOutcome:
    """Bring `theirs_ref` into main. Call with the git lock held and local changes committed."""
    theirs = await repo.rev(theirs_ref)
    ours = await repo.rev("HEAD")
    outcome = MergeOutcome()
    if theirs is None or theirs == ours or (ours is not None and await repo.is_ancestor(theirs, ours)):
        return outcome
    await check_incoming(repo, ours, theirs, hub_name)
    if ours is None or await repo.is_ancestor(ours, theirs):
        await repo.fast_forward(theirs)
        outcome.head, outcome.fast_forward = theirs, True
        return outcome
    result = await repo.run(
        *driver_config(),
        "merge-tree",
        "--write-tree",
        "-z",
        "--no-messages",
        "--allow-unrelated-histories",  # a machine that kept notes before it joined the hub
        ours,
        theirs,
        check=False,
        env=driver_env(),
    )
    if result.returncode not in (0, 1):
        version = await repo.output("version")
        if _too_old(version):
            raise SyncError(
                f"merging needs git 2.38 or newer (`git merge-tree --write-tree`); this machine has {version}. "
                "Upgrade git, then sync again; the notes are safe meanwhile"
            )
        raise SyncError(f"git merge-tree failed ({result.returncode}): {result.stderr.decode(errors='replace')[:500]}")
    fields = result.stdout.decode("utf-8", errors="surrogateescape").split("\0")
    tree = fields[0]
    if result.returncode == 1:
        tree = await _keep_both(repo, tree, fields[1:], ours, theirs, machine, outcome)
    message = f"anamnesis: merge {hub_name} into {machine}"
    if outcome.conflicts:
        message += "\n\nKept both versions of:\n" + "".join(f"  {c.path} -> {c.copy_path}\n" for c in outcome.conflicts)
    commit = await repo.commit_tree(tree, [ours, theirs], message)
    await repo.fast_forward(commit)
    outcome.head = commit
    return outcome


def _too_old(version: str) -> bool:
    """True for `git version 2.37.x` and older."""
    digits = version.removeprefix("git version ").split(".")[:2]
    try:
        return (int(digits[0]), int(digits[1])) < (2, 38)
    except (ValueError, IndexError):
        return False


def _parse_stages(records: list[str]) -> dict[str, _Stages]:
    stages: dict[str, _Stages] = {}
    for record in records:
        if not record:
            break  # the conflicted-file list ends with an empty field
        meta, path = record.split("\t", 1)
        mode, oid, stage = meta.split()
        entry = TreeEntry(mode, oid, path)
        slot = stages.setdefault(path, _Stages())
        if stage == "1":
            slot.base = entry
        elif stage == "2":
            slot.ours = entry
        elif stage == "3":
            slot.theirs = entry
    return stages


async def _keep_both(
    repo: SyncRepo,
    tree: str,
    records: list[str],
    ours: str,
    theirs: str,
    machine: str,
    outcome: MergeOutcome,
) -> str:
    stages = _parse_stages(records)
    chosen: list[TreeEntry] = []
    removed: list[str] = []
    wanted = [e.oid for s in stages.values() for e in (s.ours, s.theirs) if e is not None]
    texts = {oid: data.decode("utf-8", errors="replace") for oid, data in (await repo.blobs(wanted)).items()}
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for path, slot in sorted(stages.items()):
        if slot.ours is not None and slot.theirs is not None:
            if slot.ours.oid == slot.theirs.oid:
                chosen.append(TreeEntry(slot.ours.mode, slot.ours.oid, path))
                continue
            ours_text, theirs_text = texts.get(slot.ours.oid, ""), texts.get(slot.theirs.oid, "")
            ours_newer = await _ours_is_newer(repo, path, ours_text, theirs_text, ours, theirs)
            winner, loser, loser_text = (
                (slot.ours, slot.theirs, theirs_text) if ours_newer else (slot.theirs, slot.ours, ours_text)
            )
            who = machine if loser is slot.ours else (await repo.last_change(theirs, path, "%an") or "hub")
            copy_path, copy_text, copy_id, note_id = _conflict_copy(path, loser_text, who, stamp)
            copy_oid = await repo.write_blob(copy_text.encode("utf-8"))
            chosen.append(TreeEntry(winner.mode, winner.oid, path))
            chosen.append(TreeEntry(loser.mode, copy_oid, copy_path))
            outcome.conflicts.append(ConflictCopy(path, note_id, "local" if ours_newer else "hub", copy_path, copy_id))
        elif slot.ours is not None or slot.theirs is not None:
            kept = slot.ours or slot.theirs
            assert kept is not None
            chosen.append(TreeEntry(kept.mode, kept.oid, path))
            if slot.base is not None:
                outcome.kept_edits.append(path)
        else:
            removed.append(path)
    async with repo.private_index(tree) as env:
        await repo.set_entries(env, chosen, removed)
        return await repo.write_tree(env)


async def _ours_is_newer(repo: SyncRepo, path: str, ours_text: str, theirs_text: str, ours: str, theirs: str) -> bool:
    """The version edited last wins the path: by `updated_at`, then by commit time; ties go to the hub."""
    ours_time, theirs_time = _updated_at(ours_text), _updated_at(theirs_text)
    if ours_time and theirs_time and ours_time != theirs_time:
        return ours_time > theirs_time
    ours_commit = await repo.last_change(ours, path, "%ct")
    theirs_commit = await repo.last_change(theirs, path, "%ct")
    return int(ours_commit or 0) > int(theirs_commit or 0)


def _updated_at(text: str) -> str:
    try:
        return parse_note(text).updated_at
    except NoteFormatError:
        return ""


def _conflict_copy(path: str, text: str, who: str, stamp: str) -> tuple[str, str, str | None, str | None]:
    """(copy path, copy text, copy id, original id) for the version that did not stay."""
    try:
        note = parse_note(text)
    except NoteFormatError:
        note = None
    directory = str(PurePosixPath(path).parent)
    if note is not None and (directory in NOTE_TYPES or directory == "."):
        copy_id = new_ulid()
        copy = note.with_changes(
            id=copy_id,
            tags=normalize_tags([*note.tags, CONFLICT_TAG]),
            extra={**note.extra, "conflict_of": note.id},
        )
        folder = note.type if note.type in NOTE_TYPES else directory
        copy_path = f"{folder}/{copy_id}.md" if folder != "." else f"{copy_id}.md"
        return copy_path, render_note(copy), copy_id, note.id
    # Not a note (a README, a file that does not parse): a Syncthing-style sibling keeps it.
    pure = PurePosixPath(path)
    safe_who = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in who)[:40] or "unknown"
    name = f"{pure.stem}.sync-conflict-{stamp}-{safe_who}{pure.suffix}"
    return str(pure.with_name(name)), text, None, None
