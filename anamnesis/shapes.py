"""The JSON shapes of notes and search hits: one definition for every surface that returns them.

The CLI's `--json`, the dashboard's JSON API (README, "JSON output"), the MCP tools and the dedup
report all build their note and hit dictionaries here, so a field is spelled once and scripts can
rely on it. Keys are only ever added. A surface that shows less (the MCP tools keep responses
small) picks keys from these shapes with `pick` instead of spelling its own.

Snippets mark matched words with « and » unless the caller asks for other marks, never with
the index's control characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from anamnesis.notes import Note
from anamnesis.queries import NoteSummary
from anamnesis.search import Hit

MARK_OPEN, MARK_CLOSE = "«", "»"


class NamedNote(Protocol):
    """What names a note anywhere: a `Note`, a `NoteSummary`, a `Hit`, a dedup candidate."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def scope(self) -> str: ...


def ref_json(note: NamedNote) -> dict[str, Any]:
    """The fields that name a note, for payloads that mention one (a diff, a dedup group)."""
    return {"id": note.id, "type": note.type, "title": note.title, "project": note.project, "scope": note.scope}


def summary_json(note: NoteSummary | Note) -> dict[str, Any]:
    return {
        **ref_json(note),
        "tags": list(note.tags),
        "created_at": note.created_at,
        "updated_at": note.updated_at,
        "machine_id": note.machine_id,
    }


def note_json(note: Note, path: str, superseded_by: list[str]) -> dict[str, Any]:
    return {
        **summary_json(note),
        "body": note.body,
        "prov_source": note.prov_source,
        "confidence": note.confidence,
        "prov_model": note.prov_model,
        "prov_session": note.prov_session,
        "supersedes": list(note.supersedes),
        "superseded_by": superseded_by,
        "user_id": note.user_id,
        "workspace_id": note.workspace_id,
        "path": path,
        "extra": dict(note.extra),
    }


def hit_json(hit: Hit, marks: tuple[str, str] = (MARK_OPEN, MARK_CLOSE)) -> dict[str, Any]:
    """A search hit; `marks` open and close each matched word in the snippet."""
    return {
        **ref_json(hit),
        "tags": list(hit.tags),
        "created_at": hit.created_at,
        "updated_at": hit.updated_at,
        "score": hit.score,
        "snippet": hit.snippet_with(*marks),
        "match": hit.match,
    }


def pick(shape: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """`keys` of `shape`, in that order: a smaller view that still spells every field as above."""
    return {key: shape[key] for key in keys}
