"""Front matter: the YAML block between `---` lines at the top of a note, read and written.

It arrives from every machine of the fleet, so reading is bounded (size, nesting, no aliases:
a 555-byte "billion laughs" cannot eat the machine), and it is read fast: most front matter is
what `render_note` wrote, which `plain_front_matter` reads ~20 times faster than PyYAML. What the
keys mean is `notes`' business; this module only turns text into a mapping and back.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from anamnesis.errors import NoteFormatError
from anamnesis.plain_front_matter import PlainReader

# Front matter arrives from every machine of the fleet: bounded in size, nesting and
# (no aliases) expansion, so a 555-byte "billion laughs" cannot eat the machine.
MAX_FRONT_MATTER_CHARS = 65_536
MAX_NESTING = 16


@functools.cache
def _yaml() -> tuple[Any, Any, Any]:
    """(yaml module, loader, dumper), built on first use: PyYAML costs ~10 ms to import, and a
    hook answering from the index never parses a note.

    The loader is safe YAML without the timestamp resolver (`2026-11-20T10:00:00Z` stays a
    string); the dumper is safe YAML that keeps NEL and line/paragraph separators (PyYAML
    folds them in '…' style).
    """
    import yaml

    base = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader

    class FrontMatterLoader(base):  # type: ignore[misc,valid-type]
        pass

    FrontMatterLoader.yaml_implicit_resolvers = {
        first: [pair for pair in resolvers if pair[0] != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    class FrontMatterDumper(yaml.SafeDumper):
        pass

    def represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = '"' if any(ch in value for ch in "\x85\u2028\u2029") else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    FrontMatterDumper.add_representer(str, represent_text)
    # Never write an anchor and alias for a value met twice: the parser refuses aliases.
    FrontMatterDumper.ignore_aliases = lambda self, data: True  # type: ignore[method-assign]
    return yaml, FrontMatterLoader, FrontMatterDumper


def read_front_matter(front: str, path: str | None = None) -> dict[Any, Any]:
    """The front matter's mapping; `NoteFormatError` when it is too big, too deep, uses an
    alias, is not YAML or is not a mapping."""
    yaml, loader, _ = _yaml()
    try:
        _check_front_matter_shape(yaml, loader, front, path)
        data = _plain_front_matter(front)
        if data is None:
            data = yaml.load(front, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (front-matter line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise NoteFormatError(f"front-matter is not valid YAML{where}: {problem}", path) from exc
    if not isinstance(data, dict):
        raise NoteFormatError("front-matter is not a mapping of keys to values", path)
    return data


def dump_front_matter(data: dict[str, Any]) -> str:
    """`data` as front-matter YAML, keys in the order given, ending in a newline."""
    yaml, _, dumper = _yaml()
    text: str = yaml.dump(
        data, Dumper=dumper, sort_keys=False, default_flow_style=None, allow_unicode=True, width=1_000_000
    )
    return text


def split_front_matter(text: str, path: str | None = None) -> tuple[str, str]:
    """(front-matter YAML, body) of a note file's text; `NoteFormatError` when there is none."""
    text = text.replace("\r\n", "\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.startswith("---\n"):
        raise NoteFormatError("does not start with a '---' front-matter line", path)
    end = text.find("\n---\n", 3)
    if end == -1:
        if text.endswith("\n---"):
            end = len(text) - 4
        else:
            raise NoteFormatError("front-matter is not closed by a '---' line", path)
    return text[4 : end + 1], text[end + 5 :]


# -- a fast path for the front matter `render_note` writes --------------------------------------


def _plain_front_matter(front: str) -> dict[str, Any] | None:
    """The front matter as YAML would read it, or None for YAML to read (see plain_front_matter)."""
    return _plain_reader().read(front)


@functools.cache
def _plain_reader() -> PlainReader:
    return PlainReader(_resolvable())


@functools.cache
def _resolvable() -> dict[str, re.Pattern[str]]:
    """First character -> one pattern matching what YAML's implicit resolvers read as not text."""
    _, loader, _ = _yaml()
    return {
        first: re.compile("|".join(f"(?:{pattern.pattern})" for _, pattern in pairs), re.X)
        for first, pairs in loader.yaml_implicit_resolvers.items()
        if first is not None
    }


def _check_front_matter_shape(yaml: Any, loader: Any, front: str, path: str | None) -> None:
    """Refuse, before building anything, front matter that could expand without bound or nest
    deep enough to overflow the C parser's stack (30,000 `[` crash the process).

    The event scan is cheap but not free, so it runs only when the text could hold an alias
    (`*`) or more flow brackets than MAX_NESTING; block nesting is bounded by the size cap.
    """
    if len(front) > MAX_FRONT_MATTER_CHARS:
        raise NoteFormatError(f"front-matter is {len(front)} characters; at most {MAX_FRONT_MATTER_CHARS}", path)
    if "*" not in front and front.count("[") + front.count("{") <= MAX_NESTING:
        return
    depth = 0
    for event in yaml.parse(front, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            raise NoteFormatError(
                "front-matter uses a YAML alias (*name); notes never need one, and aliases can expand without bound",
                path,
            )
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_NESTING:
                raise NoteFormatError(f"front-matter nests deeper than {MAX_NESTING} levels", path)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
