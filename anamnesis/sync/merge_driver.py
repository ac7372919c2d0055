"""Three-way merge of one markdown note: front-matter key by key, then the body.

git runs this as the `anamnesis` merge driver for `*.md` during a sync's `git merge-tree`
(`python -m anamnesis.sync.merge_driver %O %A %B %P`). Exit 0 means the merged text is in %A;
exit 1 means the two edits really collide, and the sync engine then keeps both versions as
separate notes. It never writes conflict markers: a collision leaves %A as it was.

What merges: edits to different front-matter keys; list keys (tags, supersedes) as sets with
additions and removals from both sides; `updated_at` as the later time and `machine_id` from
the side edited last; bodies changed in different places, and lines both sides added at the
same place (session logs, running lists), kept hub's first so every machine ends with one
order. What collides: the same key or the same lines changed two ways, or the same new file
written twice with different text.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from anamnesis.errors import MergeConflict, NoteFormatError
from anamnesis.front_matter import dump_front_matter, read_front_matter, split_front_matter
from anamnesis.notes import parse_note, render_note

_MISSING: Any = object()
# Keys where two different values are both right: the later edit's value wins.
_LATEST_WINS = frozenset({"machine_id"})
_TIME_KEY = "updated_at"


def merge_texts(base: str, ours: str, theirs: str) -> str:
    """The merged text of a markdown file; `MergeConflict` when the edits collide."""
    if ours == theirs or theirs == base:
        return ours
    if ours == base:
        return theirs
    if not base.strip():
        raise MergeConflict("both sides created this file with different text")
    parts = [_split(text) for text in (base, ours, theirs)]
    if all(p is None for p in parts):
        return merge_body(base, ours, theirs)
    if any(p is None for p in parts):
        raise MergeConflict("one side has front-matter and the other does not")
    (fm_b, body_b), (fm_o, body_o), (fm_t, body_t) = parts  # type: ignore[misc]
    front = merge_front_matter(fm_b, fm_o, fm_t)
    body = merge_body(body_b, body_o, body_t)
    text = f"---\n{dump_front_matter(front)}---\n{body}"
    if _is_note(ours) and _is_note(theirs):
        try:
            return render_note(parse_note(text))
        except NoteFormatError as exc:
            raise MergeConflict(f"the merged note would not be valid: {exc}") from exc
    return text


def _split(text: str) -> tuple[dict[str, Any], str] | None:
    """(front-matter mapping, body) or None when the text has no front-matter."""
    try:
        front, body = split_front_matter(text)
    except NoteFormatError:
        return None
    if not front.strip():
        return {}, body
    try:  # bounded like every front matter read: the other side's text came from the hub
        return read_front_matter(front), body
    except NoteFormatError as exc:
        raise MergeConflict(exc.reason) from exc


def _is_note(text: str) -> bool:
    try:
        parse_note(text)
    except NoteFormatError:
        return False
    return True


def merge_front_matter(base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    """Key-by-key three-way merge; keys in our order, then keys only the other side added."""
    keys = list(ours) + [k for k in theirs if k not in ours]
    keys += [k for k in base if k not in keys]
    times = [str(side.get(_TIME_KEY, "")) for side in (base, ours, theirs)]
    ours_is_newer = times[1] > times[2]  # a tie (edits within one second) goes to the hub
    both_edited = times[1] != times[0] and times[2] != times[0]
    merged: dict[str, Any] = {}
    for key in keys:
        b, o, t = base.get(key, _MISSING), ours.get(key, _MISSING), theirs.get(key, _MISSING)
        if key in _LATEST_WINS and (both_edited or (o != b and t != b)):
            value = o if ours_is_newer else t  # the machine that edited last, even if its value is the old one
        elif o == t:
            value = o
        elif o == b:
            value = t
        elif t == b:
            value = o
        elif o is _MISSING or t is _MISSING:
            value = t if o is _MISSING else o  # removed on one side, changed on the other: keep the change
        elif isinstance(o, list) and isinstance(t, list):
            value = merge_lists(b if isinstance(b, list) else [], o, t)
        elif key == _TIME_KEY:
            value = max(str(o), str(t))
        else:
            raise MergeConflict(f"both sides changed {key!r}")
        if value is not _MISSING:
            merged[key] = value
    return merged


def merge_lists(base: Sequence[Any], ours: Sequence[Any], theirs: Sequence[Any]) -> list[Any]:
    """Both sides' additions, minus what either side removed; our order first."""
    removed = [x for x in base if x not in ours or x not in theirs]
    result: list[Any] = []
    for item in [*ours, *theirs]:
        if item not in result and item not in removed:
            result.append(item)
    return result


