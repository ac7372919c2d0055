"""The note file format: render, parse, 0.1.3 compatibility and the reasons a file is refused."""

from __future__ import annotations

import string
from datetime import UTC, datetime

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anamnesis.errors import NoteFormatError, NoteValidationError
from anamnesis.ids import new_ulid
from anamnesis.notes import (
    MAX_BODY_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    NOTE_TYPES,
    PROV_SOURCES,
    SCOPES,
    Note,
    normalize_tags,
    parse_note,
    render_note,
    validate_note,
)

ULID = "01JD3W6Q2M8Z4T9K7B5X0R1C2V"
OLD_ULID = "01JC0000000000000000000000"


def make_note(**changes: object) -> Note:
    base = Note(
        id=ULID,
        type="procedural",
        title="Configs over scripts",
        body="We always prefer configuration files over ad-hoc scripts in this repo.",
        project="github.com/acme/quotes-api",
        machine_id="desktop",
        created_at="2026-11-20T10:00:00Z",
        updated_at="2026-11-20T10:00:00Z",
        tags=("convention",),
    )
    return base.with_changes(**changes)


# -- render ----------------------------------------------------------------------------------


def test_rendered_note_has_front_matter_keys_in_0_1_3_order_and_ends_with_one_newline() -> None:
    text = render_note(make_note(supersedes=(OLD_ULID,), prov_model="openai/gpt-x", prov_session="s1"))

    assert text.startswith("---\n")
    assert text.endswith("in this repo.\n")
    front = text.split("---\n")[1]
    keys = [line.split(":", 1)[0] for line in front.splitlines()]
    assert keys == [
        "id",
        "type",
        "title",
        "project",
        "machine_id",
        "scope",
        "user_id",
        "workspace_id",
        "prov_source",
        "confidence",
        "prov_model",
        "prov_session",
        "supersedes",
        "created_at",
        "updated_at",
        "tags",
    ]


def test_rendered_note_leaves_out_empty_optional_keys() -> None:
    text = render_note(make_note())

    assert "prov_model" not in text
    assert "prov_session" not in text
    assert "supersedes" not in text


def test_rendered_timestamps_are_quoted_so_other_yaml_readers_keep_them_as_text() -> None:
    data = yaml.safe_load(render_note(make_note()).split("---\n")[1])

    assert data["created_at"] == "2026-11-20T10:00:00Z"
    assert data["updated_at"] == "2026-11-20T10:00:00Z"


def test_next_line_and_line_separator_characters_survive_a_round_trip() -> None:
    # PyYAML folds U+0085 into a space inside a single-quoted scalar; text pasted from
    # Windows-1252 sources carries it (it is the '…' of cp1252 decoded as Latin-1).
    note = make_note(project="acme\x85api", extra={"quote": "wait\x85 what", "sep": "a\u2028b\u2029c"})

    assert parse_note(render_note(note)) == note


def test_body_trailing_newlines_are_not_doubled_on_render() -> None:
    text = render_note(make_note(body="line one\n\n\n"))

    assert text.endswith("---\nline one\n")


# -- parse -----------------------------------------------------------------------------------


def test_a_rendered_note_parses_back_to_the_same_note() -> None:
    note = make_note(
        supersedes=(OLD_ULID,),
        prov_model="openai/gpt-x",
        prov_session="5b1f",
        confidence=0.75,
        scope="machine-local",
        tags=("convention", "python"),
        extra={"importance": 3, "links": ["a", "b"]},
    )

    assert parse_note(render_note(note)) == note


def test_note_written_on_windows_with_crlf_and_a_bom_parses() -> None:
    text = "\ufeff" + render_note(make_note()).replace("\n", "\r\n")

    assert parse_note(text) == make_note()


def test_note_whose_front_matter_closes_at_end_of_file_has_an_empty_body() -> None:
    text = "---\nid: abc\ntype: semantic\ntitle: Only a title\n---"

    note = parse_note(text)

    assert note.title == "Only a title"
    assert note.body == ""


def test_missing_optional_keys_get_defaults() -> None:
    note = parse_note("---\nid: abc\ntype: semantic\ntitle: Minimal\n---\nBody\n")

    assert note.project == "global"
    assert note.scope == "portable"
    assert note.user_id == "self"
    assert note.workspace_id == "personal"
    assert note.prov_source == "human"
    assert note.confidence == 1.0
    assert note.tags == ()
    assert note.supersedes == ()


