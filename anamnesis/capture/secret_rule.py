"""What a redaction rule is, the marker that replaces a secret, and the shapes rules share.

The rules themselves live in `secret_tokens` (provider tokens, credentials in context) and
`secret_names` (names that say "secret"); `redact` runs them. Kept apart so each rule module
imports only this one, never the scanner.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MARKER_PREFIX = "[REDACTED:"
NOT_MARKER = r"(?!\[REDACTED:)"

Judge = Callable[[re.Match[str]], str | None]


def marker(kind: str) -> str:
    return f"{MARKER_PREFIX}{kind}]"


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True, slots=True)
class Rule:
    """A pattern whose group `secret` is a secret of `kind`.

    `needles`: lower-case strings one of which must occur in the text for the rule to run.
    `judge`: decides per match (None keeps the text). `glue`: unless None, a match right after
    a letter, a digit or one of these characters is part of a longer word and is kept.
    """

    kind: str
    pattern: re.Pattern[str]
    needles: tuple[str, ...] = ()
    judge: Judge | None = None
    glue: str | None = ""


def looks_random(value: str) -> bool:
    """Tokens mix digits and letters, or upper and lower case at random; words do not.

    CamelCase words (`TokenAuthentication`) have few capitals; a random mixed-case string has
    about as many capitals as small letters.
    """
    has_digit = any(c.isdigit() for c in value)
    upper = sum(1 for c in value if c.isupper())
    lower = sum(1 for c in value if c.islower())
    if has_digit and (upper or lower):
        return True
    return upper >= 3 and lower >= 3 and upper * 4 >= upper + lower


def random_token(kind: str) -> Judge:
    def judge(match: re.Match[str]) -> str | None:
        return kind if looks_random(match.group("secret")) else None

    return judge


def token_rule(kind: str, pattern: str, needles: tuple[str, ...], judge: Judge | None = None, glue: str = "") -> Rule:
    return Rule(kind, re.compile(f"(?P<secret>{pattern})"), needles, judge, glue)
