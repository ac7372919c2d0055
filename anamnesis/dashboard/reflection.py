"""The reflection review page: what the model proposed waits here to be accepted, edited or rejected.

`anamnesis reflect` keeps the model's proposals as pending; nothing it proposes becomes a note
until someone decides. Accepting writes the note exactly as `reflect --apply` does (the same
`accept_proposals`: through the eval guard, linked to its session notes, which are tagged
`reflected`), with the reviewer's edits if any. When the eval guard refuses, the page says
why and offers to accept anyway. Every POST passes the app's Origin and CSRF checks; every
value is escaped by the templates, and bodies render as markdown with raw HTML disabled.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, redirect, request, url_for

from anamnesis.capture.llm import model_label
from anamnesis.curation.proposals import (
    DURABLE_TYPES,
    PENDING,
    Proposal,
    ProposalStore,
)
from anamnesis.curation.reflect import accept_proposals, reject_proposal
from anamnesis.dashboard.editing import submitted
from anamnesis.dashboard.error_pages import error_response
from anamnesis.dashboard.responses import json_response, page, wants_json
from anamnesis.dashboard.state import dashboard, memory
from anamnesis.errors import CurationRefusedError, NoteValidationError, ProposalDecidedError, ProposalNotFoundError
from anamnesis.ids import is_safe_id
from anamnesis.memory import Memory
from anamnesis.shapes import note_json

EDIT_FIELDS = ("title", "type", "tags", "body")
YES = ("1", "true", "yes", "on")

bp = Blueprint("reflection", __name__)


def _store() -> ProposalStore:
    return ProposalStore.of(dashboard().config.layout)


def _form(proposal: Proposal) -> dict[str, str]:
    return {"title": proposal.title, "type": proposal.type, "tags": ", ".join(proposal.tags), "body": proposal.body}


async def _proposal_json(mem: Memory, proposal: Proposal) -> dict[str, Any]:
    """The proposal, with the titles of the session notes it cites (None for one deleted since)."""
    sources = []
    for note_id in proposal.source_ids:
        summary = await mem.summary(note_id)
        sources.append({"id": note_id, "title": summary.title if summary else None})
    data = proposal.to_json()
    data.pop("version", None)
    return {**data, "sources": sources, "form": _form(proposal)}


async def _review_page(status: int = 200, problem: dict[str, Any] | None = None) -> Response:
    mem = memory()
    await mem.ensure_fresh()
    config = dashboard().config
    pending = await _store().list(PENDING)
    payload: dict[str, Any] = {
        "proposals": [await _proposal_json(mem, p) for p in pending],
        "model": model_label(config.reflection) if config.reflection.configured else None,
    }
    if problem is not None:
        payload["error"] = problem
    accepted = request.args.get("accepted", "")
    return await page(
        "reflection.html",
        payload,
        status,
        durable_types=DURABLE_TYPES,
        accepted=accepted if is_safe_id(accepted) else None,
        rejected=request.args.get("rejected") is not None,
    )


@bp.get("/reflection")
async def proposals() -> Response:
    return await _review_page()


async def _wants_force(fields: dict[str, str]) -> bool:
    if fields.get("force", "").strip().lower() in YES:
        return True
    if request.mimetype == "application/json":  # `submitted` leaves JSON booleans out
        data = await request.get_json(silent=True)
        return isinstance(data, dict) and data.get("force") is True
    return False


async def _problem(
    proposal_id: str, status: int, title: str, message: str, form: dict[str, str], **more: Any
) -> Response:
    """The review page again, the reviewer's fields kept in the proposal's form, saying why not."""
    problem = {"id": proposal_id, "status": status, "title": title, "message": message, "form": form, **more}
    return await _review_page(status, problem)


@bp.post("/reflection/<proposal_id>/accept")
async def accept(proposal_id: str) -> Response:
    """Write the proposal as a note, with the reviewer's edits (title, type, tags, body) if any."""
    fields = await submitted()
    store = _store()
    try:
        proposal = await store.get(proposal_id)
    except ProposalNotFoundError as exc:
        return await error_response(404, str(exc))
    form = {**_form(proposal), **{k: fields[k] for k in EDIT_FIELDS if k in fields}}
    try:
        edited = proposal.edited({k: fields[k] for k in EDIT_FIELDS if k in fields})
        guarded = await accept_proposals(dashboard().config, store, [edited], force=await _wants_force(fields))
    except ProposalDecidedError as exc:
        return await error_response(409, str(exc))
    except CurationRefusedError as exc:
        return await _problem(
            proposal.id,
            409,
            "Refused by the eval guard",
            f"Accepting this would lower search recall@5 on your eval set from {exc.before:.3f} to "
            f"{exc.after:.3f}. Nothing was written: edit it, reject it, or accept it anyway.",
            form,
            can_force=True,
            recall_before=exc.before,
            recall_after=exc.after,
        )
    except NoteValidationError as exc:
        return await _problem(proposal.id, 400, "Not accepted", str(exc), form, field=exc.field)
    [note] = guarded.value
    mem = memory()
    if wants_json():
        path = mem.note_path(note)
        return json_response(
            {
                "proposal": proposal.id,
                "status": "accepted",
                "note": note_json(note, path, []),
                "guard": guarded.describe(),
            }
        )
    return redirect(url_for("reflection.proposals", accepted=note.id), 303)  # type: ignore[return-value]


@bp.post("/reflection/<proposal_id>/reject")
async def reject(proposal_id: str) -> Response:
    """Drop the proposal: no note is written and its session notes stay as they are."""
    try:
        rejected = await reject_proposal(_store(), proposal_id)
    except ProposalNotFoundError as exc:
        return await error_response(404, str(exc))
    except ProposalDecidedError as exc:
        return await error_response(409, str(exc))
    if wants_json():
        return json_response({"proposal": rejected.id, "status": rejected.status})
    return redirect(url_for("reflection.proposals", rejected=1), 303)  # type: ignore[return-value]