def test_tags_are_stripped_and_deduplicated_on_parse() -> None:
    note = parse_note("---\nid: abc\ntype: semantic\ntitle: T\ntags: [' a ', a, '', b,  'c   d']\n---\n")

    assert note.tags == ("a", "b", "c d")


# -- 0.1.3 compatibility ----------------------------------------------------------------------

NOTE_0_1_3 = """\
---
id: 01JD3W6Q2M8Z4T9K7B5X0R1C2V
type: semantic
title: Postgres is the system of record
project: github.com/acme/quotes-api
machine_id: laptop
scope: portable
user_id: self
workspace_id: personal
prov_source: session-end
confidence: 0.8
prov_session: 5b1f0c
supersedes: 01JC0000000000000000000000
created_at: 2026-11-20T10:00:00Z
updated_at: 2026-11-21 08:30:00
tags:
- database
- decision
importance: high
links:
- https://example.com/adr/7
review:
  due: 2027-01-01
  owner: me
---
We chose Postgres over Mongo for quotes (ADR 7).
"""


def test_note_in_0_1_3_format_with_block_lists_and_unquoted_timestamps_parses() -> None:
    note = parse_note(NOTE_0_1_3)

    assert note.id == ULID
    assert note.type == "semantic"
    assert note.title == "Postgres is the system of record"
    assert note.machine_id == "laptop"
    assert note.prov_source == "session-end"
    assert note.confidence == 0.8
    assert note.prov_session == "5b1f0c"
    assert note.tags == ("database", "decision")
    assert note.created_at == "2026-11-20T10:00:00Z"
    assert note.updated_at == "2026-11-21 08:30:00"
    assert note.body == "We chose Postgres over Mongo for quotes (ADR 7)."


def test_legacy_scalar_supersedes_is_read_as_a_list_of_one() -> None:
    assert parse_note(NOTE_0_1_3).supersedes == (OLD_ULID,)


def test_unknown_keys_from_0_1_3_survive_a_round_trip() -> None:
    note = parse_note(NOTE_0_1_3)

    again = parse_note(render_note(note))

    assert again == note
    assert again.extra == {
        "importance": "high",
        "links": ["https://example.com/adr/7"],
        "review": {"due": "2027-01-01", "owner": "me"},
    }
    rendered = render_note(note)
    assert "importance: high" in rendered
    assert "review:" in rendered


def test_rewritten_0_1_3_note_stays_readable_by_a_plain_yaml_reader() -> None:
    rendered = render_note(parse_note(NOTE_0_1_3))
    data = yaml.safe_load(rendered.split("---\n")[1])

    assert data["supersedes"] == [OLD_ULID]
    assert data["tags"] == ["database", "decision"]
    assert data["type"] == "semantic"


# -- refused files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "does not start with a '---' front-matter line"),
        ("Just some markdown\n", "does not start with a '---' front-matter line"),
        ("\n---\nid: a\ntype: semantic\ntitle: t\n---\n", "does not start with a '---' front-matter line"),
        ("---\nid: a\ntype: semantic\ntitle: t\nbody without end\n", "front-matter is not closed"),
        ("---\nid: [a\ntype: semantic\n---\nbody\n", "front-matter is not valid YAML"),
        ("---\nid: a\n\ttype: semantic\n---\nbody\n", "front-matter is not valid YAML"),
        ("---\n- a\n- b\n---\nbody\n", "front-matter is not a mapping"),
        ("---\njust text\n---\nbody\n", "front-matter is not a mapping"),
        ("---\ntype: semantic\ntitle: t\n---\n", "front-matter has no 'id'"),
        ("---\nid: a\ntitle: t\n---\n", "front-matter has no 'type'"),
        ("---\nid: a\ntype: semantic\n---\n", "front-matter has no 'title'"),
        ("---\nid: a\ntype: semantic\ntitle: ''\n---\n", "front-matter has no 'title'"),
        ("---\nid: a\ntype: memo\ntitle: t\n---\n", "type: 'memo' is not one of: procedural, semantic, episodic"),
        ("---\nid: ../etc\ntype: semantic\ntitle: t\n---\n", "id: '../etc' is not a valid note id"),
        ("---\nid: a\ntype: semantic\ntitle: t\nscope: cloud\n---\n", "scope: 'cloud' is not one of"),
        ("---\nid: a\ntype: semantic\ntitle: t\nconfidence: 7\n---\n", "confidence: must be between 0 and 1"),
        ("---\nid: a\ntype: semantic\ntitle: t\nconfidence: high\n---\n", "value of the wrong kind"),
        ("---\nid: a\ntype: semantic\ntitle: [x, y]\n---\n", "value of the wrong kind"),
        ("---\nid: a\ntype: semantic\ntitle: t\ntags: {a: 1}\n---\n", "value of the wrong kind"),
    ],
)
def test_broken_note_is_refused_with_a_reason_the_user_can_act_on(text: str, reason: str) -> None:
    with pytest.raises(NoteFormatError) as caught:
        parse_note(text, "memory/semantic/a.md")

    assert reason in caught.value.reason
    assert caught.value.path == "memory/semantic/a.md"
    assert str(caught.value).startswith("memory/semantic/a.md: ")


