"""One route, two answers: the HTML page for a browser, the same data as JSON for a script.

A view builds one JSON-able payload and calls `page(template, payload)`. A request that asks
for JSON (`Accept: application/json` ahead of HTML, or `?format=json`) gets the payload as is,
plus the session's CSRF token for the writes that follow; a browser gets the template rendered
from the same payload. The JSON shapes of notes follow the CLI's `--json` output.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Response, request, session
from quart import render_template as _render_template

from anamnesis.dashboard.render import plain_snippet
from anamnesis.dashboard.security import csrf_token
from anamnesis.index import NoteSummary
from anamnesis.notes import Note
from anamnesis.search import Hit

JSON_TYPE = "application/json"


def wants_json() -> bool:
    if request.args.get("format") == "json":
        return True
    if request.mimetype == JSON_TYPE and request.method not in ("GET", "HEAD"):
        return True
    best = request.accept_mimetypes.best_match([JSON_TYPE, "text/html"], default="text/html")
    return best == JSON_TYPE and request.accept_mimetypes[JSON_TYPE] > request.accept_mimetypes["text/html"]


def json_response(payload: Any, status: int = 200) -> Response:
    body = json.dumps(payload, ensure_ascii=False, default=str, indent=1)
    return Response(body, status=status, content_type="application/json; charset=utf-8")


async def page(template: str, payload: dict[str, Any], status: int = 200, **html_only: Any) -> Response:
    """`payload` as JSON or as the rendered `template`; `html_only` feeds the template alone."""
    if wants_json():
        return json_response({**payload, "csrf_token": csrf_token(session)}, status)
    html = await _render_template(template, **payload, **html_only)
    return Response(html, status=status, content_type="text/html; charset=utf-8")


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
        "snippet": plain_snippet(hit.snippet),
        "match": hit.match,
    }
