"""Layering rules that keep hooks fast and core independent of adapters."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.hookprobe import probe_hook

PACKAGE = Path(__file__).resolve().parent.parent / "anamnesis"
HEAVY = ("mcp", "quart", "hypercorn", "asyncssh", "pydantic")
CORE = (
    "notes",
    "config",
    "settings",
    "configedit",
    "errors",
    "ids",
    "store",
    "index",
    "index_refresh",
    "index_schema",
    "search",
    "queries",
    "shapes",
    "memory",
    "gitrepo",
    "project",
    "context",
    "doctor",
    "evaluation",
    "home",
    "locks",
    "embedding",
    "hybrid",
    "vectorizer",
    "static_recall",
    "static_table",
    "model_lending",
)


def test_the_hook_path_never_imports_mcp_quart_or_asyncssh(anamnesis_home: Path) -> None:
    subprocess.run([sys.executable, "-m", "anamnesis", "init"], check=True, capture_output=True)
    for event in ("session-start", "user-prompt-submit", "session-end", "pre-compact", "stop"):
        _, loaded = probe_hook(event, {"cwd": "/tmp", "session_id": "s", "prompt": "tests"})
        assert sorted(loaded & set(HEAVY)) == [], event


def test_core_modules_never_import_adapters_or_their_libraries() -> None:
    forbidden = {
        *HEAVY,
        "anamnesis.cli",
        "anamnesis.mcp_server",
        "anamnesis.hooks",
        "anamnesis.dashboard",
        "click",
        "anamnesis.sync.ssh",
    }
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