def test_invalid_yaml_reason_names_the_front_matter_line() -> None:
    text = "---\nid: a\ntype: semantic\ntitle: [unclosed\n---\nbody\n"

    with pytest.raises(NoteFormatError) as caught:
        parse_note(text)

    assert "front-matter line" in caught.value.reason


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": "../x"}, "id"),
        ({"id": "a/b"}, "id"),
        ({"id": ""}, "id"),
        ({"id": ".hidden"}, "id"),
        ({"type": "memo"}, "type"),
        ({"scope": "cloud"}, "scope"),
        ({"prov_source": "robot"}, "prov_source"),
        ({"title": "   "}, "title"),
        ({"title": "two\nlines"}, "title"),
        ({"title": "x" * (MAX_TITLE_CHARS + 1)}, "title"),
        ({"body": "x" * (MAX_BODY_CHARS + 1)}, "body"),
        ({"project": ""}, "project"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": float("nan")}, "confidence"),
        ({"tags": tuple(f"t{i}" for i in range(MAX_TAGS + 1))}, "tags"),
        ({"tags": ("x" * (MAX_TAG_CHARS + 1),)}, "tags"),
        ({"supersedes": ("../../etc/passwd",)}, "supersedes"),
        ({"title": "nul\x00here"}, "title"),
        ({"title": "lone \ud800 surrogate"}, "title"),
        ({"tags": ("ok", "bad\x00")}, "tags"),
        ({"tags": ("bad\udfff",)}, "tags"),
        ({"project": "acme\x00"}, "project"),
        ({"project": "acme\udc80"}, "project"),
        ({"project": "p" * 100_000}, "project"),
        ({"body": "text \ud83d alone"}, "body"),
        ({"machine_id": "m" * 1_000}, "machine_id"),
        ({"prov_session": "s\x00"}, "prov_session"),
    ],
)
def test_invalid_note_is_refused_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(NoteValidationError) as caught:
        validate_note(make_note(**changes))

    assert caught.value.field == field


# -- property: parse(render(note)) == note ----------------------------------------------------

_SAFE_ID_ALPHABET = string.ascii_letters + string.digits
safe_ids = st.one_of(
    st.builds(new_ulid),
    st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(_SAFE_ID_ALPHABET),
        st.text(alphabet=_SAFE_ID_ALPHABET + "_-", max_size=40),
    ),
)
# Single-line text: no control characters (Cc covers \n, \r, \x85) and no line or paragraph
# separators; surrogates cannot be encoded at all.
_line_chars = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"))
single_lines = st.text(_line_chars, min_size=1, max_size=80).map(str.strip).filter(bool)
titles = st.text(_line_chars, min_size=1, max_size=MAX_TITLE_CHARS).map(str.strip).filter(bool)
bodies = st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=2_000).filter(
    lambda body: not body.endswith("\n")
)
tag_lists = st.lists(st.text(_line_chars, min_size=1, max_size=MAX_TAG_CHARS), max_size=8).map(normalize_tags)
timestamps = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)).map(
    lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")
)
_yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(st.characters(codec="utf-8"), max_size=30))
_yaml_values = st.recursive(
    _yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(_line_chars, max_size=10), children, max_size=3),
    ),
    max_leaves=6,
)
extras = st.dictionaries(
    st.text(_line_chars, min_size=1, max_size=20).filter(lambda key: key not in Note.__dataclass_fields__),
    _yaml_values,
    max_size=3,
)


