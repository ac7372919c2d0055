"""History pages: a note's commits (which machine, when), any version, any two versions diffed.

Versions come from git (`Memory.history`): a note whose type changed (and so moved directory) keeps
its past, with the path it had in each commit so `git show <sha>:<path>` finds every version. A
version asked for must be one of the note's own commits; nothing else from the request reaches git.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from quart import Blueprint, Response, request

from anamnesis.dashboard.render import diff_lines
from anamnesis.dashboard.responses import page
from anamnesis.dashboard.state import memory
from anamnesis.errors import QueryError
from anamnesis.gitrepo import CommitInfo
from anamnesis.memory import Memory
from anamnesis.notes import Note
from anamnesis.shapes import ref_json

HISTORY_LIMIT = 200
_SHA_RE = re.compile(r"[0-9a-f]{7,40}")
_FIELD, _RECORD = "\x1f", "\x1e"

bp = Blueprint("history", __name__)


def _shown(version: CommitInfo) -> dict[str, Any]:
    """A version as the pages and their JSON show it: the commit's author is the machine."""
    shown = asdict(version)
    shown["machine"] = shown.pop("author")
    return shown


async def text_at(mem: Memory, version: CommitInfo) -> str:
    """The file as it was in `version` (empty where the commit deleted it)."""
    if version.deleted:
        return ""
    return await mem.text_at(version.sha, version.path)


async def _note_and_versions(mem: Memory, note_id: str) -> tuple[Note, list[CommitInfo]]:
    note = await mem.get(note_id)
    return note, await mem.history(note.id, HISTORY_LIMIT)


def _pick(versions: list[CommitInfo], sha: str | None, what: str) -> CommitInfo | None:
    if not sha:
        return None
    wanted = sha.strip().lower()
    if _SHA_RE.fullmatch(wanted):
        for version in versions:
            if version.sha.startswith(wanted):
                return version
    raise QueryError(f"{what} is not a version of this note; pick one from its history")


@bp.get("/notes/<note_id>/history")
async def history(note_id: str) -> Response:
    note, versions = await _note_and_versions(memory(), note_id)
    payload = {
        "note": ref_json(note),
        "versions": [_shown(v) for v in versions],
    }
    return await page("history.html", payload)


@bp.get("/notes/<note_id>/diff")
async def diff(note_id: str) -> Response:
    mem = memory()
    note, versions = await _note_and_versions(mem, note_id)
    new = _pick(versions, request.args.get("b"), "b") or (versions[0] if versions else None)
    old = _pick(versions, request.args.get("a"), "a")
    if old is None and new is not None:
        later = versions.index(new)
        old = versions[later + 1] if later + 1 < len(versions) else None
    old_text = await text_at(mem, old) if old else ""
    new_text = await text_at(mem, new) if new else ""
    lines = diff_lines(old_text, new_text, old.sha[:10] if old else "(nothing)", new.sha[:10] if new else "(nothing)")
    payload = {
        "note": ref_json(note),
        "a": _shown(old) if old else None,
        "b": _shown(new) if new else None,
        "versions": [_shown(v) for v in versions],
        "diff": [asdict(line) for line in lines],
    }
    return await page("diff.html", payload)


@bp.get("/notes/<note_id>/at/<sha>")
async def version(note_id: str, sha: str) -> Response:
    mem = memory()
    note, versions = await _note_and_versions(mem, note_id)
    found = _pick(versions, sha, "that commit")
    assert found is not None
    payload = {
        "note": ref_json(note),
        "version": _shown(found),
        "text": await text_at(mem, found),
    }
    return await page("version.html", payload)
