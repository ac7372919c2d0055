"""Writing pages: a new note, and an edit that never overwrites a version it has not seen.

The edit form carries `base`, a digest of the note's file as it was when the form was made
(`Memory.read_for_edit`). A save is `Memory.update`, which writes only if the file is still that
version, checking and writing under the git lock: if it changed (in another tab, by hand, or by
a sync that brought another machine's version), nothing is written and the page answers 409
with both versions side by side; the user merges and saves on top of what is there now. A
script does the same through JSON (`base` is required).
"""

from __future__ import annotations

from quart import Blueprint, Response, redirect, request, url_for

from anamnesis.dashboard.error_pages import error_response
from anamnesis.dashboard.responses import json_response, page, wants_json
from anamnesis.dashboard.state import dashboard, memory
from anamnesis.errors import NoteChangedError, NoteNotFoundError, NoteValidationError, QueryError
from anamnesis.ids import normalize_id
from anamnesis.memory import NO_FILE, NoteDraft, NoteVersion
from anamnesis.notes import GLOBAL_PROJECT, Note, normalize_body, normalize_tags, utc_now
from anamnesis.shapes import note_json

DELETED = NO_FILE  # the `base` of a note that has no file (deleted since the form was made)
FIELDS = ("title", "body", "type", "project", "tags", "scope")

bp = Blueprint("editing", __name__)


def form_of(note: Note) -> dict[str, str]:
    return {
        "title": note.title,
        "body": note.body,
        "type": note.type,
        "project": note.project,
        "tags": ", ".join(note.tags),
        "scope": note.scope,
    }


async def submitted() -> dict[str, str]:
    """The fields of a form post or a JSON body, as strings (a JSON list of tags is joined)."""
    if request.mimetype == "application/json":
        data = await request.get_json(silent=True)
        if not isinstance(data, dict):
            raise QueryError("the request body must be a JSON object")
    else:
        data = (await request.form).to_dict()
    fields: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        if value is not None and not isinstance(value, (dict, bool)):
            fields[str(key)] = str(value)
    return fields


def split_tags(text: str) -> tuple[str, ...]:
    return normalize_tags(part for part in text.split(","))


def edited(note: Note, fields: dict[str, str], machine_id: str) -> Note:
    """`note` with the form's fields applied; a field the form left out keeps its value."""
    title = fields.get("title", note.title)
    return note.with_changes(
        title=" ".join(title.split()) if "\n" not in title.strip() else title,
        body=normalize_body(fields.get("body", note.body)),
        type=fields.get("type", note.type).strip(),
        project=fields.get("project", note.project).strip() or GLOBAL_PROJECT,
        tags=split_tags(fields["tags"]) if "tags" in fields else note.tags,
        scope=fields.get("scope", note.scope).strip(),
        machine_id=machine_id,
        updated_at=utc_now(),
    )


async def stale_response(
    note_id: str, fields: dict[str, str], current: NoteVersion | None, *, resolves: dict[str, str] | None = None
) -> Response:
    """409: the user's version kept in the form, the version on disk now beside it."""
    theirs = note_json(current.note, current.path, []) if current else None
    payload = {
        "error": {
            "status": 409,
            "title": "Changed since you opened it",
            "message": (
                "This note was changed since you opened it (here, in another tab, or by a sync). "
                "Nothing was saved. Merge your version with the current one and save again."
                if current
                else "This note was deleted since you opened it. Nothing was saved; saving again recreates it."
            ),
        },
        "current": theirs,
        "base": current.digest if current else DELETED,
        "form": {k: fields.get(k, "") for k in FIELDS},
    }
    if resolves is not None:
        action = url_for("conflicts.merge", copy_id=resolves["id"])
    else:
        action = url_for("editing.edit", note_id=note_id)
    return await page(
        "edit.html",
        payload,
        409,
        note_id=note_id,
        mode="merge" if resolves else "edit",
        action=action,
        resolves=resolves,
    )


