"""Secrets out of text: `redact` replaces them with `[REDACTED:<kind>]`; `find_secrets` names them.

Everything a capture writes passes through `redact`, and sync refuses to push a note for which
`find_secrets` is not empty, so the two share one set of rules. The rules are precompiled
regexes written to run in linear time: every repetition is bounded or possessive, each pattern
starts with a literal or a keyword (so the regex engine can skip ahead to candidates; a word
boundary is checked afterwards in Python, since a leading lookbehind would defeat that), and a
rule whose trigger is absent from the text is skipped without a scan (the Telegram and Discord
token shapes have no literal; they start with a digit or one of three capitals, and are bounded).
`redact` is idempotent: a marker never matches a rule. `tests/redaction/` holds the corpus of
secrets that must be caught and look-alikes that must pass.

Precision matters as much as recall, because a false positive blocks a sync: a key name alone
(`max_tokens = 4096`, `author: Ann`, `password: str`) is not a secret, and neither is a value
that looks like code, a placeholder or a path. Secrets are replaced whole; what identifies them
(the user and host of a URL, the name of a variable) is kept.

This module is the scanner (spans, rule application, the public functions); the rules are in
`secret_tokens` (shapes and contexts) and `secret_names` (names that say "secret").
"""

from __future__ import annotations

import re

from anamnesis.capture.secret_names import ASSIGNMENT_RULES, value_group
from anamnesis.capture.secret_rule import MARKER_PREFIX, Rule, marker
from anamnesis.capture.secret_tokens import CONTEXT_RULES, PROVIDER_RULES

# A secret cut in half by a length cap may no longer look like one: `clip_redacted` reads
# this far past the cap, to a line break, before it redacts and cuts.
_CLIP_MARGIN = 512
_MARKER_END_RE = re.compile(r"\[REDACTED:[a-z-]{1,40}\]\Z")


# --- spans: <private>…</private> and PEM private keys ------------------------------------------

_PRIVATE_OPEN = re.compile(r"<private>", re.IGNORECASE)
_PRIVATE_CLOSE = re.compile(r"</private>", re.IGNORECASE)
_PEM_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
# What follows a BEGIN line whose END was cut off: base64, escaped newlines, PEM headers.
_PEM_BODY = re.compile(r"(?:[A-Za-z0-9+/=\s]++|\\[nrt]|[A-Za-z-]{1,40}:[^\n\\]*+)*+")


def _redact_spans(
    text: str,
    opener: re.Pattern[str],
    closer: re.Pattern[str],
    kind: str,
    found: list[str],
    body: re.Pattern[str] | None = None,
) -> str:
    """Replace each `opener … closer` span; an unclosed one runs to `body`'s end, or the text's."""
    out: list[str] = []
    pos = 0
    closer_missing = False  # once a search for the closer failed, a later one would too
    while (start := opener.search(text, pos)) is not None:
        end: int | None = None
        if not closer_missing:
            close = closer.search(text, start.end())
            if close is None:
                closer_missing = True
            else:
                end = close.end()
        if end is None:
            tail = body.match(text, start.end()) if body is not None else None
            end = tail.end() if tail is not None else len(text)
        out.append(text[pos : start.start()])
        out.append(marker(kind))
        found.append(kind)
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _glued(text: str, start: int, glue: str | None) -> bool:
    """Whether a match at `start` continues a longer word (an escape like `\\n` does not count)."""
    if glue is None or start == 0:
        return False
    before = text[start - 1]
    if before in "nrt" and start >= 2 and text[start - 2] == "\\":
        return False  # JSON- or shell-escaped text: `\\nghp_…` starts a new line
    if before == "]" and _MARKER_END_RE.search(text, max(0, start - 64), start):
        return True  # a marker stands for a word: what was glued to that word still is
    return before.isalnum() or before in glue


def _apply(rule: Rule, text: str, found: list[str]) -> str:
    """Replace the secret of every accepted match of `rule`.

    Unlike `re.sub`, a match that is not accepted does not consume its text: the search
    resumes one character after its start, so `--password --password hunter2` still finds
    the second flag. Matches are bounded, so this stays linear.
    """
    secret_group = "secret" in rule.pattern.groupindex
    out: list[str] = []
    pos = last = 0
    while (match := rule.pattern.search(text, pos)) is not None:
        start = match.start()
        s, e = match.span("secret" if secret_group else value_group(match))
        kind = None
        # A secret span that holds a marker is already redacted: what makes `redact` idempotent.
        if not _glued(text, start, rule.glue) and MARKER_PREFIX not in text[s:e]:
            kind = rule.judge(match) if rule.judge is not None else rule.kind
        if kind is None:
            pos = start + 1
            continue
        found.append(kind)
        out.append(text[last:s])
        out.append(marker(kind))
        last = pos = max(e, start + 1)
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


_RULES: tuple[Rule, ...] = PROVIDER_RULES + CONTEXT_RULES + ASSIGNMENT_RULES


def _scan(text: str, found: list[str]) -> str:
    if not text:
        return text
    text = _redact_spans(text, _PRIVATE_OPEN, _PRIVATE_CLOSE, "private", found)
    text = _redact_spans(text, _PEM_BEGIN, _PEM_END, "private-key", found, _PEM_BODY)
    lowered = text.lower()
    for rule in _RULES:
        if rule.needles and not any(needle in lowered for needle in rule.needles):
            continue
        text = _apply(rule, text, found)
    return text


def redact(text: str) -> str:
    """`text` with every secret it holds replaced by `[REDACTED:<kind>]`."""
    return _scan(text, [])


def find_secrets(text: str) -> list[str]:
    """The kinds of secret `text` holds, each once, in the order the rules found them."""
    found: list[str] = []
    _scan(text, found)
    return list(dict.fromkeys(found))


def clip_redacted(text: str, limit: int) -> str:
    """The redacted text, at most `limit` characters, without redacting more than it needs.

    The raw text is cut before redaction only at a line break (or a space) past the limit,
    so no secret is cut into a fragment that no rule recognises; the redacted text is then
    cut to size, which cannot reveal anything.
    """
    if limit <= 0:
        return ""
    clipped = len(text) > limit + _CLIP_MARGIN
    if clipped:
        window = text[: limit + _CLIP_MARGIN]
        cut = window.rfind("\n", limit)
        if cut == -1:
            cut = max(window.rfind(" ", limit), window.rfind("\t", limit))
        text = window[:cut] if cut > 0 else window
    red = redact(text)
    if len(red) <= limit and not clipped:
        return red
    return red[: max(0, limit - 1)].rstrip() + "…"
