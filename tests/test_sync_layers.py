"""The sync package keeps asyncssh in one adapter module, so hooks and the dashboard stay light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

SYNC = Path(__file__).resolve().parent.parent / "anamnesis" / "sync"
CORE = ("engine", "merge", "merge_driver", "gate", "incoming", "fleet", "repo", "peers", "hostkeys")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_asyncssh_is_imported_in_one_module_and_used_only_by_the_transport() -> None:
    importers = {p.stem for p in SYNC.glob("*.py") if any(m.split(".")[0] == "asyncssh" for m in imported_modules(p))}
    assert importers == {"sshlib"}  # the one import, with its dependency's noise silenced
    users = {p.stem for p in SYNC.glob("*.py") if "anamnesis.sync.sshlib" in imported_modules(p)}
    assert users == {"ssh"}


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
