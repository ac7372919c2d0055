"""What a sync cycle did, per hub and in all: the value the CLI, MCP, service and dashboard show.

Kept apart from the engine so that the adapters that only show a report (and the tests that
read one) need not load the cycle's machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anamnesis.sync.gate import Withheld
from anamnesis.sync.merge import ConflictCopy


@dataclass(slots=True)
class HubResult:
    """How the cycle went with one hub."""

    name: str
    url: str
    pushed: bool = False
    pulled: int = 0
    attempts: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "url", "pushed", "pulled", "attempts", "error")}


@dataclass(slots=True)
class SyncReport:
    """What one sync cycle did. `as_dict()` is the shape the CLI, MCP and service show."""

    machine: str
    hubs: list[HubResult] = field(default_factory=list)
    committed: bool = False
    head: str | None = None
    changed_paths: list[str] = field(default_factory=list)  # relative to the home
    indexed: int = 0
    conflicts: list[ConflictCopy] = field(default_factory=list)
    kept_edits: list[str] = field(default_factory=list)
    withheld: list[Withheld] = field(default_factory=list)
    recovered_locks: list[str] = field(default_factory=list)
    fleet_published: bool = False
    left_out: list[str] = field(default_factory=list)  # files in memory/ that are not notes: never committed
    name_clash: str | None = None  # another machine publishes under this machine's name

    @property
    def ok(self) -> bool:
        return all(h.error is None for h in self.hubs)

    @property
    def pushed(self) -> bool:
        return any(h.pushed for h in self.hubs)

    @property
    def pulled(self) -> int:
        return sum(h.pulled for h in self.hubs)

    def summary(self) -> str:
        """One line for logs and status pages."""
        parts = [f"received {self.pulled} note(s)", "sent changes" if self.pushed else "nothing to send"]
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflict(s) kept both ways")
        if self.withheld:
            parts.append(f"{len(self.withheld)} note(s) not pushed (secrets)")
        if self.left_out:
            shown = ", ".join(self.left_out[:3])
            parts.append(f"{len(self.left_out)} file(s) in memory/ left out (not notes: {shown})")
        if self.name_clash:
            parts.append(self.name_clash)
        errors = [f"{h.name}: {h.error}" for h in self.hubs if h.error]
        if errors:
            parts.append("failed: " + "; ".join(errors))
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "machine": self.machine,
            "hub": self.hubs[0].url if self.hubs else None,
            "pushed": self.pushed,
            "pulled": self.pulled,
            "committed": self.committed,
            "head": self.head,
            "changed": len(self.changed_paths),
            "indexed": self.indexed,
            "conflicts": [c.as_dict() for c in self.conflicts],
            "kept_edits": list(self.kept_edits),
            "withheld": [w.as_dict() for w in self.withheld],
            "errors": [f"{h.name}: {h.error}" for h in self.hubs if h.error],
            "hubs": [h.as_dict() for h in self.hubs],
            "recovered_locks": list(self.recovered_locks),
            "fleet_published": self.fleet_published,
            "left_out": list(self.left_out),
            "name_clash": self.name_clash,
        }
