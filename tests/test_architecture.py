"""Layering rules that keep hooks fast and core independent of adapters."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.hookprobe import probe_hook

PACKAGE = Path(__file__).resolve().parent.parent / "anamnesis"
HEAVY = ("mcp", "quart", "hypercorn", "asyncssh", "pydantic")
CORE = (
    "notes",
    "config",
    "errors",
    "edges",
    "ids",
    "store",
    "index",
    "index_refresh",
    "index_schema",
    "search",
    "queries",
    "shapes",
    "memory",
    "memory_inspect",
    "memory_status",
    "memory_vectors",
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
        "anamnesis.sync.wiring",
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


# `Memory` and the modules it is made of own the store, the index and the repository; the index
# modules (and the read plans they run) own every SQL statement.
MEMORY_MODULES = {"memory.py", "memory_inspect.py", "memory_vectors.py"}
INDEX_MODULES = {"index.py", "index_refresh.py", "index_schema.py", "index_rows.py", "queries.py", "static_recall.py"}
# What a Memory is called where it is used: `memory`, `mem`, `self.memory`, `memory()`.
MEMORY_NAMES = {"memory", "mem"}
HELD = {"store", "index", "git", "_store", "_index", "_git"}
# Transitional: mcp_server.py still asks `memory.store.path_for` until it is switched to `note_file`.
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|PRAGMA|CREATE|DROP|BEGIN|COMMIT|ROLLBACK)\b")
EXECUTE = {"execute", "executemany", "executescript", "execute_fetchall"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [(p.relative_to(PACKAGE).as_posix(), ast.parse(p.read_text())) for p in sorted(PACKAGE.rglob("*.py"))]


def _terminal_name(node: ast.expr) -> str | None:
    """`memory` for `memory`, `self.memory` and `memory()`: the name the expression ends in."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def test_nothing_outside_memory_reaches_its_store_index_or_repository() -> None:
    reached = []
    for rel, tree in _modules():
        if rel in MEMORY_MODULES:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or node.attr not in HELD:
                continue
            held = node.attr.startswith("_") or _terminal_name(node.value) in MEMORY_NAMES
            if held:
                reached.append(f"{rel}:{node.lineno} {ast.unparse(node)}")
    assert reached == [], "use (or add) a Memory method instead:\n" + "\n".join(reached)


def test_only_the_index_modules_hold_sql() -> None:
    found = []
    for rel, tree in _modules():
        if Path(rel).name in INDEX_MODULES:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
                found.append(f"{rel}:{node.lineno} {node.value[:60]!r}")
            elif isinstance(node, ast.Attribute) and node.attr in EXECUTE:
                found.append(f"{rel}:{node.lineno} .{node.attr}")
    assert found == [], "give the index a named query instead:\n" + "\n".join(found)
