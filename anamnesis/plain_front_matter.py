"""A fast reader for the front matter `render_note` writes, agreeing with YAML wherever it answers.

Parsing front matter with PyYAML was most of a full rebuild (0.25 ms a note); this reads the
same notes about 20 times faster and answers None for anything outside the few forms
`render_note` writes, which then goes to the YAML parser. Property tests (tests/test_notes.py)
hold it to YAML's answer on every note it accepts.

Speed matters here (every note of a rebuild passes through it), hence one scan of the whole
text for characters that would need YAML's care, and cheap character tests per value after it.
"""

from __future__ import annotations

import re
from typing import Any

_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): ([^\n]*)\n", re.MULTILINE)
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+")
# Anything YAML reads with care in a value (tabs, control characters, line and byte-order
# marks): a front matter holding one goes to YAML whole.
_UNPRINTABLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
# A plain scalar cannot start with an indicator or white space (checked apart), nor end in " "
# or ":", nor hold ": " or " #".
_NOT_FIRST = frozenset("-?:,[]{}#&*!|>'\"%@`")
_FLOW_INDICATOR = re.compile(r"[,\[\]{}]|^ | $")
_NOT_PLAIN = object()
_UNSEEN = object()

Resolvers = dict[str, re.Pattern[str]]


class PlainReader:
    """Reads front matter the way `read` says, remembering what each value read as.

    Most values repeat from note to note (type, scope, project, machine, tags), so a rebuild
    mostly looks them up instead of reading them again.
    """

    CACHE_SIZE = 4096

    def __init__(self, resolvers: Resolvers) -> None:
        self._resolvers = resolvers  # first character -> what YAML reads as not text
        self._seen: dict[str, Any] = {}

    def read(self, front: str) -> dict[str, Any] | None:
        """The front matter as YAML would read it when every line is `key: value` with a value
        in a form `render_note` writes (plain text, 'quoted' text, a decimal, a flow list of
        plain text); None for anything else.
        """
        if not front or _UNPRINTABLE.search(front):
            return None
        pairs = _LINE.findall(front)
        # A match is a whole line (it starts a line and runs to its newline): as many matches as
        # lines, the last one ended, means every line is `key: value`.
        if len(pairs) != front.count("\n") or front[-1] != "\n":
            return None
        data: dict[str, Any] = {}
        seen = self._seen
        for key, raw in pairs:
            if key in data:
                return None
            value = seen.get(raw, _UNSEEN)
            if value is _UNSEEN:
                value = _scalar(raw, self._resolvers)
                if len(seen) >= self.CACHE_SIZE:
                    seen.clear()
                seen[raw] = tuple(value) if isinstance(value, list) else value
            if value is _NOT_PLAIN:
                return None
            data[key] = list(value) if isinstance(value, tuple) else value
        return data


def _scalar(raw: str, resolvers: Resolvers) -> Any:
    if not raw:
        return _NOT_PLAIN
    first = raw[0]
    if first == "'":
        if len(raw) < 2 or raw[-1] != "'":
            return _NOT_PLAIN
        inner = raw[1:-1]
        return _NOT_PLAIN if "'" in inner.replace("''", "") else inner.replace("''", "'")
    if first == "[":
        if raw[-1] != "]":
            return _NOT_PLAIN
        inner = raw[1:-1]
        if not inner:
            return []
        if _FLOW_INDICATOR.search(inner.replace(", ", "")):
            return _NOT_PLAIN
        values = [_text(item, resolvers) for item in inner.split(", ")]
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in values) else values
    if "0" <= first <= "9" and _DECIMAL.fullmatch(raw):
        return float(raw)
    return _text(raw, resolvers)


def _text(raw: str, resolvers: Resolvers) -> Any:
    if not raw or raw[0] in _NOT_FIRST or raw[0].isspace() or raw[-1] in " :" or ": " in raw or " #" in raw:
        return _NOT_PLAIN
    resolvable = resolvers.get(raw[0])
    if resolvable is not None and resolvable.match(raw):
        return _NOT_PLAIN  # YAML would read a number, a boolean or null: let YAML say which
    return raw
