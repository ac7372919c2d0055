"""The fleet page: every machine that has synced, from the `.fleet/<machine>.json` files in memory/.

Each machine's sync publishes one such file (`machine`, `synced_at`, `head`, `notes_written`,
`conflicts`, …). Another machine wrote it, possibly an older or newer version of Anamnesis, so
every field is optional and a file that is not JSON is shown as a problem, never fatal. How far
behind a machine is: the commits this machine has that its published head lacks (and the other
way round), asked of git only for a head that looks like a commit id.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import anyio.to_thread
from quart import Blueprint, Response

from anamnesis.config import Layout
from anamnesis.dashboard.responses import page
from anamnesis.dashboard.state import dashboard, memory
from anamnesis.memory import Memory

FLEET_DIR = ".fleet"
MAX_FLEET_FILES = 200
MAX_FILE_BYTES = 64 * 1024
_HEX_RE = re.compile(r"[0-9a-f]{7,64}")

bp = Blueprint("fleet", __name__)


@dataclass(frozen=True, slots=True)
class Machine:
    """One machine as its fleet file describes it, plus where it stands against this machine."""

    machine: str
    file: str
    synced_at: str | None = None
    head: str | None = None
    head_subject: str | None = None
    head_time: str | None = None
    notes_written: int | None = None
    conflicts: int | None = None
    behind: int | None = None
    ahead: int | None = None
    standing: str = "unknown"
    this_machine: bool = False
    problem: str | None = None
    pushed_at: str | None = None
    heard_at: str | None = None


def read_fleet_files(memory_dir: Path) -> list[tuple[str, dict[str, Any] | None, str | None]]:
    """(file name, data or None, problem or None) for each `.fleet/*.json` file."""
    directory = memory_dir / FLEET_DIR
    if directory.is_symlink():
        return []  # never read through a link a hub may have planted (doctor lists it)
    try:
        paths = sorted(p for p in directory.iterdir() if p.suffix == ".json" and p.is_file() and not p.is_symlink())
    except (FileNotFoundError, NotADirectoryError):
        return []
    found: list[tuple[str, dict[str, Any] | None, str | None]] = []
    for path in paths[:MAX_FLEET_FILES]:
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                found.append((path.name, None, "larger than a fleet file should be; not read"))
                continue
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            found.append((path.name, None, f"not readable as JSON: {exc}"))
            continue
        if not isinstance(data, dict):
            found.append((path.name, None, "not a JSON object"))
            continue
        found.append((path.name, data, None))
    return found


def _text(value: Any) -> str | None:
    return str(value)[:200] if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (list, dict)):
        return len(value)
    return None


async def machine_of(mem: Memory, name: str, data: dict[str, Any], machine_id: str) -> Machine:
    machine = _text(data.get("machine")) or name.removesuffix(".json")
    head = (_text(data.get("head")) or "").lower() or None
    subject = time = None
    behind = ahead = None
    standing = "no commit published"
    if head and _HEX_RE.fullmatch(head):
        shown = await mem.commit_summary(head)
        if shown is not None:
            subject, time = shown
            ahead, behind = await mem.ahead_behind(head)
            if behind == 0 and ahead == 0:
                standing = "up to date with this machine"
            elif behind and not ahead:
                standing = f"{behind} commit{'s' if behind != 1 else ''} behind this machine"
            elif ahead and not behind:
                standing = f"{ahead} commit{'s' if ahead != 1 else ''} ahead of this machine"
            else:
                standing = f"{behind} behind, {ahead} ahead of this machine"
        else:
            standing = "its last commit has not reached this machine yet (sync to fetch it)"
    elif head:
        standing = "published head is not a commit id"
    return Machine(
        machine=machine,
        file=name,
        synced_at=_text(data.get("synced_at")),
        head=head,
        head_subject=subject,
        head_time=time,
        notes_written=_count(data.get("notes_written")),
        conflicts=_count(data.get("conflicts")),
        behind=behind,
        ahead=ahead,
        standing=standing,
        this_machine=machine == machine_id,
        pushed_at=_text(data.get("pushed_at")),
        heard_at=_text(data.get("heard_at")),
    )


async def read_fleet(mem: Memory, layout: Layout, machine_id: str) -> list[Machine]:
    """Every machine's fleet file; this machine's push and hub times as it knows them now."""
    from anamnesis.sync.fleet import local_sync_times

    machines = []
    pushed, heard = await anyio.to_thread.run_sync(local_sync_times, layout)
    for name, data, problem in await anyio.to_thread.run_sync(read_fleet_files, layout.memory_dir):
        if data is None:
            machines.append(Machine(machine=name.removesuffix(".json"), file=name, problem=problem))
            continue
        machine = await machine_of(mem, name, data, machine_id)
        if machine.this_machine:
            machine = replace(
                machine,
                pushed_at=max(filter(None, (machine.pushed_at, pushed)), default=None),
                heard_at=max(filter(None, (machine.heard_at, heard)), default=None),
            )
        machines.append(machine)
    machines.sort(key=lambda m: m.synced_at or "", reverse=True)
    return machines


@bp.get("/fleet")
async def fleet() -> Response:
    state = dashboard()
    mem = memory()
    machines = await read_fleet(mem, state.config.layout, state.config.machine_id)
    payload = {
        "machines": [asdict(m) for m in machines],
        "this_machine": state.config.machine_id,
        "head": await mem.head(),
        "hub": state.config.remote or None,
    }
    return await page("fleet.html", payload)