async def invalid_response(
    exc: NoteValidationError, note_id: str | None, fields: dict[str, str], base: str
) -> Response:
    payload = {
        "error": {"status": 400, "title": "Not saved", "message": str(exc), "field": exc.field},
        "form": {k: fields.get(k, "") for k in FIELDS},
        "base": base,
        "current": None,
    }
    action = url_for("editing.edit", note_id=note_id) if note_id else url_for("editing.new")
    return await page("edit.html", payload, 400, note_id=note_id, mode="edit" if note_id else "new", action=action)


def saved_response(note: Note, path: str, status: int = 200) -> Response:
    if wants_json():
        return json_response({"note": note_json(note, path, [])}, status)
    return redirect(url_for("browse.note", note_id=note.id), 303)  # type: ignore[return-value]


@bp.get("/notes/<note_id>/edit")
async def edit_form(note_id: str) -> Response:
    current = await memory().read_for_edit(note_id)
    if current is None:
        raise NoteNotFoundError(note_id)
    payload = {
        "note": note_json(current.note, current.path, []),
        "base": current.digest,
        "form": form_of(current.note),
        "current": None,
    }
    return await page(
        "edit.html",
        payload,
        note_id=current.note.id,
        mode="edit",
        action=url_for("editing.edit", note_id=current.note.id),
    )


@bp.post("/notes/<note_id>/edit")
async def edit(note_id: str) -> Response:
    fields = await submitted()
    if "base" not in fields:
        raise QueryError("base is required: the digest the edit form (or GET …/edit as JSON) gave with the note")
    return await save_edit(note_id, fields)


async def save_edit(note_id: str, fields: dict[str, str], *, resolves: dict[str, str] | None = None) -> Response:
    """Apply `fields` to the note unless its file changed since `fields["base"]` was taken.

    `resolves` names a conflict copy (id and digest) that this edit merges: it is checked before
    anything is written and deleted once the merge is saved.
    """
    mem = memory()
    current = await mem.read_for_edit(note_id)
    if fields["base"] != (current.digest if current else DELETED):
        return await stale_response(note_id, fields, current, resolves=resolves)
    copy = None
    if resolves is not None:
        copy = await mem.read_for_edit(resolves["id"])
        if copy is None or copy.digest != resolves.get("base"):
            return await error_response(
                409, "The conflict copy changed since the merge was opened. Nothing was saved; open it again."
            )
    if current is None:
        original = Note(id=normalize_id(note_id), type="semantic", title="", body="", created_at=utc_now())
    else:
        original = current.note
    note = edited(original, fields, dashboard().config.machine_id)
    message = f"anamnesis: edit {note.type} {note.id} in the dashboard ({note.title[:60]})"
    try:
        await mem.update(note, fields["base"], message)
    except NoteChangedError as exc:  # changed after the look above: by a sync, or a save at the same moment
        now = NoteVersion(exc.current, exc.current_digest, mem.note_path(exc.current)) if exc.current else None
        return await stale_response(note_id, fields, now, resolves=resolves)
    except NoteValidationError as exc:
        return await invalid_response(exc, note_id, fields, fields["base"])
    if copy is not None:
        await mem.delete(copy.note.id)
    return saved_response(note, mem.note_path(note))


@bp.get("/new")
async def new_form() -> Response:
    project = " ".join((request.args.get("project") or "").split()) or GLOBAL_PROJECT
    form = {"title": "", "body": "", "type": "semantic", "project": project, "tags": "", "scope": "portable"}
    return await page(
        "edit.html",
        {"form": form, "base": DELETED, "current": None},
        note_id=None,
        mode="new",
        action=url_for("editing.new"),
    )


@bp.post("/new")
async def new() -> Response:
    fields = await submitted()
    draft = NoteDraft(
        type=fields.get("type", "semantic").strip(),
        title=fields.get("title", ""),
        body=fields.get("body", ""),
        project=fields.get("project", "").strip() or GLOBAL_PROJECT,
        tags=split_tags(fields.get("tags", "")),
        scope=fields.get("scope", "portable").strip(),
        prov_source="human",
    )
    try:
        note = await memory().write(draft)
    except NoteValidationError as exc:
        return await invalid_response(exc, None, fields, DELETED)
    return saved_response(note, memory().note_path(note), 201)
