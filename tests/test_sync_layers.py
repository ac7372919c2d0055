"""The sync package keeps asyncssh in its SSH adapter, and its core never picks a transport.

Hooks and the dashboard stay light, and the engine can be driven over any transport: only
`wiring` binds the SSH adapter to the use cases.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

SYNC = Path(__file__).resolve().parent.parent / "anamnesis" / "sync"
CORE = ("engine", "merge", "merge_driver", "gate", "incoming", "fleet", "repo", "peers", "hostkeys")
# Every module of the package that is neither the SSH adapter nor wires or holds its connections.
ADAPTERS = {"ssh", "sshlib", "git_ssh", "wiring", "live", "doctor", "quickcheck"}
TRANSPORT = ("anamnesis.sync.ssh", "anamnesis.sync.sshlib", "anamnesis.sync.wiring", "anamnesis.sync.live", "asyncssh")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_asyncssh_is_imported_in_one_module_and_used_only_by_the_transport() -> None:
    modules = {p.relative_to(SYNC).with_suffix("").as_posix(): p for p in SYNC.rglob("*.py")}
    importers = {n for n, p in modules.items() if any(m.split(".")[0] == "asyncssh" for m in imported_modules(p))}
    assert importers == {"sshlib"}  # the one import, with its dependency's noise silenced
    users = {n for n, p in modules.items() if "anamnesis.sync.sshlib" in imported_modules(p)}
    assert users, "the SSH adapter uses asyncssh"
    assert all(n.startswith("ssh/") for n in users), users


def test_the_package_and_its_use_cases_never_pick_the_transport() -> None:
    core = [p for p in SYNC.glob("*.py") if p.stem not in ADAPTERS]
    assert {"__init__", "operations", "engine", "link"} <= {p.stem for p in core}
    for path in core:  # function-level imports count: picking a transport late is still picking it
        picked = [m for m in imported_modules(path) if m.startswith(TRANSPORT)]
        assert picked == [], (path.stem, picked)


def test_no_name_the_package_exports_loads_the_transport() -> None:
    probe = (
        "import json, sys\n"
        "import anamnesis.sync as sync\n"
        "for name in sync.__all__: getattr(sync, name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('asyncssh', 'anamnesis.sync.ssh', "
        "'anamnesis.sync.wiring')))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(result.stdout) == []


def test_the_sync_core_never_imports_the_transport() -> None:
    for name in CORE:
        modules = imported_modules(SYNC / f"{name}.py")
        assert not any(m.startswith(("anamnesis.sync.ssh", "anamnesis.cli", "mcp", "quart")) for m in modules), name


def test_importing_the_sync_package_loads_no_asyncssh() -> None:
    probe = (
        "import json, sys\n"
        "import anamnesis.sync, anamnesis.sync.fleet, anamnesis.sync.engine, anamnesis.sync.merge_driver\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncssh', 'mcp', 'quart'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(result.stdout) == []
