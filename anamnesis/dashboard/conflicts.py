"""Conflict copies awaiting a decision: keep one, keep both, or merge by editing.

When two machines changed the same note, the sync keeps one version in place and the other as a
conflict copy: a note tagged `conflict` whose front-matter names the original (`conflict_of`).
Every decision shows both versions first and carries the digest of each file as shown, so a
decision made on versions that have since changed is refused rather than applied to the wrong text.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, redirect, url_for

from anamnesis.dashboard.editing import (
    form_of,
    save_edit,
    submitted,
)
from anamnesis.dashboard.error_pages import error_response
from anamnesis.dashboard.responses import json_response, page, wants_json
from anamnesis.dashboard.state import dashboard, memory
from anamnesis.errors import NoteNotFoundError, QueryError
from anamnesis.memory import Memory, NoteVersion
from anamnesis.notes import Note, utc_now
from anamnesis.search import MAX_LIMIT, SearchFilters
from anamnesis.shapes import note_json

CONFLICT_TAG = "conflict"
CONFLICT_KEY = "conflict_of"
ACTIONS = ("keep-original", "keep-copy", "keep-both")

bp = Blueprint("conflicts", __name__)


def conflict_of(note: Note) -> str | None:
    value = note.extra.get(CONFLICT_KEY)
    return str(value).strip() or None if value not in (None, "") else None


def settled(note: Note, **changes: Any) -> Note:
    """`note` as an ordinary note: no conflict tag, no `conflict_of`, written by this machine now."""
    extra = {k: v for k, v in note.extra.items() if k != CONFLICT_KEY}
    tags = tuple(t for t in changes.pop("tags", note.tags) if t != CONFLICT_TAG)
    return note.with_changes(
        extra=extra, tags=tags, machine_id=dashboard().config.machine_id, updated_at=utc_now(), **changes
    )


async def _pair(mem: Memory, copy_id: str) -> tuple[NoteVersion, NoteVersion | None]:
    copy = await mem.read_for_edit(copy_id)
    if copy is None or conflict_of(copy.note) is None:
        raise NoteNotFoundError(copy_id)
    original_id = conflict_of(copy.note)
    assert original_id is not None
    try:
        original = await mem.read_for_edit(original_id)
    except NoteNotFoundError:
        original = None
    return copy, original


def _side(current: NoteVersion | None) -> dict[str, Any] | None:
    if current is None:
        return None
    return {**note_json(current.note, current.path, []), "base": current.digest}


@bp.get("/conflicts")
async def conflicts() -> Response:
    mem = memory()
    listed = await mem.list(SearchFilters(tags=(CONFLICT_TAG,), include_superseded=True), MAX_LIMIT)
    pairs = []
    for summary in listed.notes:
        try:
            copy, original = await _pair(mem, summary.id)
        except NoteNotFoundError:
            continue  # tagged by hand, not a sync's conflict copy
        pairs.append({"copy": _side(copy), "original": _side(original), "original_id": conflict_of(copy.note)})
    return await page("conflicts.html", {"conflicts": pairs, "more": listed.next_cursor is not None})


@bp.post("/conflicts/<copy_id>/resolve")
async def resolve(copy_id: str) -> Response:
    mem = memory()
    fields = await submitted()
    action = fields.get("action", "")
    if action not in ACTIONS:
        raise QueryError(f"action must be one of: {', '.join(ACTIONS)} (or merge by editing)")
    copy, original = await _pair(mem, copy_id)
    if fields.get("copy_base") != copy.digest or fields.get("original_base", "") != (
        original.digest if original else ""
    ):
        return await error_response(
            409, "One of the two versions changed since the page was loaded. Nothing was changed; look again."
        )
    copy_note = copy.note
    if action == "keep-original" and original is not None:
        await mem.delete(copy_note.id)
        kept = original.note
    elif action == "keep-copy" and original is not None:
        kept = settled(
            original.note,
            title=copy_note.title,
            body=copy_note.body,
            type=copy_note.type,
            project=copy_note.project,
            tags=copy_note.tags,
        )
        await mem.save(kept, f"anamnesis: resolve conflict on {kept.id}: keep the version of {copy_note.machine_id}")
        await mem.delete(copy_note.id)
    else:  # keep both, or the original is gone: the copy becomes an ordinary note
        kept = settled(copy_note)
        await mem.save(kept, f"anamnesis: resolve conflict on {conflict_of(copy_note)}: keep both")
    if wants_json():
        return json_response({"action": action, "kept": kept.id})
    return redirect(url_for("conflicts.conflicts"), 303)  # type: ignore[return-value]


@bp.get("/conflicts/<copy_id>/merge")
async def merge_form(copy_id: str) -> Response:
    mem = memory()
    copy, original = await _pair(mem, copy_id)
    if original is None:
        return await error_response(404, "The original of this conflict copy is gone; keep the copy instead.")
    payload = {
        "note": note_json(original.note, original.path, []),
        "base": original.digest,
        "form": form_of(settled(original.note)),
        "current": None,
        "copy": _side(copy),
    }
    return await page(
        "edit.html",
        payload,
        note_id=original.note.id,
        mode="merge",
        action=url_for("conflicts.merge", copy_id=copy.note.id),
        resolves={"id": copy.note.id, "base": copy.digest},
    )


@bp.post("/conflicts/<copy_id>/merge")
async def merge(copy_id: str) -> Response:
    mem = memory()
    fields = await submitted()
    copy, original = await _pair(mem, copy_id)
    if original is None or "base" not in fields:
        raise QueryError("a merge needs the original note and the base digest its form gave")
    tags = ", ".join(t.strip() for t in fields.get("tags", "").split(",") if t.strip() != CONFLICT_TAG)
    return await save_edit(
        original.note.id, {**fields, "tags": tags}, resolves={"id": copy.note.id, "base": fields.get("copy_base", "")}
    )
