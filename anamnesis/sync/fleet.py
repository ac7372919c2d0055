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
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from anamnesis import __version__
from anamnesis.atomic import atomic_write
from anamnesis.config import Config, Layout
from anamnesis.errors import AnamnesisError
from anamnesis.layout import FLEET_DIR
from anamnesis.store import read_regular_file
from anamnesis.sync.peers import configured_peers, sync_settings

FLEET_VERSION = 1
STALE_HEARTBEATS = 3  # a machine silent for this many heartbeats is shown as stale


def fleet_rel_path(machine: str, install: str | None = None) -> str:
    """The fleet file of `machine`, relative to memory/; with `install`, the file a second
    machine publishing under the same name uses, so that neither overwrites the other."""
    return f"{FLEET_DIR}/{machine}.json" if install is None else f"{FLEET_DIR}/{machine}~{install[:8]}.json"


def install_id(layout: Layout) -> str:
    """This home's own random id (`state/install-id`), made on first use and never synced.

    Two laptops both called "MacBook-Pro" publish under one machine name; the install id is
    what tells them apart. Blocking.
    """
    path = layout.state_dir / "install-id"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        existing = path.read_text(encoding="utf-8").strip()
        if len(existing) == 16 and all(c in "0123456789abcdef" for c in existing):
            return existing
    made = secrets.token_hex(8)
    atomic_write(path, made + "\n")
    return made


def own_fleet_path(memory_dir: Path, machine: str, install: str) -> tuple[str, FleetEntry | None]:
    """Where this machine publishes its fleet file, and the other machine already publishing
    under the same name (None when the name is this machine's alone). Blocking.

    A fleet file of the same name written by an older release (no install id) is taken to be
    this machine's own.
    """
    path = memory_dir / fleet_rel_path(machine)
    entry = None
    with contextlib.suppress(OSError, UnicodeDecodeError, AnamnesisError):
        entry = FleetEntry.from_json(read_regular_file(str(path)).decode("utf-8"))
    if entry is not None and entry.install and entry.install != install:
        return fleet_rel_path(machine, install), entry
    return fleet_rel_path(machine), None


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
    last_pushed: str | None = None  # when this machine last sent commits to a hub

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
        atomic_write(path, json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")


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
    pushed_at: str | None = None  # when this machine last sent notes to the hub
    heard_at: str | None = None  # when it last heard from the hub (fetched or checked its main)
    install: str = ""  # the publishing home's install id: tells apart two machines of one name
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
                pushed_at=str(data["pushed_at"]) if data.get("pushed_at") else None,
                heard_at=str(data["heard_at"]) if data.get("heard_at") else None,
                install=str(data.get("install", "")),
                anamnesis=str(data.get("anamnesis", "")),
                version=int(data.get("version", 0)),
            )
        except (ValueError, KeyError, TypeError):
            return None


def write_fleet_file(memory_dir: Path, entry: FleetEntry, rel: str | None = None) -> str:
    """Write this machine's fleet file atomically (at `rel`, default its name's); its path
    relative to memory/. Blocking."""
    rel = rel or fleet_rel_path(entry.machine)
    atomic_write(memory_dir / rel, entry.to_json(), root=memory_dir)
    return rel


def retire_fleet_file(memory_dir: Path, machine: str, install: str) -> str | None:
    """Remove the fleet file this home published under `machine` (after a rename); its path
    relative to memory/, or None when it has none. Another machine's file of that name stays.
    Blocking."""
    for rel in (fleet_rel_path(machine, install), fleet_rel_path(machine)):
        entry = None
        with contextlib.suppress(OSError, UnicodeDecodeError, AnamnesisError):
            entry = FleetEntry.from_json(read_regular_file(str(memory_dir / rel)).decode("utf-8"))
        if entry is not None and entry.install in ("", install):
            (memory_dir / rel).unlink()
            return rel
    return None


def name_clash_message(machine: str, other: FleetEntry) -> str:
    return (
        f"another machine also syncs as {machine!r} (it last synced {other.synced_at}); both keep "
        f"every note, but history and the fleet page cannot tell them apart: give this one its own "
        f"name with `anamnesis init --machine-id NEW-NAME`"
    )


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
    pushed_at: str | None = None
    heard_at: str | None = None
    install: str = ""  # which home published it: two machines may share a name


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
    last_pushed: str | None = None
    last_heard: str | None = None
    name_clash: str | None = None  # another machine publishes under this machine's name: how to fix

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "hubs": list(self.hubs),
            "last_ok": self.last_ok,
            "last_attempt": self.last_attempt,
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "conflicts_total": self.conflicts_total,
            "last_pushed": self.last_pushed,
            "last_heard": self.last_heard,
            "machines": [asdict(m) for m in self.machines],
            "name_clash": self.name_clash,
        }


async def fleet_status(config: Config, *, now: float | None = None) -> FleetStatus:
    """The fleet as this machine knows it (from its last sync) plus its own sync record."""
    moment = time.time() if now is None else now
    heartbeat = sync_settings(config).fleet_heartbeat
    entries, state, install = await anyio.to_thread.run_sync(
        lambda: (
            read_fleet_files(config.layout.memory_dir),
            SyncState.load(state_path(config.layout)),
            install_id(config.layout),
        )
    )
    pushed, heard = await anyio.to_thread.run_sync(local_sync_times, config.layout)

    def mine(entry: FleetEntry) -> bool:
        return entry.machine == config.machine_id and entry.install in ("", install)

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
            this_machine=mine(e),
            # This machine knows its own times now; the others' are as of their last publish.
            pushed_at=_latest(e.pushed_at, pushed) if mine(e) else e.pushed_at,
            heard_at=_latest(e.heard_at, heard) if mine(e) else e.heard_at,
            install=e.install,
        )
        for e in entries
    ]
    others = [e for e in entries if e.machine == config.machine_id and e.install not in ("", install)]
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
        last_pushed=pushed,
        last_heard=heard,
        name_clash=name_clash_message(config.machine_id, others[0]) if others else None,
    )


def local_sync_times(layout: Layout) -> tuple[str | None, str | None]:
    """(last push, last time heard from the hub) of this machine, as UTC ISO times. Blocking.

    Heard: the newest of the last good sync and the service's last check of the hub's main.
    """
    from anamnesis.autosync import read_heard

    state = SyncState.load(state_path(layout))
    checked = read_heard(layout).get("heard_at_unix")
    heard = state.last_ok
    if checked:
        heard = _latest(heard, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(checked))))
    return state.last_pushed, heard


def _latest(*times: str | None) -> str | None:
    """The latest of ISO times written the same way (they sort as text); None if there is none."""
    present = [t for t in times if t]
    return max(present) if present else None
