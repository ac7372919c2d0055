"""`MemoryStatus`: the facts `anamnesis status` and MCP `memory_status` both report, typed.

One value built in one place (`Memory.state`), so the two surfaces cannot drift apart: how many
notes (by type, scope, project), the index, git, the hub and this machine's sync record, the
fleet as the last sync saw it, and semantic search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from anamnesis.config import Config


@dataclass(frozen=True, slots=True)
class GitState:
    """The memory repository: where main is and how many files changed by hand wait to be committed."""

    head: str | None
    branch: str | None
    uncommitted: int


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """This machine's sync record: when it last synced, why the last attempt failed, what it withheld."""

    last_ok: str | None
    last_attempt: str | None
    last_error: str | None  # only while the failures go on: a later success clears it
    withheld: tuple[str, ...]  # note paths kept off the hub at the last push (secrets)
    last_pushed: str | None
    last_heard: str | None


@dataclass(frozen=True, slots=True)
class FleetMachine:
    """One machine of the fleet as this machine last heard of it."""

    machine: str
    synced_at: str | None
    pushed_at: str | None
    heard_at: str | None


@dataclass(frozen=True, slots=True)
class MemoryStatus:
    home: str
    machine_id: str
    index: str
    total: int
    superseded: int
    by_type: dict[str, int]
    by_scope: dict[str, int]
    by_project: dict[str, int]
    problems: int
    refreshed_at: str | None
    git: GitState
    hub: str | None
    sync: SyncStatus
    fleet: tuple[FleetMachine, ...]
    semantic: dict[str, Any]

    @classmethod
    def of(
        cls,
        config: Config,
        counts: dict[str, Any],
        git: GitState,
        semantic: dict[str, Any],
        sync: SyncStatus,
        fleet: tuple[FleetMachine, ...],
    ) -> MemoryStatus:
        return cls(
            home=str(config.home),
            machine_id=config.machine_id,
            index=str(config.layout.index_path),
            total=counts["total"],
            superseded=counts["superseded"],
            by_type=dict(counts["by_type"]),
            by_scope=dict(counts["by_scope"]),
            by_project=dict(counts["by_project"]),
            problems=counts["problems"],
            refreshed_at=counts["refreshed_at"],
            git=git,
            hub=config.remote,
            sync=sync,
            fleet=fleet,
            semantic=dict(semantic),
        )

    def as_json(self) -> dict[str, Any]:
        """The JSON shape (`status --json`; MCP's structured content is built from the same facts)."""
        data = asdict(self)
        data["sync"]["withheld"] = list(self.sync.withheld)
        data["fleet"] = [asdict(m) for m in self.fleet]
        return data
