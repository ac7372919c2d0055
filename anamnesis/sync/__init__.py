"""Sync: notes follow the user across machines as markdown in git, through their own SSH hub.

What the adapters call (CLI, MCP, service, dashboard):

- `anamnesis.sync.wiring`: `run_sync(config, memory=None)` → `SyncReport` (`.as_dict()`,
  `.summary()`), one cycle over SSH; `SyncError` and its kinds (`PeerUnreachableError`,
  `HostKeyError`, `AuthRefusedError`, `HubRepoMissingError`, `GitError`), or `BusyError` when
  a cycle is running; `sync_memory(memory)` is the same as a dict; `add_peer` trusts a hub.
  The wiring is the one module that picks the transport; this package never does.
- here: `remove_peer`, `list_peers` (see `peers`), `fleet_status(config)` → `FleetStatus`:
  every machine's last sync and this machine's record.

A collision's conflict copy is an ordinary note (tag `conflict`, `conflict_of: <id>`); the
dashboard lists them and records the user's decision.

Modules: the core — `engine` (the cycle), `link` (what it needs from a transport: `HubLink`,
failure codes), `report`, `operations` (the use cases, handed a transport), `merge` and
`merge_driver` (integrating), `gate` (no secrets pushed), `fleet` (machine status), `repo` (git
plumbing), `peers` and `hostkeys` (config and trust); the adapters — `ssh/` (the asyncssh
transport, which alone uses asyncssh, through `sshlib`), `live` (the service's held
connections), `quickcheck` (the hooks' OpenSSH look at a hub); and `wiring`, which binds them.
The names above load on first use, so importing this package or a light module of it stays
cheap for hooks and the dashboard.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names, for type checkers; at run time __getattr__ loads them
    from anamnesis.sync.fleet import FleetStatus as FleetStatus
    from anamnesis.sync.fleet import fleet_status as fleet_status
    from anamnesis.sync.link import HubLink as HubLink
    from anamnesis.sync.operations import PeerAdded as PeerAdded
    from anamnesis.sync.operations import current_config as current_config
    from anamnesis.sync.operations import list_peers as list_peers
    from anamnesis.sync.operations import remove_peer as remove_peer
    from anamnesis.sync.report import SyncReport as SyncReport

# Where each name lives; loaded on first use.
_HOMES = {
    "HubLink": "link",
    "SyncReport": "report",
    "FleetStatus": "fleet",
    "fleet_status": "fleet",
    **dict.fromkeys(
        ("PeerAdded", "current_config", "list_peers", "remove_peer"),
        "operations",
    ),
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"anamnesis.sync.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'anamnesis.sync' has no attribute {name!r}")
