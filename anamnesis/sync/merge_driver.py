"""Three-way merge of one markdown note: front-matter key by key, then the body.

git runs this as the `anamnesis` merge driver for `*.md` during a sync's `git merge-tree`
(`python -m anamnesis.sync.merge_driver %O %A %B %P`). Exit 0 means the merged text is in %A;
exit 1 means the two edits really collide, and the sync engine then keeps both versions as
separate notes. It never writes conflict markers: a collision leaves %A as it was.

What merges: edits to different front-matter keys; list keys (tags, supersedes) as sets with
additions and removals from both sides; `updated_at` as the later time and `machine_id` from
the side edited last; bodies changed in different places (`git merge-file`), and bodies both
sides only appended to (session logs), keeping both tails. What collides: the same key or the
same lines changed two ways, or the same new file written twice with different text.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from anamnesis.errors import NoteFormatError
from anamnesis.notes import parse_note, render_note, split_front_matter

_MISSING: Any = object()
# Keys where two different values are both right: the later edit's value wins.
_LATEST_WINS = frozenset({"machine_id"})
_TIME_KEY = "updated_at"


class MergeConflict(Exception):
    """The two versions cannot be merged automatically; `reason` says where they collide."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Loader(yaml.SafeLoader):
    """Safe YAML without the timestamp resolver, so `2026-11-20T10:00:00Z` stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [pair for pair in resolvers if pair[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


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
    dumped = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, default_flow_style=None, width=1_000_000)
    text = f"---\n{dumped}---\n{body}"
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
    try:
        data = yaml.load(front, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise MergeConflict("front-matter is not valid YAML") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MergeConflict("front-matter is not a mapping")
    return data, body


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
    newer_is_theirs = times[2] > times[1]
    both_edited = times[1] != times[0] and times[2] != times[0]
    merged: dict[str, Any] = {}
    for key in keys:
        b, o, t = base.get(key, _MISSING), ours.get(key, _MISSING), theirs.get(key, _MISSING)
        if key in _LATEST_WINS and both_edited:
            value = t if newer_is_theirs else o  # the machine that edited last, even if its value is the old one
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
    """Three-way merge of markdown text; `MergeConflict` when the same lines changed two ways."""
    if ours == theirs or theirs == base:
        return ours
    if ours == base:
        return theirs
    if ours.startswith(base) and theirs.startswith(base):
        # Both only appended (a session log): keep both tails, ours first.
        tail = theirs[len(base) :]
        if ours.endswith(tail):
            return ours
        return ours + ("" if ours.endswith("\n") or not ours else "\n") + tail
    return _merge_file(base, ours, theirs)


def _merge_file(base: str, ours: str, theirs: str) -> str:
    with tempfile.TemporaryDirectory(prefix="anamnesis-merge-") as scratch:
        paths = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(scratch) / name
            path.write_text(text if text.endswith("\n") or not text else text + "\n", encoding="utf-8")
            paths.append(str(path))
        result = subprocess.run(["git", "merge-file", "-p", "-q", *paths], capture_output=True, check=False, timeout=60)
    if result.returncode != 0:
        raise MergeConflict("both sides changed the same part of the text")
    merged = result.stdout.decode("utf-8")
    return merged if ours.endswith("\n") else merged.removesuffix("\n")


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
