"""The query builder: whatever a user or a model types becomes a safe FTS5 expression."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from anamnesis.errors import QueryError
from anamnesis.search import MAX_LIMIT, MAX_TERMS, build_query, clamp_limit, query_terms


@pytest.fixture(scope="module")
def fts() -> Iterator[sqlite3.Connection]:
    """An FTS5 table shaped like the index's, with a few rows to match against."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE notes_fts USING fts5(title, body, tags, tokenize='porter unicode61')")
    db.executemany(
        "INSERT INTO notes_fts(title, body, tags) VALUES (?, ?, ?)",
        [
            ("Deploying the API", "We deploy with a config file, never with scripts.", "deploy ops"),
            ("Title column trap", "the word title and the word secret", "trap"),
            ("Near the end", "NEAR AND OR NOT are words here", ""),
            ("Émoji café 🎉", "naïve façade über", "unicode"),
        ],
    )
    yield db
    db.close()


def matching_titles(db: sqlite3.Connection, expression: str) -> list[str]:
    return [row[0] for row in db.execute("SELECT title FROM notes_fts WHERE notes_fts MATCH ?", (expression,))]


def test_stopwords_are_dropped_from_a_question() -> None:
    query = build_query("How do we deploy the API?")

    assert query is not None
    assert query.terms == ("deploy", "api")
    assert query.strict == '"deploy" AND "api"'
    assert query.relaxed == '"deploy" OR "api"'


def test_a_query_of_only_stopwords_still_searches_for_them() -> None:
    assert query_terms("what is it") == ("what", "is", "it")


def test_a_query_without_any_word_has_nothing_to_search() -> None:
    assert build_query("") is None
    assert build_query('?!  -- ** "" ()') is None
    assert build_query("___") is None


def test_words_are_lower_cased_and_deduplicated_in_order() -> None:
    assert query_terms("Postgres postgres MIGRATION Postgres") == ("postgres", "migration")


def test_a_very_long_query_is_cut_to_a_bounded_number_of_terms() -> None:
    terms = query_terms(" ".join(f"word{i}" for i in range(200)))

    assert len(terms) == MAX_TERMS


def test_every_term_is_a_quoted_fts5_string() -> None:
    query = build_query('title:secret NEAR(a b) "quoted" deploy* ^start -not')

    assert query is not None
    for part in query.strict.split(" AND "):
        assert part.startswith('"')
        assert part.endswith('"')


def test_fts5_syntax_in_a_query_is_searched_as_words(fts: sqlite3.Connection) -> None:
    query = build_query("title:secret")

    assert query is not None
    # A column filter would look for "secret" in the title only and find nothing.
    assert matching_titles(fts, query.strict) == ["Title column trap"]


def test_fts5_operators_in_a_query_are_searched_as_words(fts: sqlite3.Connection) -> None:
    query = build_query("NEAR AND OR NOT")

    assert query is not None
    assert matching_titles(fts, query.strict) == ["Near the end"]


def test_porter_stemming_matches_other_forms_of_a_word(fts: sqlite3.Connection) -> None:
    query = build_query("deployed")

    assert query is not None
    assert matching_titles(fts, query.strict) == ["Deploying the API"]


def test_accented_words_are_found(fts: sqlite3.Connection) -> None:
    query = build_query("cafe naive")

    assert query is not None
    assert matching_titles(fts, query.strict) == ["Émoji café 🎉"]


def test_limit_is_defaulted_clamped_and_must_be_positive() -> None:
    assert clamp_limit(None) == 8
    assert clamp_limit(500) == MAX_LIMIT
    assert clamp_limit(3) == 3
    with pytest.raises(QueryError):
        clamp_limit(0)


_NASTY = [
    '"',
    '""',
    "'",
    "NEAR(",
    "NEAR(a b, 3)",
    "a NEAR/2 b",
    "*",
    "deploy*",
    "^",
    "^title",
    ":",
    "title:x",
    "{title body}: x",
    "-body:x",
    "(",
    ")",
    "a AND",
    "OR OR OR",
    "NOT",
    "a + b",
    "\x00",
    "nul\x00inside",
    "🎉🎉 emoji",
    "x" * 10_000,
    "_a_ b_",
    "ǅ ﬁ ß ΣΑΣ",
    "٣ ¾ ²",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.text(),
        st.lists(
            st.one_of(st.sampled_from(_NASTY), st.text(max_size=8)),
            max_size=8,
        ).map(" ".join),
    )
)
@example('\x00NEAR("title":x*)^')
@example('title:"a" OR body:b NOT c')
def test_no_text_makes_fts5_raise(fts: sqlite3.Connection, text: str) -> None:
    query = build_query(text)
    if query is None:
        return

    for expression in (query.strict, query.relaxed):
        fts.execute("SELECT rowid FROM notes_fts WHERE notes_fts MATCH ?", (expression,)).fetchall()
        fts.execute(
            "SELECT snippet(notes_fts, 1, '[', ']', '…', 16), bm25(notes_fts, 3.0, 1.0, 2.0) "
            "FROM notes_fts WHERE notes_fts MATCH ?",
            (expression,),
        ).fetchall()
