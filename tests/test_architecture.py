"""Layering rules that keep hooks fast and core independent of adapters."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "anamnesis"
HEAVY = ("mcp", "quart", "hypercorn", "asyncssh", "pydantic")
CORE = ("notes", "config", "errors", "ids", "store", "index", "search", "queries", "shapes", "memory", "gitrepo",
        "project", "context", "doctor", "evaluation", "home", "locks")


def test_the_hook_path_never_imports_mcp_quart_or_asyncssh(anamnesis_home: Path) -> None:
    subprocess.run([sys.executable, "-m", "anamnesis", "init"], check=True, capture_output=True)
    probe = (
        "import io, json, sys\n"
        "from anamnesis.cli import main\n"
        "sys.stdin = io.StringIO(json.dumps({'cwd': '/tmp', 'session_id': 's', 'prompt': 'tests'}))\n"
        "main(['hook', sys.argv[1]])\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(json.dumps(heavy), file=sys.stderr)\n"
    )
    for event in ("session-start", "user-prompt-submit", "session-end", "pre-compact", "stop"):
        result = subprocess.run([sys.executable, "-c", probe, event], capture_output=True, text=True, check=True)
        assert json.loads(result.stderr.strip().splitlines()[-1]) == [], event


def test_core_modules_never_import_adapters_or_their_libraries() -> None:
    forbidden = {*HEAVY, "anamnesis.cli", "anamnesis.mcp_server", "anamnesis.hooks", "anamnesis.dashboard",
                 "click", "anamnesis.sync.ssh"}
    for name in CORE:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            for module in modules:
                assert not any(module == f or module.startswith(f + ".") for f in forbidden), (name, module)
