"""The `Note` value and its markdown form: YAML front-matter, `---`, the body. Pure.

The format is the one anamnesis-memory 0.1.3 reads and writes (same keys, same order, same
enumerations), so a store written by either tool works with the other. Keys this version does
not model are kept in `Note.extra` and written back unchanged. Turning the front matter's text
into a mapping and back, safely and fast, is `front_matter`'s job; what its keys mean is here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from anamnesis.errors import NoteFormatError, NoteValidationError
from anamnesis.front_matter import dump_front_matter, read_front_matter, split_front_matter
from anamnesis.ids import is_safe_id

NOTE_TYPES = ("procedural", "semantic", "episodic")
SCOPES = ("portable", "machine-local")
PROV_SOURCES = ("human", "session-end", "reflection", "import", "merge")
GLOBAL_PROJECT = "global"

MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 65_536
MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_PROJECT_CHARS = 256
MAX_FIELD_CHARS = 256  # machine_id, user_id, workspace_id, prov_model, prov_session
MAX_EXTRA_VALUES = 1_000

# Front-matter keys in the order 0.1.3 writes them; optional ones are left out when empty.
_KEY_ORDER = (
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
)
_KNOWN_KEYS = frozenset(_KEY_ORDER)


@dataclass(frozen=True, slots=True)
class Note:
    """One memory. `body` never ends with a newline; timestamps are ISO-8601 UTC strings."""

    id: str
    type: str
    title: str
    body: str
    project: str = GLOBAL_PROJECT
    machine_id: str = ""
    scope: str = "portable"
    user_id: str = "self"
    workspace_id: str = "personal"
    prov_source: str = "human"
    confidence: float = 1.0
    prov_model: str | None = None
    prov_session: str | None = None
    supersedes: tuple[str, ...] = ()
    created_at: str = ""
    updated_at: str = ""
    tags: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_changes(self, **changes: Any) -> Note:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class NoteHeader:
    """What every listing shows of a note, without its body: lists (`queries.NoteSummary`) and
    search results (`search.Hit`) extend it, so the two never drift apart."""

    id: str
    type: str
    title: str
    project: str
    scope: str
    tags: tuple[str, ...]
    created_at: str
    updated_at: str


def utc_now() -> str:
    """Now, as the notes write it: ISO-8601 UTC, seconds precision, `Z` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags stripped, empty ones dropped, duplicates removed, order kept."""
    seen: dict[str, None] = {}
    for tag in tags:
        cleaned = " ".join(str(tag).split())
        if cleaned:
            seen.setdefault(cleaned, None)
    return tuple(seen)


def normalize_body(body: str) -> str:
    return body.replace("\r\n", "\n").rstrip("\n")


def validate_note(note: Note) -> None:
    """Raise `NoteValidationError` naming the first field that is not acceptable."""
    if not is_safe_id(note.id):
        raise NoteValidationError("id", f"{note.id!r} is not a valid note id")
    _check_choice("type", note.type, NOTE_TYPES)
    _check_choice("scope", note.scope, SCOPES)
    _check_choice("prov_source", note.prov_source, PROV_SOURCES)
    title = note.title.strip()
    if not title:
        raise NoteValidationError("title", "must not be empty")
    if "\n" in note.title or "\r" in note.title:
        raise NoteValidationError("title", "must be a single line")
    if len(note.title) > MAX_TITLE_CHARS:
        raise NoteValidationError("title", f"is {len(note.title)} characters; at most {MAX_TITLE_CHARS}")
    if len(note.body) > MAX_BODY_CHARS:
        raise NoteValidationError(
            "body", f"is {len(note.body)} characters; at most {MAX_BODY_CHARS} (keep notes short)"
        )
    if not note.project.strip() or "\n" in note.project:
        raise NoteValidationError("project", "must be a non-empty single line (or 'global')")
    if len(note.project) > MAX_PROJECT_CHARS:
        raise NoteValidationError("project", f"is {len(note.project)} characters; at most {MAX_PROJECT_CHARS}")
    for name in ("machine_id", "user_id", "workspace_id", "prov_model", "prov_session"):
        value = getattr(note, name) or ""
        if len(value) > MAX_FIELD_CHARS:
            raise NoteValidationError(name, f"is {len(value)} characters; at most {MAX_FIELD_CHARS}")
        _check_encodable(name, value, single_line=True)
    _check_encodable("title", note.title, single_line=True)
    _check_encodable("project", note.project, single_line=True)
    _check_encodable("body", note.body, single_line=False)
    if not (0.0 <= note.confidence <= 1.0) or math.isnan(note.confidence):
        raise NoteValidationError("confidence", "must be between 0 and 1")
    if len(note.tags) > MAX_TAGS:
        raise NoteValidationError("tags", f"at most {MAX_TAGS} tags")
    for tag in note.tags:
        if len(tag) > MAX_TAG_CHARS:
            raise NoteValidationError("tags", f"tag {tag[:20]!r}… is longer than {MAX_TAG_CHARS}")
        _check_encodable("tags", tag, single_line=True)
    for old in note.supersedes:
        if not is_safe_id(old):
            raise NoteValidationError("supersedes", f"{old!r} is not a valid note id")


def _check_encodable(name: str, value: str, *, single_line: bool) -> None:
    """Refuse what cannot be stored and read back: a lone surrogate has no UTF-8 form (the file
    would hold an escape the parser refuses) and a NUL in a one-line field ends up in a commit
    message or a path-like key, which git and the OS refuse after the file is written."""
    if single_line and "\x00" in value:
        raise NoteValidationError(name, "must not contain a NUL character")
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteValidationError(
            name, f"has a character with no UTF-8 form (a lone surrogate at position {exc.start})"
        ) from None


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise NoteValidationError(name, f"{value!r} is not one of: {', '.join(choices)}")


def render_note(note: Note) -> str:
    """The note as markdown with front-matter, ending in exactly one newline."""
    data: dict[str, Any] = {
        "id": note.id,
        "type": note.type,
        "title": note.title,
        "project": note.project,
        "machine_id": note.machine_id,
        "scope": note.scope,
        "user_id": note.user_id,
        "workspace_id": note.workspace_id,
        "prov_source": note.prov_source,
        "confidence": float(note.confidence),
    }
    if note.prov_model:
        data["prov_model"] = note.prov_model
    if note.prov_session:
        data["prov_session"] = note.prov_session
    if note.supersedes:
        data["supersedes"] = list(note.supersedes)
    data["created_at"] = note.created_at
    data["updated_at"] = note.updated_at
    data["tags"] = list(note.tags)
    for key, value in note.extra.items():
        if key not in _KNOWN_KEYS:
            data[key] = value
    return f"---\n{dump_front_matter(data)}---\n{normalize_body(note.body)}\n"


def parse_note(text: str, path: str | None = None) -> Note:
    """Read a note from its markdown text. Raises `NoteFormatError` with a reason users can act on."""
    front, body = split_front_matter(text, path)
    data = read_front_matter(front, path)
    _check_extra_values(data, path)
    for required in ("id", "type", "title"):
        if data.get(required) in (None, ""):
            raise NoteFormatError(f"front-matter has no {required!r}", path)
    try:
        note = Note(
            id=_text(data["id"]),
            type=_text(data["type"]),
            title=_text(data["title"]),
            body=normalize_body(body),
            project=_text(data.get("project") or GLOBAL_PROJECT),
            machine_id=_text(data.get("machine_id") or ""),
            scope=_text(data.get("scope") or "portable"),
            user_id=_text(data.get("user_id") or "self"),
            workspace_id=_text(data.get("workspace_id") or "personal"),
            prov_source=_text(data.get("prov_source") or "human"),
            confidence=_confidence(data.get("confidence", 1.0)),
            prov_model=_optional_text(data.get("prov_model")),
            prov_session=_optional_text(data.get("prov_session")),
            supersedes=_text_list(data.get("supersedes")),
            created_at=_timestamp(data.get("created_at")),
            updated_at=_timestamp(data.get("updated_at") or data.get("created_at")),
            tags=normalize_tags(_text_list(data.get("tags"))),
            extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS},
        )
    except (TypeError, ValueError) as exc:
        raise NoteFormatError(f"front-matter has a value of the wrong kind: {exc}", path) from exc
    try:
        validate_note(note)
    except NoteValidationError as exc:
        raise NoteFormatError(str(exc), path) from exc
    return note


def _check_extra_values(data: dict[Any, Any], path: str | None) -> None:
    """Keys this version does not model may hold plain YAML data (text, numbers, booleans, null,
    lists, mappings) and at most MAX_EXTRA_VALUES of them: they are written back and shown as
    JSON, so no bytes, sets or other tagged types."""
    stack: list[Any] = [value for key, value in data.items() if key not in _KNOWN_KEYS]
    seen = 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > MAX_EXTRA_VALUES:
            raise NoteFormatError(f"front-matter holds more than {MAX_EXTRA_VALUES} values", path)
        if isinstance(value, dict):
            stack.extend(value.values())
            stack.extend(value.keys())
        elif isinstance(value, list):
            stack.extend(value)
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            raise NoteFormatError(
                f"front-matter holds a {type(value).__name__}; only text, numbers, lists and mappings", path
            )


def _text(value: Any) -> str:
    if type(value) is str:
        return value.strip()
    if isinstance(value, (dict, list)):
        raise TypeError(f"expected text, got a {type(value).__name__}")
    return str(value).strip()


def _optional_text(value: Any) -> str | None:
    return None if value in (None, "") else _text(value)


def _text_list(value: Any) -> tuple[str, ...]:
    """A YAML list of strings; 0.1.3 also wrote `supersedes` as a lone string."""
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, list):
        return tuple(_text(item) for item in value if item not in (None, ""))
    raise TypeError(f"expected a list, got a {type(value).__name__}")


def _confidence(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("confidence must be a number")
    return float(value)


def _timestamp(value: Any) -> str:
    if value in (None, ""):
        return ""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _text(value)
