"""The health page: index state, files that do not parse (and why), git state, the service's loops.

It is where a user looks when a note they wrote by hand does not show up: the reason is here,
with the file's path. Two buttons: reindex now, and sync now (when the service runs a sync loop).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import anyio
from quart import Blueprint, Response, redirect, url_for

from anamnesis.dashboard.error_pages import error_response
from anamnesis.dashboard.responses import json_response, page, wants_json
from anamnesis.dashboard.state import dashboard, memory

bp = Blueprint("health", __name__)


async def _file_size(path: anyio.Path) -> int | None:
    try:
        return (await path.stat()).st_size
    except FileNotFoundError:
        return None


@bp.get("/health")
async def health() -> Response:
    state = dashboard()
    mem = memory()
    status = await mem.status()
    problems = await mem.index.problems()
    service = state.status
    payload: dict[str, Any] = {
        "home": status["home"],
        "machine_id": status["machine_id"],
        "index": {
            "path": status["index"],
            "size_bytes": await _file_size(anyio.Path(status["index"])),
            "notes": status["total"],
            "superseded": status["superseded"],
            "by_type": status["by_type"],
            "by_scope": status["by_scope"],
            "projects": len(status["by_project"]),
            "problems": status["problems"],
            "refreshed_at": status["refreshed_at"],
        },
        "problems": [asdict(p) for p in problems],
        "git": status["git"],
        "hub": status["hub"],
        "service": {
            "running": service.running,
            "sync_enabled": service.sync_enabled,
            "sync_note": service.sync_note,
            "sync_interval": service.sync_interval,
            "last_sync_at": service.last_sync_at,
            "last_sync_ok": service.last_sync_ok,
            "last_sync_message": service.last_sync_message,
            "last_refresh_at": service.last_refresh_at,
            "last_refresh_message": service.last_refresh_message,
        },
    }
    return await page("health.html", payload)


@bp.post("/health/reindex")
async def reindex() -> Response:
    report = await memory().reindex()
    if wants_json():
        return json_response(
            {
                "scanned": report.scanned,
                "added": report.added,
                "updated": report.updated,
                "removed": report.removed,
                "problems": [asdict(p) for p in report.problems],
            }
        )
    return redirect(url_for("health.health"), 303)  # type: ignore[return-value]


@bp.post("/health/sync")
async def sync_now() -> Response:
    request_sync = dashboard().status.request_sync
    if request_sync is None:
        return await error_response(409, dashboard().status.sync_note)
    request_sync()
    if wants_json():
        return json_response({"requested": True}, 202)
    return redirect(url_for("health.health"), 303)  # type: ignore[return-value]
