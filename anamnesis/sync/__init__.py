"""Sync: notes follow the user across machines as markdown in git, through their own SSH hub.

What the adapters call (CLI, MCP, service, dashboard):

- `run_sync(config, memory=None)` → `SyncReport` (`.as_dict()`, `.summary()`): one cycle (see
  `engine`); `SyncError` and its kinds (`PeerUnreachableError`, `HostKeyError`, `GitError`), or
  `BusyError` when a cycle is running; `sync_memory(memory)` is the same as a dict;
- `add_peer`, `remove_peer`, `list_peers`: the hubs this machine syncs with (see `peers`);
- `fleet_status(config)` → `FleetStatus`: every machine's last sync and this machine's record.

A collision's conflict copy is an ordinary note (tag `conflict`, `conflict_of: <id>`); the
dashboard lists them and records the user's decision.

Modules: `engine` (the cycle), `merge` and `merge_driver` (integrating), `gate` (no secrets
pushed), `fleet` (machine status), `repo` (git plumbing), `peers` and `hostkeys` (config and
trust), `ssh` (the asyncssh transport, which alone uses asyncssh, through `sshlib`; loaded on
first use), `quickcheck` (the hooks' OpenSSH look at a hub). The names above live in
`operations` and load on first use, so importing this package or a light module of it stays
cheap for hooks and the dashboard.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anamnesis.sync.operations import (
        FleetStatus,
        HubLink,
        PeerAdded,
        SyncReport,
        add_peer,
        current_config,
        fleet_status,
        list_peers,
        remove_peer,
        run_sync,
        sync_memory,
    )

__all__ = [
    "FleetStatus",
    "HubLink",
    "PeerAdded",
    "SyncReport",
    "add_peer",
    "current_config",
    "fleet_status",
    "list_peers",
    "remove_peer",
    "run_sync",
    "sync_memory",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("anamnesis.sync.operations"), name)
    raise AttributeError(f"module 'anamnesis.sync' has no attribute {name!r}")
