"""The health page: index state, files that do not parse (and why), git state, the service's loops.

It is where a user looks when a note they wrote by hand does not show up: the reason is here,
with the file's path. Two buttons: reindex now, and sync now (when the service runs a sync loop).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


async def _gather(calls: dict[str, Callable[[], Awaitable[Any]]]) -> dict[str, Any]:
    """Run independent lookups at once: three git processes and two queries overlap."""
    results: dict[str, Any] = {}

    async def run(name: str, call: Callable[[], Awaitable[Any]]) -> None:
        results[name] = await call()

    async with anyio.create_task_group() as tg:
        for name, call in calls.items():
            tg.start_soon(run, name, call)
    return results


@bp.get("/health")
async def health() -> Response:
    state = dashboard()
    mem = memory()
    await mem.ensure_fresh()
    found = await _gather(
        {
            "counts": mem.counts,
            "problems": mem.problems,
            "head": mem.head,
            "branch": mem.branch,
            "dirty": mem.uncommitted,
            "size": lambda: _file_size(anyio.Path(state.config.layout.index_path)),
            "semantic": mem.recall_status,
        }
    )
    counts = found["counts"]
    service = state.status
    payload: dict[str, Any] = {
        "home": str(state.config.home),
        "machine_id": state.config.machine_id,
        "index": {
            "path": str(state.config.layout.index_path),
            "size_bytes": found["size"],
            "notes": counts["total"],
            "superseded": counts["superseded"],
            "by_type": counts["by_type"],
            "by_scope": counts["by_scope"],
            "projects": len(counts["by_project"]),
            "problems": counts["problems"],
            "refreshed_at": counts["refreshed_at"],
        },
        "problems": [asdict(p) for p in found["problems"]],
        "git": {"head": found["head"], "branch": found["branch"], "uncommitted": len(found["dirty"])},
        "hub": state.config.remote,
        "semantic": found["semantic"],
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