def merge_body(base: str, ours: str, theirs: str) -> str:
    """Three-way merge of markdown text; `MergeConflict` when the same lines changed two ways.

    Lines both sides added at the same place (two machines appending to one log) are both
    kept, the hub's first: `theirs` is what the hub already holds, so every machine that merges
    later puts its own lines after it, and all of them end up with the same order. A conflict
    is only the same lines changed differently on both sides.
    """
    if ours == theirs or theirs == base:
        return ours
    if ours == base:
        return theirs
    merged = merge_lines(_lines(base), _lines(ours), _lines(theirs))
    text = "".join(merged)
    if text and not (ours.endswith("\n") or theirs.endswith("\n")):
        text = text.removesuffix("\n")
    return text


def _lines(text: str) -> list[str]:
    """Lines with their ends; the last one gets one, so an append after it is a clean insertion."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


_Change = tuple[int, int, list[str]]  # base[start:end] becomes these lines


def _changes(base: list[str], side: list[str]) -> list[_Change]:
    matcher = difflib.SequenceMatcher(None, base, side, autojunk=False)
    return [(i1, i2, side[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def merge_lines(base: list[str], ours: list[str], theirs: list[str]) -> list[str]:
    """Both sides' changes applied to `base`; `MergeConflict` where they change the same lines.

    Each side's changes are disjoint ranges of `base` (difflib opcodes). Across sides: two
    insertions at one point are both kept (theirs first); an insertion at the edge of the
    other side's changed range goes beside it; an insertion inside it, or two ranges that
    overlap with different results, collide. The same change made on both sides is applied once.
    """
    THEIRS, OURS = 0, 1
    # At one point, insertions come before a range that starts there, and theirs before ours.
    changes = sorted(
        [(start, end, lines, THEIRS) for start, end, lines in _changes(base, theirs)]
        + [(start, end, lines, OURS) for start, end, lines in _changes(base, ours)],
        key=lambda c: (c[0], c[1] > c[0], c[3]),
    )
    last_range: list[_Change | None] = [None, None]  # per side, the latest changed range applied
    inserted: dict[tuple[int, int], list[str]] = {}  # (point, side) -> lines inserted there
    result: list[str] = []
    position = 0
    for start, end, lines, side in changes:
        other = last_range[1 - side]
        if start == end:  # an insertion
            if other is not None and other[0] < start < other[1]:
                raise MergeConflict("both sides changed the same part of the text")
            before = inserted.get((start, 1 - side), [])
            if lines[: len(before)] == before:  # this side already had the other's lines first
                lines = lines[len(before) :]
            elif before[: len(lines)] == lines:
                continue  # the other side's insertion already holds these lines
            inserted[(start, side)] = lines
        elif other is not None and other[1] > start:
            if other == (start, end, lines):
                continue  # the same change on both sides
            raise MergeConflict("both sides changed the same part of the text")
        else:
            last_range[side] = (start, end, lines)
        result.extend(base[position:start])
        result.extend(lines)
        position = max(position, end)
    result.extend(base[position:])
    return result


def main(argv: Sequence[str]) -> int:
    """`%O %A %B [%P]`: merge into %A and exit 0, or leave %A and exit 1."""
    if len(argv) < 3:
        print("usage: python -m anamnesis.sync.merge_driver BASE OURS THEIRS [PATH]", file=sys.stderr)
        return 2
    base_path, ours_path, theirs_path = (Path(a) for a in argv[:3])
    shown = argv[3] if len(argv) > 3 else ours_path.name
    try:
        base, ours, theirs = (p.read_bytes().decode("utf-8") for p in (base_path, ours_path, theirs_path))
        merged = merge_texts(base, ours, theirs)
    except MergeConflict as exc:
        print(f"anamnesis merge: {shown}: {exc.reason}; both versions will be kept", file=sys.stderr)
        return 1
    except (OSError, UnicodeDecodeError, subprocess.SubprocessError) as exc:
        print(f"anamnesis merge: {shown}: {exc}; both versions will be kept", file=sys.stderr)
        return 1
    ours_path.write_bytes(merged.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
