"""Search: the user's words become a safe FTS5 expression; strict first, relaxed when needed.

`build_query` is pure and total: whatever the text (FTS5 operators, quotes, NUL bytes, emoji),
each word becomes a double-quoted FTS5 string, so no user input reaches FTS5 syntax. Stopwords
do not count, unless the query has nothing else. `queries.search` is the one search every caller
uses (MCP, CLI, hooks, dashboard): a strict AND match ranked by BM25 (title above tags above
body), then, when that finds fewer than asked for, a relaxed OR match fills the rest.

This module holds the values and the pure query builder; `queries` builds on it, never the
other way round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from anamnesis.errors import QueryError
from anamnesis.notes import NoteHeader

DEFAULT_LIMIT = 8
MAX_LIMIT = 50
MAX_TERMS = 32
MAX_TERM_CHARS = 64
MAX_QUERY_CHARS = 4_000
HIGHLIGHT_OPEN = "\x02"
HIGHLIGHT_CLOSE = "\x03"

# Words that carry no topic in a question Claude or a person asks of their memory.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "cannot",
        "could",
        "couldn",
        "did",
        "didn",
        "do",
        "does",
        "doesn",
        "doing",
        "don",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hadn",
        "has",
        "hasn",
        "have",
        "haven",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "isn",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "shall",
        "she",
        "should",
        "shouldn",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "wasn",
        "we",
        "were",
        "weren",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "won",
        "would",
        "wouldn",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "d",
        "ll",
        "m",
        "re",
        "ve",
        "y",
    ]
)

_WORD_RE = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class FtsQuery:
    """The FTS5 expressions for one user query; `terms` is what they were made of."""

    terms: tuple[str, ...]
    strict: str
    relaxed: str


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Exact filters; `projects` matches any of the listed keys (e.g. a project and global)."""

    projects: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    scope: str | None = None
    tags: tuple[str, ...] = ()
    include_superseded: bool = False


@dataclass(frozen=True, slots=True)
class Hit(NoteHeader):
    """One search result. `snippet` marks matched words with HIGHLIGHT_OPEN/CLOSE."""

    score: float
    snippet: str
    match: str  # "strict" or "relaxed"
    extra: dict[str, str] = field(default_factory=dict)

    def snippet_with(self, open_mark: str, close_mark: str) -> str:
        return self.snippet.replace(HIGHLIGHT_OPEN, open_mark).replace(HIGHLIGHT_CLOSE, close_mark)


def query_terms(text: str) -> tuple[str, ...]:
    """The words of `text` that search on: lower-cased, deduplicated, stopwords dropped."""
    words = [w.lower() for w in _WORD_RE.findall(text[:MAX_QUERY_CHARS])]
    words = [w[:MAX_TERM_CHARS] for w in words if w.replace("_", "")]
    unique = list(dict.fromkeys(words))
    content = [w for w in unique if w not in STOPWORDS]
    return tuple((content or unique)[:MAX_TERMS])


def build_query(text: str) -> FtsQuery | None:
    """Safe FTS5 expressions for `text`, or None when it has no word to search for."""
    terms = query_terms(text)
    if not terms:
        return None
    quoted = [_quote(term) for term in terms]
    return FtsQuery(terms=terms, strict=" AND ".join(quoted), relaxed=" OR ".join(quoted))


def _quote(term: str) -> str:
    # An FTS5 string: double quotes doubled. \w+ has none, but the rule keeps this total.
    return '"' + term.replace('"', '""') + '"'


def clamp_limit(limit: int | None, max_limit: int = MAX_LIMIT) -> int:
    """The number of results to return: the default when None, at most `max_limit`."""
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1:
        raise QueryError(f"limit must be at least 1 (got {limit})")
    return min(limit, max_limit)
