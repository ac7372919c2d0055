"""The JSON shapes of notes and search hits that scripts rely on: one definition for the CLI's
`--json` and the dashboard's JSON API (README, "JSON output"). Keys are only ever added.

Snippets mark matched words with « and », never the index's control characters.
"""

from __future__ import annotations

from typing import Any

from anamnesis.notes import Note
from anamnesis.queries import NoteSummary
from anamnesis.search import Hit

MARK_OPEN, MARK_CLOSE = "«", "»"


def summary_json(note: NoteSummary | Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "type": note.type,
        "title": note.title,
        "project": note.project,
        "scope": note.scope,
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


def hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "type": hit.type,
        "title": hit.title,
        "project": hit.project,
        "scope": hit.scope,
        "tags": list(hit.tags),
        "created_at": hit.created_at,
        "updated_at": hit.updated_at,
        "score": hit.score,
        "snippet": hit.snippet_with(MARK_OPEN, MARK_CLOSE),
        "match": hit.match,
    }
