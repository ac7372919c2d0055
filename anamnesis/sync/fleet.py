"""The fleet: what each machine publishes about its syncs, this machine's own sync record, and
`fleet_status` for the dashboard.

Each machine writes only `memory/.fleet/<machine>.json`, so merging these files never
conflicts, and every clone (any machine, or the user's own `git clone` of the hub) can show
the whole fleet. A machine republishes with each sync that sends something to the hub, and
otherwise at most once per heartbeat, so an idle fleet adds no commits cycle after cycle.
What only matters here (last attempt, last error, failures in a row) stays uncommitted in
`state/sync.json`.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from anamnesis import __version__
from anamnesis.config import Config, Layout
from anamnesis.errors import AnamnesisError
from anamnesis.layout import FLEET_DIR
from anamnesis.store import atomic_write_text, read_regular_file
from anamnesis.sync.peers import configured_peers, sync_settings

FLEET_VERSION = 1
STALE_HEARTBEATS = 3  # a machine silent for this many heartbeats is shown as stale


def fleet_rel_path(machine: str) -> str:
    """The fleet file of `machine`, relative to memory/."""
    return f"{FLEET_DIR}/{machine}.json"


def state_path(layout: Layout) -> Path:
    return layout.state_dir / "sync.json"


@dataclass(slots=True)
class SyncState:
    """This machine's own sync record (state/sync.json): never synced."""

    last_attempt: str | None = None
    last_ok: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    fleet_published_at: float = 0.0
    conflicts_total: int = 0
    withheld_paths: list[str] = field(default_factory=list)  # held back at the last push (secrets)
    last_summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> SyncState:
        """The record at `path`; a fresh one when it is missing or unreadable (it is only a record)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError:
            return cls()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True, slots=True)
class FleetEntry:
    """What one machine last published: when it synced, where it was, what it holds."""

    machine: str
    synced_at: str
    synced_at_unix: float
    head: str | None
    notes_written: int
    conflicts: int
    withheld: int = 0
    anamnesis: str = __version__
    version: int = FLEET_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FleetEntry | None:
        try:
            data = json.loads(text)
            return cls(
                machine=str(data["machine"]),
                synced_at=str(data["synced_at"]),
                synced_at_unix=float(data["synced_at_unix"]),
                head=str(data["head"]) if data.get("head") else None,
                notes_written=int(data.get("notes_written", 0)),
                conflicts=int(data.get("conflicts", 0)),
                withheld=int(data.get("withheld", 0)),
                anamnesis=str(data.get("anamnesis", "")),
                version=int(data.get("version", 0)),
            )
        except (ValueError, KeyError, TypeError):
            return None


def write_fleet_file(memory_dir: Path, entry: FleetEntry) -> str:
    """Write this machine's fleet file atomically; its path relative to memory/. Blocking."""
    rel = fleet_rel_path(entry.machine)
    atomic_write_text(memory_dir / rel, entry.to_json(), root=memory_dir)
    return rel


def read_fleet_files(memory_dir: Path) -> list[FleetEntry]:
    """Every machine's fleet file in memory/; unreadable ones are skipped. Blocking."""
    entries = []
    directory = memory_dir / FLEET_DIR
    if directory.is_symlink():
        return []  # never read through a link (doctor lists it)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for path in sorted(directory.iterdir()):
            if path.suffix != ".json" or path.name.startswith("."):
                continue
            with contextlib.suppress(OSError, UnicodeDecodeError, AnamnesisError):
                entry = FleetEntry.from_json(read_regular_file(str(path)).decode("utf-8"))
                if entry is not None:
                    entries.append(entry)
    return entries


@dataclass(frozen=True, slots=True)
class MachineStatus:
    """One machine as the fleet view shows it."""

    machine: str
    synced_at: str
    age_seconds: float
    stale: bool
    head: str | None
    notes_written: int
    conflicts: int
    withheld: int
    this_machine: bool


@dataclass(frozen=True, slots=True)
class FleetStatus:
    """Every machine that ever published, newest first, and this machine's own sync record."""

    machine: str
    hubs: list[str]
    machines: list[MachineStatus]
    last_ok: str | None
    last_attempt: str | None
    last_error: str | None
    consecutive_failures: int
    conflicts_total: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "hubs": list(self.hubs),
            "last_ok": self.last_ok,
            "last_attempt": self.last_attempt,
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "conflicts_total": self.conflicts_total,
            "machines": [asdict(m) for m in self.machines],
        }


async def fleet_status(config: Config, *, now: float | None = None) -> FleetStatus:
    """The fleet as this machine knows it (from its last sync) plus its own sync record."""
    moment = time.time() if now is None else now
    heartbeat = sync_settings(config).fleet_heartbeat
    entries, state = await anyio.to_thread.run_sync(
        lambda: (read_fleet_files(config.layout.memory_dir), SyncState.load(state_path(config.layout)))
    )
    machines = [
        MachineStatus(
            machine=e.machine,
            synced_at=e.synced_at,
            age_seconds=max(0.0, moment - e.synced_at_unix),
            stale=moment - e.synced_at_unix > STALE_HEARTBEATS * heartbeat,
            head=e.head,
            notes_written=e.notes_written,
            conflicts=e.conflicts,
            withheld=e.withheld,
            this_machine=e.machine == config.machine_id,
        )
        for e in entries
    ]
    machines.sort(key=lambda m: m.age_seconds)
    return FleetStatus(
        machine=config.machine_id,
        hubs=[p.url for p in configured_peers(config)],
        machines=machines,
        last_ok=state.last_ok,
        last_attempt=state.last_attempt,
        last_error=state.last_error,
        consecutive_failures=state.consecutive_failures,
        conflicts_total=state.conflicts_total,
    )
