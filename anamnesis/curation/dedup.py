"""Dedup: find identical and near-identical notes, keep one of each group, retire the others.

Retiring is superseding, never deleting: the kept note lists the others in `supersedes`, which
takes them out of default search and session context while `anamnesis get` and git history
still show them (and the eval harness counts the kept note as finding them).

How notes are compared (the pure part, `find_duplicates`):

- Text is normalised first: Unicode NFKC, case-folded, markdown and punctuation dropped, so
  `**Use** uv.` and `use uv` are the same words (`c++` and `c#` keep their marks).
- *Identical*: the same SHA-256 of normalised title and body.
- *Near-identical*: Jaccard similarity of the sets of 2-word shingles of title and body at or
  above `DEFAULT_THRESHOLD` (0.8). With 2-word shingles one changed word in a 20-word note still
  scores 0.81 and an added sentence of 10 words to a 50-word note 0.83, while two notes that
  share a template but state different facts score well below. Pairs are found with prefix
  filtering (the AllPairs set-similarity join): shingles are ordered rarest first, and two
  notes can only reach the threshold if their short prefixes share a shingle, so only those
  pairs are compared, exactly. No false negatives, no sampling, and 10,000 notes take about a
  second (see the README for the measurement).
- Only notes of the same project, type and scope are compared: a global preference and a
  project note that read alike both matter, and a machine-local note never hides a synced one.
- Session summaries (episodic) are grouped only when identical: two sessions that went alike
  are still two sessions.
- Notes already superseded and conflict copies (tag `conflict`, which the dashboard resolves)
  are left out.

Which note is kept: the highest confidence (a note the user wrote over a model's restatement),
then the most recently updated (the current wording of a fact), then the most complete (more
words), then the smallest id. Every group says why. Each retired note is at least as similar
to the kept one as the threshold: groups are built around their kept note, never by chaining.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from anamnesis.errors import DedupError
from anamnesis.index import ProgressCallback
from anamnesis.memory import Memory
from anamnesis.notes import Note
from anamnesis.search import SearchFilters
from anamnesis.shapes import ref_json

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.8
MIN_THRESHOLD = 0.5  # below this, "near-identical" would merge notes that merely share a topic
SHINGLE_WORDS = 2
SKIPPED_TAGS = ("conflict",)
EXACT_ONLY_TYPES = ("episodic",)
_EPSILON = 1e-9
_WORD_RE = re.compile(r"\w+[+#]*")


@dataclass(frozen=True, slots=True)
class DedupNote:
    """What dedup needs to know of a note."""

    id: str
    type: str
    project: str
    scope: str
    title: str
    body: str
    confidence: float = 1.0
    updated_at: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Retired:
    """A note to retire, and how close it is to the kept one (1.0: identical)."""

    note: DedupNote
    similarity: float
    identical: bool

    def as_json(self) -> dict[str, Any]:
        return {**_note_json(self.note), "similarity": round(self.similarity, 3), "identical": self.identical}


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """One note to keep, the notes it retires, and why this one is kept."""

    keep: DedupNote
    retire: tuple[Retired, ...]
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "keep": _note_json(self.keep),
            "reason": self.reason,
            "retire": [r.as_json() for r in self.retire],
        }


@dataclass(slots=True)
class DedupPlan:
    """What dedup proposes: groups of duplicates among the notes it looked at."""

    checked: int
    threshold: float
    groups: list[DuplicateGroup] = field(default_factory=list)

    @property
    def retired_count(self) -> int:
        return sum(len(g.retire) for g in self.groups)

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "threshold": self.threshold,
            "groups": [g.as_json() for g in self.groups],
            "retire_count": self.retired_count,
        }


@dataclass(frozen=True, slots=True)
class DedupResult:
    """What an applied dedup did: the plan it carried out and the commit that records it."""

    plan: DedupPlan
    commit: str | None


def _note_json(note: DedupNote) -> dict[str, Any]:
    return {**ref_json(note), "confidence": note.confidence, "updated_at": note.updated_at}


# -- the pure core ----------------------------------------------------------------------------


def normalize_words(text: str) -> list[str]:
    """The words of `text` as dedup compares them: NFKC, case-folded, punctuation gone."""
    return _WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold())


def content_hash(title: str, body: str) -> str:
    """Equal for notes that differ only in case, punctuation, markdown or spacing."""
    text = " ".join(tokens(title)) + "\n" + " ".join(tokens(body))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tokens(text: str) -> list[str]:
    """`normalize_words`, except that a text of symbols only (emoji, say) is its symbols: such
    notes are alike only when their symbols are."""
    words = normalize_words(text)
    if words or not text.strip():
        return words
    return unicodedata.normalize("NFKC", text).split()


def shingles(words: Sequence[str], size: int = SHINGLE_WORDS) -> frozenset[str]:
    """The set of `size`-word runs of `words`; a shorter text is one shingle of all its words."""
    if not words:
        return frozenset()
    if len(words) <= size:
        return frozenset((" ".join(words),))
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


def find_duplicates(
    notes: Sequence[DedupNote],
    threshold: float = DEFAULT_THRESHOLD,
    progress: ProgressCallback | None = None,
) -> list[DuplicateGroup]:
    """Groups of identical or near-identical notes (see the module docstring for the rules).

    Pure and deterministic: the same notes give the same groups in the same order.
    """
    check_threshold(threshold)
    partitions: dict[tuple[str, str, str], list[DedupNote]] = defaultdict(list)
    for note in notes:
        if not any(tag in SKIPPED_TAGS for tag in note.tags):
            partitions[(note.scope, note.project, note.type)].append(note)
    groups: list[DuplicateGroup] = []
    done = 0
    for key in sorted(partitions):
        members = partitions[key]
        groups.extend(_partition_groups(members, threshold, exact_only=key[2] in EXACT_ONLY_TYPES))
        done += len(members)
        if progress is not None:
            progress(done, len(notes))
    return groups


def check_threshold(threshold: float) -> None:
    if math.isnan(threshold) or not MIN_THRESHOLD <= threshold <= 1.0:
        raise DedupError(f"the similarity threshold must be between {MIN_THRESHOLD} and 1.0, not {threshold}")


def _partition_groups(notes: Sequence[DedupNote], threshold: float, *, exact_only: bool) -> list[DuplicateGroup]:
    """Groups within one (scope, project, type)."""
    by_hash: dict[str, list[DedupNote]] = defaultdict(list)
    for note in sorted(notes, key=lambda n: n.id):
        by_hash[content_hash(note.title, note.body)].append(note)
    exact = list(by_hash.values())
    words = {note.id: tokens(note.title) + tokens(note.body) for note in notes}
    sets = {note.id: shingles(words[note.id]) for note in notes}
    # Near-duplicates are looked for among one representative of each identical set.
    parent = list(range(len(exact)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if not exact_only and threshold < 1.0:
        representatives = [sets[members[0].id] for members in exact]
        for i, j in similar_pairs(representatives, threshold):
            parent[root(i)] = root(j)
    components: dict[int, list[DedupNote]] = defaultdict(list)
    for i, members in enumerate(exact):
        components[root(i)].extend(members)
    groups = []
    for members in components.values():
        if len(members) > 1:
            groups.extend(_around_keepers(members, sets, words, threshold))
    groups.sort(key=lambda g: g.keep.id)
    return groups


def similar_pairs(sets: Sequence[frozenset[str]], threshold: float) -> Iterable[tuple[int, int]]:
    """Index pairs (i, j) of `sets` with Jaccard similarity >= threshold: prefix filtering.

    Sets are visited smallest first; each is compared only with earlier sets that share a
    shingle in its prefix (its rarest |x| - ceil(t·|x|) + 1 shingles) and are long enough to
    reach t. Two sets at or above t must share such a shingle, so nothing is missed.
    """
    frequency = Counter(s for x in sets for s in x)
    order = sorted(range(len(sets)), key=lambda i: (len(sets[i]), i))
    postings: dict[str, list[int]] = defaultdict(list)
    for i in order:
        x = sets[i]
        size = len(x)
        if size == 0:
            continue
        needed = math.ceil(threshold * size - _EPSILON)
        prefix = sorted(x, key=lambda s: (frequency[s], s))[: size - needed + 1]
        candidates: set[int] = set()
        for shingle in prefix:
            posting = postings[shingle]
            candidates.update(j for j in posting if len(sets[j]) >= needed)
            posting.append(i)
        for j in sorted(candidates):
            if jaccard(x, sets[j]) >= threshold - _EPSILON:
                yield j, i


def _by_preference(notes: Iterable[DedupNote], words: dict[str, list[str]]) -> list[DedupNote]:
    """Best first: highest confidence, then newest, then most words, then smallest id.

    Stable sorts from the last rule to the first, since the rules mix directions.
    """
    ordered = sorted(notes, key=lambda n: n.id)
    ordered.sort(key=lambda n: len(words[n.id]), reverse=True)
    ordered.sort(key=lambda n: n.updated_at, reverse=True)
    ordered.sort(key=lambda n: n.confidence, reverse=True)
    return ordered


def _around_keepers(
    members: list[DedupNote],
    sets: dict[str, frozenset[str]],
    words: dict[str, list[str]],
    threshold: float,
) -> list[DuplicateGroup]:
    """Split a set of linked notes into groups of a kept note and the notes close to it."""
    hashes = {m.id: content_hash(m.title, m.body) for m in members}
    remaining = _by_preference(members, words)
    groups = []
    while len(remaining) > 1:
        keep, *rest = remaining
        retire, remaining = [], []
        for other in rest:
            identical = hashes[other.id] == hashes[keep.id]
            similarity = 1.0 if identical else jaccard(sets[keep.id], sets[other.id])
            if identical or similarity >= threshold - _EPSILON:
                retire.append(Retired(other, similarity, identical))
            else:
                remaining.append(other)
        if retire:
            groups.append(DuplicateGroup(keep, tuple(retire), _reason(keep, retire, words)))
    return groups


def _reason(keep: DedupNote, retire: list[Retired], words: dict[str, list[str]]) -> str:
    """Why `keep` was chosen: the first rule that set it apart from the best of the others."""
    runner_up = retire[0].note  # the others are in preference order, so this is the closest contest
    what = "identical" if all(r.identical for r in retire) else "near-identical"
    if keep.confidence != runner_up.confidence:
        why = f"highest confidence ({keep.confidence:g} over {runner_up.confidence:g})"
    elif keep.updated_at != runner_up.updated_at:
        why = f"most recently updated ({keep.updated_at or 'unknown'})"
    elif len(words[keep.id]) != len(words[runner_up.id]):
        why = f"most complete ({len(words[keep.id])} words over {len(words[runner_up.id])})"
    else:
        why = "equal to the next best in confidence, date and length; the earlier id"
    return f"{what}; kept: {why}"


# -- on a memory --------------------------------------------------------------------------------


async def candidates(memory: Memory, project: str | None = None) -> list[DedupNote]:
    """The notes dedup looks at: not superseded, not conflict copies, optionally one project."""
    await memory.ensure_fresh()
    filters = SearchFilters(projects=(project,) if project else ())
    rows = await memory.recent_with_bodies(filters, -1, SKIPPED_TAGS)  # SQLite: LIMIT -1 is no limit
    return [
        DedupNote(
            id=summary.id,
            type=summary.type,
            project=summary.project,
            scope=summary.scope,
            title=summary.title,
            body=body,
            confidence=confidence,
            updated_at=summary.updated_at,
            tags=summary.tags,
        )
        for summary, body, confidence in rows
    ]


async def plan_dedup(
    memory: Memory,
    threshold: float = DEFAULT_THRESHOLD,
    project: str | None = None,
    progress: ProgressCallback | None = None,
) -> DedupPlan:
    """What dedup would do to this memory; changes nothing."""
    check_threshold(threshold)
    notes = await candidates(memory, project)
    groups = await anyio.to_thread.run_sync(find_duplicates, notes, threshold, progress)
    return DedupPlan(checked=len(notes), threshold=threshold, groups=groups)


async def apply_dedup(memory: Memory, plan: DedupPlan) -> DedupResult:
    """Carry out `plan`: each kept note supersedes its group, all in one commit.

    The kept note's file gains the retired ids in `supersedes` and nothing else changes: not its
    text, not its `updated_at` (bumping it would push every kept note to the top of session
    context). Nothing is deleted.
    """
    if not plan.groups:
        return DedupResult(plan, None)
    updated: list[Note] = []
    for group in plan.groups:
        kept = await memory.get(group.keep.id)
        for retired in group.retire:
            await memory.get(retired.note.id)  # NoteNotFoundError if it went away meanwhile
        new = tuple(r.note.id for r in group.retire)
        updated.append(kept.with_changes(supersedes=tuple(dict.fromkeys((*kept.supersedes, *new)))))
    await memory.save_all(updated, commit_message(plan))
    head = await memory.head() if any(n.scope == "portable" for n in updated) else None
    return DedupResult(plan, head)


def commit_message(plan: DedupPlan) -> str:
    """One line saying what happened, then one line per group: kept ← retired (why)."""
    count = plan.retired_count
    lines = [
        f"anamnesis: dedup: retire {count} duplicate note{'s' if count != 1 else ''} "
        f"in {len(plan.groups)} group{'s' if len(plan.groups) != 1 else ''}",
        "",
    ]
    for group in plan.groups:
        retired = ", ".join(r.note.id for r in group.retire)
        lines.append(f"{group.keep.id} ({group.keep.title[:60]}) supersedes {retired}: {group.reason}")
    return "\n".join(lines)


def dedup_change(
    threshold: float = DEFAULT_THRESHOLD, project: str | None = None
) -> Callable[[Memory], Awaitable[DedupResult]]:
    """Dedup as a change the eval guard can try on a copy and then make for real.

    It plans again on whichever memory it is given: on the copy and on the real store the
    notes are the same, so the plan is too (planning is deterministic).
    """

    async def change(memory: Memory) -> DedupResult:
        return await apply_dedup(memory, await plan_dedup(memory, threshold, project))

    return change
