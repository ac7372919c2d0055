"""One route, two answers: the HTML page for a browser, the same data as JSON for a script.

A view builds one JSON-able payload and calls `page(template, payload)`. A request that asks
for JSON (`Accept: application/json` ahead of HTML, or `?format=json`) gets the payload as is,
plus the session's CSRF token for the writes that follow; a browser gets the template rendered
from the same payload. The JSON shapes of notes are the CLI's `--json` ones (`anamnesis.shapes`).
"""

from __future__ import annotations

import json
from typing import Any

from quart import Response, request, session
from quart import render_template as _render_template

from anamnesis.dashboard.security import csrf_token

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
