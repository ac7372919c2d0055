"""The last check before a push: no note that still holds a secret leaves this machine.

(Nor one with the conflict markers a merge run by hand can leave: the sync never writes them,
and this keeps them off the hub too.)

Capture redacts secrets before it writes, but a note written by hand, by a model, or by an
older release may still hold one. Before each push, every blob the push would send is
scanned with `find_secrets`, whatever its path, and every path that holds a flagged blob is
held back: judged per tree entry, so a copy under another name cannot hide a note. So is
anything memory/ may not hold (`anamnesis.layout`: a link, a file committed by hand outside
the note layout), which every other machine would refuse to take in.

Then the push sends a single commit on top of the hub's head: this machine's whole tree
except what is held back (those paths keep the hub's version, or are left out). Locally,
main becomes that commit plus one commit that holds the withheld files, so nothing here is
lost and the history that held the secret is never pushed. Once the note is fixed (or
deleted), the next sync sends it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import anyio.to_thread

from anamnesis.capture.redact import find_secrets
from anamnesis.errors import NoteFormatError
from anamnesis.notes import parse_note
from anamnesis.sync.incoming import refused_entries
from anamnesis.sync.repo import SyncRepo, TreeEntry

MARKERS_KIND = "unresolved-conflict-markers"
NOT_A_NOTE_KIND = "not-a-note"


@dataclass(frozen=True, slots=True)
class Withheld:
    """A note kept off the hub because it still matches a secret pattern."""

    path: str  # relative to memory/
    note_id: str | None
    title: str | None
    kinds: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["kinds"] = list(self.kinds)
        return data

    def describe(self) -> str:
        """Which note and why, with the fix: what the sync tells the user."""
        name = f"{self.note_id} ({self.title})" if self.note_id else self.path
        if all(k.startswith(NOT_A_NOTE_KIND) for k in self.kinds):
            what = "; ".join(k.partition(": ")[2] for k in self.kinds)
            return f"{name} is {what}, which memory/ may not hold; move it out of memory/, then sync again"
        fix = "remove the secret" if any(k != MARKERS_KIND for k in self.kinds) else "resolve the conflict in it"
        return f"{name} looks like it holds {', '.join(self.kinds)}; {fix}, then sync again"


@dataclass(slots=True)
class PushPlan:
    """What to push: `rev` (None when the hub already has everything we may send)."""

    rev: str | None
    withheld: list[Withheld] = field(default_factory=list)


def withheld_kinds(texts: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """What in each text (by any key) must not reach the hub: secrets, and conflict markers a
    hand-run merge left. Empty for a text that may be pushed."""
    found = {}
    for oid, text in texts.items():
        kinds = find_secrets(text)
        if "<<<<<<< " in text and _has_conflict_markers(text):
            kinds.append(MARKERS_KIND)
        if kinds:
            found[oid] = tuple(kinds)
    return found


def _has_conflict_markers(text: str) -> bool:
    """`<<<<<<< `, then a `=======` line, then `>>>>>>> `, each at the start of a line (linear)."""
    stage = 0
    for line in text.splitlines():
        if stage == 0 and line.startswith("<<<<<<< "):
            stage = 1
        elif stage == 1 and line == "=======":
            stage = 2
        elif stage == 2 and line.startswith(">>>>>>> "):
            return True
    return False


async def plan_push(repo: SyncRepo, theirs: str | None, machine: str) -> PushPlan:
    """Decide what to push to a hub at `theirs`. Call with the git lock held (it may move main)."""
    head = await repo.rev("HEAD")
    if head is None or head == theirs or (theirs is not None and await repo.is_ancestor(head, theirs)):
        return PushPlan(rev=None)
    # What no machine may take in (a link, a stray file committed by hand) is held back like a
    # secret, so the hub never holds what would stop every other machine's sync.
    misplaced = {r.path: (f"{NOT_A_NOTE_KIND}: {r.problem}",) for r in await refused_entries(repo, theirs, head)}
    candidates = await repo.blobs_sent(head, theirs)
    blobs = await repo.blobs(candidates)
    texts = {oid: data.decode("utf-8", errors="replace") for oid, data in blobs.items()}
    secret = await anyio.to_thread.run_sync(withheld_kinds, texts)
    if not secret and not misplaced:
        return PushPlan(rev=head)
    # Judged per tree entry, not per name rev-list gave a blob: every path holding a flagged
    # blob is held back, whatever it is called.
    entries = await repo.tree_entries(head)
    flagged = {e.path: (e.oid, secret[e.oid]) for e in entries if e.oid in secret}
    for path, kinds in misplaced.items():
        oid, found = flagged.get(path, ("", ()))
        flagged[path] = (oid, (*found, *kinds))
    withheld_entries = [TreeEntry("", oid, path) for path, (oid, _) in sorted(flagged.items())]
    withheld = [describe_withheld(path, texts.get(oid, ""), kinds) for path, (oid, kinds) in sorted(flagged.items())]
    # The commit the hub gets: our tree, with each withheld path as the hub has it (or absent).
    hub_versions = (
        {e.path: e for e in await repo.tree_entries(theirs, [e.path for e in withheld_entries])}
        if (theirs and withheld_entries)
        else {}
    )
    async with repo.private_index(await repo.tree_of(head)) as env:
        restore = [hub_versions[e.path] for e in withheld_entries if e.path in hub_versions]
        drop = [e.path for e in withheld_entries if e.path not in hub_versions]
        await repo.set_entries(env, restore, drop)
        push_tree = await repo.write_tree(env)
    if theirs is not None and push_tree == await repo.tree_of(theirs):
        return PushPlan(rev=None, withheld=withheld)
    names = ", ".join(w.note_id or w.path for w in withheld) or "none still"
    public = await repo.commit_tree(
        push_tree, [theirs], f"anamnesis: sync from {machine}\n\nWithheld from the hub (secrets): {names}"
    )
    local = public
    if withheld:
        local = await repo.commit_tree(
            await repo.tree_of(head),
            [public],
            f"anamnesis: kept on {machine} only (secrets): {names}",
        )
    await repo.move_branch(local, head)
    return PushPlan(rev=public, withheld=withheld)


def describe_withheld(path: str, text: str, kinds: tuple[str, ...]) -> Withheld:
    """The note at `path` (relative to memory/) as sync names it when it holds it back."""
    try:
        note = parse_note(text)
    except NoteFormatError:
        return Withheld(path, None, None, kinds)
    return Withheld(path, note.id, note.title, kinds)
