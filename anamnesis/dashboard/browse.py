"""Reading pages: the notes list (filters, counts, paging), search, and one note rendered.

Lists and search go through `Memory.list` and `Memory.search`, the same calls the CLI and MCP
make, so the dashboard never shows a different answer to the same question.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request, url_for
from werkzeug.datastructures import MultiDict

from anamnesis.dashboard.responses import page
from anamnesis.dashboard.state import memory
from anamnesis.errors import QueryError
from anamnesis.front_matter import split_front_matter
from anamnesis.notes import GLOBAL_PROJECT, NOTE_TYPES, SCOPES, render_note
from anamnesis.search import MAX_LIMIT, SearchFilters
from anamnesis.shapes import hit_json, note_json, summary_json

PAGE_SIZE = 25
SEARCH_SIZE = 20
TOP_PROJECTS = 40

bp = Blueprint("browse", __name__)


def int_arg(args: MultiDict[str, str], name: str, default: int, low: int = 1, high: int = MAX_LIMIT) -> int:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise QueryError(f"{name} must be a whole number") from exc
    if not low <= value <= high:
        raise QueryError(f"{name} must be between {low} and {high}")
    return value


def chosen_filters(args: MultiDict[str, str]) -> dict[str, str]:
    """The filters a request asked for, validated, as they appear in links."""
    chosen = {}
    for name in ("project", "type", "scope", "tag"):
        value = " ".join((args.get(name) or "").split())
        if value:
            chosen[name] = value[:200]
    if chosen.get("type", NOTE_TYPES[0]) not in NOTE_TYPES:
        raise QueryError(f"type must be one of: {', '.join(NOTE_TYPES)}")
    if chosen.get("scope", SCOPES[0]) not in SCOPES:
        raise QueryError(f"scope must be one of: {', '.join(SCOPES)}")
    if args.get("superseded") == "1":
        chosen["superseded"] = "1"
    return chosen


def search_filters(chosen: dict[str, str], *, with_global: bool) -> SearchFilters:
    project = chosen.get("project")
    projects: tuple[str, ...] = ()
    if project:
        projects = (project, GLOBAL_PROJECT) if with_global and project != GLOBAL_PROJECT else (project,)
    return SearchFilters(
        projects=projects,
        types=(chosen["type"],) if "type" in chosen else (),
        scope=chosen.get("scope"),
        tags=(chosen["tag"],) if "tag" in chosen else (),
        include_superseded=chosen.get("superseded") == "1",
    )


@bp.get("/")
async def notes() -> Response:
    chosen = chosen_filters(request.args)
    limit = int_arg(request.args, "limit", PAGE_SIZE)
    cursor = request.args.get("cursor") or None
    mem = memory()
    listed = await mem.list(search_filters(chosen, with_global=False), limit, cursor)
    counts = await mem.counts()
    projects = dict(list(counts["by_project"].items())[:TOP_PROJECTS])
    payload: dict[str, Any] = {
        "notes": [summary_json(n) for n in listed.notes],
        "next_cursor": listed.next_cursor,
        "filters": chosen,
        "counts": {
            "total": counts["total"],
            "by_type": counts["by_type"],
            "by_scope": counts["by_scope"],
            "by_project": projects,
            "projects_total": len(counts["by_project"]),
        },
    }
    link: dict[str, Any] = {**chosen, "cursor": listed.next_cursor}
    next_url = url_for("browse.notes", **link) if listed.next_cursor else None
    return await page("notes.html", payload, next_url=next_url, first_page=cursor is not None)


@bp.get("/search")
async def search() -> Response:
    query = (request.args.get("q") or "").strip()
    chosen = chosen_filters(request.args)
    limit = int_arg(request.args, "limit", SEARCH_SIZE)
    hits = await memory().search(query, search_filters(chosen, with_global=True), limit) if query else []
    payload = {"query": query, "filters": chosen, "hits": [hit_json(h) for h in hits]}
    return await page("search.html", payload, raw_hits=hits)


@bp.get("/notes/<note_id>")
async def note(note_id: str) -> Response:
    mem = memory()
    found = await mem.get(note_id)
    superseded_by = await mem.superseded_by(found.id)
    path = mem.note_path(found)
    front_matter, _ = split_front_matter(render_note(found))
    conflict_of = found.extra.get("conflict_of")
    payload = {"note": note_json(found, path, superseded_by)}
    return await page(
        "note.html",
        payload,
        front_matter=front_matter,
        conflict_of=str(conflict_of) if conflict_of else None,
    )
