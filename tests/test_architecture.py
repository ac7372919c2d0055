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
    "front_matter",
    "atomic",
    "config",
    "settings",
    "configedit",
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


MAX_MODULE_LINES = 450


def test_no_module_of_the_package_exceeds_450_lines() -> None:
    too_long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            too_long[rel] = lines
    assert too_long == {}, f"split these along a real seam: {too_long}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _run_time_imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `name` imports when it runs, in any function, not counting
    imports for type checkers only; a module may use its own packages (they are initialised
    before it), so those do not count either."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for branch in child.orelse:
                    visit(branch)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, *([child.module] if child.module else [])])
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return {module for module in found if module in modules and module != name and module not in ancestors}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in order:
                connect(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], order[imported])
        if low[module] == order[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in order:
            connect(module)
    return found


def test_the_package_has_no_import_cycles() -> None:
    """Layers read from the imports only if they point one way: a cycle, even through an import
    inside a function, means two modules are one job split in two, or a value in the wrong place."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {name: _run_time_imports(name, path, set(paths)) for name, path in paths.items()}
    assert _cycles(graph) == []


def test_the_readme_layout_names_every_module() -> None:
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout of the code", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([a-z_]+)/?`", section))
    modules = {path.stem for path in PACKAGE.rglob("*.py") if path.stem not in {"__init__", "__main__"}}
    packages = {path.parent.name for path in PACKAGE.rglob("*/__init__.py")}
    missing = sorted((modules | packages) - named)
    assert missing == [], f"name these in the README's 'Layout of the code': {missing}"