@st.composite
def notes(draw: st.DrawFn) -> Note:
    created = draw(timestamps)
    return Note(
        id=draw(safe_ids),
        type=draw(st.sampled_from(NOTE_TYPES)),
        title=draw(titles),
        body=draw(bodies),
        project=draw(st.one_of(st.just("global"), single_lines)),
        machine_id=draw(st.one_of(st.just(""), single_lines)),
        scope=draw(st.sampled_from(SCOPES)),
        user_id=draw(st.one_of(st.just("self"), single_lines)),
        workspace_id=draw(st.one_of(st.just("personal"), single_lines)),
        prov_source=draw(st.sampled_from(PROV_SOURCES)),
        confidence=draw(st.floats(min_value=0.0, max_value=1.0)),
        prov_model=draw(st.one_of(st.none(), single_lines)),
        prov_session=draw(st.one_of(st.none(), single_lines)),
        supersedes=tuple(draw(st.lists(safe_ids, max_size=3, unique=True))),
        created_at=created,
        updated_at=draw(st.one_of(st.just(created), timestamps)),
        tags=draw(tag_lists),
        extra=draw(extras),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notes())
def test_any_valid_note_survives_render_then_parse_unchanged(note: Note) -> None:
    validate_note(note)

    assert parse_note(render_note(note)) == note


def _yaml_reading(front: str) -> object:
    from anamnesis.front_matter import _yaml

    _, loader, _ = _yaml()
    return yaml.load(front, Loader=loader)


def _typed(data: object) -> object:
    """Values with their types, so 1 and 1.0 and True do not compare equal."""
    if isinstance(data, dict):
        return {k: _typed(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_typed(v) for v in data]
    return (type(data).__name__, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notes())
def test_the_fast_front_matter_reader_agrees_with_yaml_on_every_rendered_note(note: Note) -> None:
    from anamnesis.front_matter import _plain_front_matter, split_front_matter

    front, _ = split_front_matter(render_note(note))
    fast = _plain_front_matter(front)
    if fast is not None:
        assert _typed(fast) == _typed(_yaml_reading(front))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["title", "tags", "confidence", "x"]), st.text(max_size=20)), max_size=4))
def test_the_fast_front_matter_reader_never_reads_a_line_differently_from_yaml(
    lines: list[tuple[str, str]],
) -> None:
    from anamnesis.front_matter import _plain_front_matter

    front = "".join(f"{key}: {value}\n" for key, value in lines)
    fast = _plain_front_matter(front)
    if fast is None:
        return
    assert _typed(fast) == _typed(_yaml_reading(front))


# -- front matter from a hostile peer ----------------------------------------------------------


def _billion_laughs() -> str:
    """555 bytes of front matter that expand to 10^9 strings in any loader that follows aliases."""
    lines = ['lol0: &a0 ["lol"]']
    for level in range(1, 10):
        previous = f"*a{level - 1}"
        lines.append(f"lol{level}: &a{level} [{', '.join([previous] * 10)}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_front_matter_is_refused_at_parse_time_naming_the_alias() -> None:
    text = render_note(make_note()).replace("tags:", _billion_laughs() + "tags:", 1)

    with pytest.raises(NoteFormatError, match="alias"):
        parse_note(text, "semantic/x.md")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("huge: '" + "x" * 70_000 + "'\n", "characters"),
        # 30,000 brackets overflow the C parser's stack: the process used to die.
        ("deep: " + "[" * 30_000 + "]" * 30_000 + "\n", "nest"),
        ("deep: " + "[" * 40 + "]" * 40 + "\n", "nests deeper"),
        ("many: [" + ", ".join(["1"] * 2_000) + "]\n", "more than"),
        ("blob: !!binary aGVsbG8=\n", "bytes"),
        ("pile: !!set {a, b}\n", "set"),
    ],
    ids=["huge", "crash-deep", "deep", "many", "binary", "set"],
)
def test_unknown_front_matter_keys_hold_only_bounded_plain_data(extra: str, reason: str) -> None:
    text = render_note(make_note()).replace("tags:", extra + "tags:", 1)

    with pytest.raises(NoteFormatError, match=reason):
        parse_note(text)


def test_a_value_met_twice_is_written_twice_not_as_an_alias_the_parser_would_refuse() -> None:
    shared = ["a", "b"]
    note = make_note(extra={"first": shared, "second": shared})

    assert parse_note(render_note(note)) == note
