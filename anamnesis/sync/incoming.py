"""The check every tree from a hub passes before it may touch the work tree.

A hub account, or any one machine of the fleet, may be compromised or buggy. What it sends is
taken in only when every file it adds or changes fits `anamnesis.layout`: a regular file at a
note's path or one of the product's own paths. A symbolic link (which would send the store's
reads and writes outside the home), a submodule, a `.gitattributes` that could make git run a
filter or merge driver, or a file anywhere else stops the sync with a `SyncError` that names
the path and the commit that brought it; the work tree and main stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

from anamnesis.errors import SyncError
from anamnesis.layout import CONTENT_CHECKED, content_problem, layout_problem
from anamnesis.sync.repo import SyncRepo

SHOWN = 5


@dataclass(frozen=True, slots=True)
class Refused:
    """One entry of an incoming tree that memory/ may not hold, and why."""

    path: str
    problem: str


async def refused_entries(repo: SyncRepo, ours: str | None, theirs: str) -> list[Refused]:
    """Entries `theirs` adds or changes relative to `ours` that break the layout (every entry of
    `theirs` when `ours` is None). Entries `ours` already has as they are were checked before."""
    entries = await repo.entries_new_in(theirs, ours)
    refused = [Refused(e.path, problem) for e in entries if (problem := layout_problem(e.path, e.mode))]
    judged = {r.path for r in refused}
    by_content = [e for e in entries if e.path not in judged and e.path in CONTENT_CHECKED]
    if by_content:
        blobs = await repo.blobs([e.oid for e in by_content])
        for e in by_content:
            if problem := content_problem(e.path, blobs.get(e.oid, b"")):
                refused.append(Refused(e.path, problem))
    return refused


async def check_incoming(repo: SyncRepo, ours: str | None, theirs: str, hub_name: str) -> None:
    """`SyncError` naming the path and the commit when the hub's tree may not be taken in."""
    refused = await refused_entries(repo, ours, theirs)
    if not refused:
        return
    first = refused[0]
    commit = await repo.last_change(theirs, first.path, "%h by %an: %s") or theirs[:12]
    more = f" (and {len(refused) - 1} more: {', '.join(r.path for r in refused[1:SHOWN])})" if len(refused) > 1 else ""
    raise SyncError(
        f"the hub '{hub_name}' holds {first.path!r}, {first.problem}, from commit {commit}{more}. Anamnesis never "
        "writes that, so nothing from the hub was taken in and this machine's notes are as they were. Remove it "
        "with a commit from any clone of the hub (`git rm`, `git commit`, `git push`), then sync again"
    )
