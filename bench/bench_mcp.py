"""MCP server benchmark: cold start, search round trip at 10k notes, what every session pays.

    python bench/bench_mcp.py                  # 10k notes (bench/generate.py's cached store)
    python bench/bench_mcp.py --notes 1000 --queries 100

Measured as Claude Code sees the server, through a stdio client (`mcp.Client`, auto mode):

- cold start: spawn `python -m anamnesis.mcp_server` → handshake → tools/list answered, against
  the floor of importing the SDK alone (`python -c "import mcp.server.mcpserver"`) in the same
  run; target: at most floor + 0.3 s;
- search round trip: `memory_search` calls on a warm server, p50 target 15 ms at 10k and 60 ms
  at 100k (`--notes 100000`, after `bench_recall.py --synthetic-vectors`); every note has
  its vector first (embedded here when missing), so the search is hybrid and no background
  embedding runs beside it;
- the tools/list size (chars of its JSON, and chars/4 as tokens; budget 1.2k tokens) and the
  largest response seen (budget about 8k tokens);
- resident memory (VmRSS) of the server, without a service: once it answers (no model yet),
  once semantic search is ready and after the searches; then of a second server on the same
  home once its semantic search is ready (it borrows the first one's model: target +150 MB at
  most per session over the first's start, or one model copy on the machine).

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for path in (ROOT, BENCH):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import anyio  # noqa: E402
from common import Table, machine_line, p50, p95  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.types import CallToolResult  # noqa: E402

from anamnesis.mcp_server import TOOLS_LIST_BUDGET_CHARS  # noqa: E402

COLD_START_MARGIN = 0.3
SEARCH_P50_TARGETS = {10_000: 0.015, 100_000: 0.060}  # issue 12: 15 ms at 10k, 60 ms at 100k
RESPONSE_TOKENS_TARGET = 8_000
MEMORY_TARGET_MB = 150
PROJECT = "github.com/acme/quotes-api"
DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
# The floor as specified includes the interpreter's exit (~0.3 s of module teardown), which a
# server answering tools/list has not reached yet; the floor without it is shown alongside.
NO_EXIT = "import mcp.server.mcpserver, os; os._exit(0)"


def the_store(notes: int) -> Path:
    """A home of `notes` notes: bench/generate.py's cached store, or one made here."""
    try:
        import generate
    except ImportError:
        return _fallback_store(notes)
    return anyio.run(lambda: generate.ensure_store(notes), backend="asyncio")


def _fallback_store(notes: int) -> Path:
    """Plain generated notes, written as files and indexed, when generate.py is not there."""
    import random

    from anamnesis.config import load_config
    from anamnesis.home import init_home
    from anamnesis.ids import new_ulid
    from anamnesis.memory import open_memory
    from anamnesis.notes import Note, render_note

    home = Path(tempfile.mkdtemp(prefix="anamnesis-bench-")) / "home"
    config = load_config(home, {"ANAMNESIS_MACHINE_ID": "desktop"})
    words = [
        "deploy",
        "test",
        "build",
        "cache",
        "queue",
        "worker",
        "schema",
        "index",
        "token",
        "pool",
        "retry",
        "timeout",
        "migration",
    ]
    rng = random.Random(1)

    async def build() -> None:
        await init_home(config.layout, "desktop")
        for n in range(notes):
            kind = ("procedural", "semantic", "episodic")[n % 3]
            text = " ".join(rng.choice(words) for _ in range(120))
            note = Note(
                id=new_ulid(),
                type=kind,
                title=" ".join(rng.sample(words, 4)),
                body=text,
                project=PROJECT if n % 2 else "global",
                machine_id="desktop",
                created_at="2026-01-01T00:00:00Z",
                updated_at="2026-01-01T00:00:00Z",
            )
            (config.layout.memory_dir / kind / f"{note.id}.md").write_text(render_note(note), encoding="utf-8")
        async with open_memory(config) as memory:
            await memory.reindex()

    anyio.run(build, backend="asyncio")
    return home


def the_queries(count: int) -> list[tuple[str, str | None]]:
    try:
        import generate
    except ImportError:
        words = [
            "deploy",
            "test",
            "build",
            "cache",
            "queue",
            "worker",
            "schema",
            "index",
            "token",
            "pool",
            "retry",
            "timeout",
        ]
        return [(f"{words[n % len(words)]} {words[(n * 7) % len(words)]}", None) for n in range(count)]
    return list(generate.make_queries(count))


def embed_store(home: Path) -> None:
    """Give every note of the store its vector (and the index its static table) before the
    servers start: searches are timed as users get them once the background embedding is done,
    not against it (a bench store's index is rebuilt without vectors by bench_index.py)."""
    from anamnesis.config import load_config
    from anamnesis.memory import open_memory

    async def run() -> None:
        async with open_memory(load_config(home, {"ANAMNESIS_MACHINE_ID": "bench"})) as memory:
            await memory.ensure_fresh()
            started = time.perf_counter()
            stored = await memory.embed_pending()
            status = await memory.recall_status()
            took = f" (embedded {stored} first: {time.perf_counter() - started:.0f} s)" if stored else ""
            print(f"  vectors: {status['embedded']}/{status['notes']} notes{took}")

    anyio.run(run, backend="asyncio")


def server_params(home: Path, project_dir: Path) -> StdioServerParameters:
    env = {
        "ANAMNESIS_HOME": str(home),
        "CLAUDE_PROJECT_DIR": str(project_dir),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    return StdioServerParameters(command=sys.executable, args=["-m", "anamnesis.mcp_server"], env=env)


def connect(params: StdioServerParameters) -> Client:
    """A client of a freshly spawned server whose log lines (stderr) are dropped."""
    return Client(stdio_client(params, errlog=DEVNULL), mode="auto")


def import_floor(code: str = "import mcp.server.mcpserver") -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


async def cold_start(params: StdioServerParameters) -> float:
    started = time.perf_counter()
    async with connect(params) as client:
        await client.list_tools()
        elapsed = time.perf_counter() - started
    return elapsed


def servers_rss_mb() -> dict[int, float]:
    """VmRSS in MB of each `anamnesis.mcp_server` process this bench spawned, by pid."""
    found: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if b"anamnesis.mcp_server" not in handle.read():
                    continue
            with open(f"/proc/{entry}/status", encoding="ascii") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        if int(fields["PPid"]) == os.getpid():
            found[int(entry)] = int(fields["VmRSS"].split()[0]) / 1024
    return found


async def semantic_ready(client: Client) -> dict[str, Any]:
    """Wait until the server's semantic search is no longer just "available"; its status."""
    with anyio.fail_after(120):
        while True:
            status = (await client.call_tool("memory_status", {})).structured_content or {}
            semantic: dict[str, Any] = status.get("semantic", {})
            if semantic.get("state") != "available":
                return semantic
            await anyio.sleep(0.1)


def response_tokens(result: CallToolResult) -> float:
    wire = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return len(json.dumps(wire, ensure_ascii=False)) / 4


async def warm_calls(
    params: StdioServerParameters, queries: list[tuple[str, str | None]]
) -> tuple[list[float], float, int, dict[str, float], dict[str, float]]:
    """(search round trips, first search, tools/list chars, largest response per tool in tokens)."""
    largest: dict[str, float] = {}

    async def timed(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[float, CallToolResult]:
        started = time.perf_counter()
        result = await client.call_tool(tool, arguments)
        elapsed = time.perf_counter() - started
        if result.is_error:
            raise RuntimeError(f"{tool}({arguments}) failed: {result.content}")
        largest[tool] = max(largest.get(tool, 0.0), response_tokens(result))
        return elapsed, result

    async with connect(params) as client:
        listing = (await client.list_tools()).model_dump(by_alias=True, mode="json", exclude_none=True)
        tools_chars = len(json.dumps({"tools": listing["tools"]}))
        [(first_pid, started_rss)] = servers_rss_mb().items()
        first, _ = await timed(client, "memory_search", {"query": "deploy"})  # takes in the store
        # The model loads after the first call: time searches once it is warm (hybrid, as users get).
        print(f"  semantic search in the server: {await semantic_ready(client)}")
        ready_rss = servers_rss_mb()[first_pid]
        for text, project in queries[:20]:  # warm caches
            await timed(client, "memory_search", {"query": text, "project": project or "*"})
        samples = []
        for text, project in queries:
            elapsed, _result = await timed(client, "memory_search", {"query": text, "project": project or "*"})
            samples.append(elapsed)
        await timed(client, "memory_search", {"query": queries[0][0], "project": "*", "k": 50})
        _, page = await timed(client, "memory_list", {"project": "*", "limit": 50})
        await timed(client, "memory_status", {})
        assert page.structured_content is not None
        gets = []
        for note in page.structured_content["notes"][:20]:
            elapsed, _result = await timed(client, "memory_get", {"id": note["id"]})
            gets.append(elapsed)
        largest["(memory_get round trip p50, s)"] = p50(gets)
        searched_rss = servers_rss_mb()[first_pid]
        async with connect(params) as second:
            await second.call_tool("memory_search", {"query": "deploy"})
            print(f"  semantic search in a second server: {await semantic_ready(second)}")
            await second.call_tool("memory_search", {"query": queries[0][0]})
            second_rss = next(mb for pid, mb in servers_rss_mb().items() if pid != first_pid)
        print(
            f"  server VmRSS: {started_rss:.0f} MB answering, {ready_rss:.0f} MB semantic ready, "
            f"{searched_rss:.0f} MB after {len(samples) + 60} calls; a second server: {second_rss:.0f} MB"
        )
        memory = {"start": started_rss, "first": searched_rss - started_rss, "second": second_rss - started_rss}
    return samples, first, tools_chars, largest, memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--starts", type=int, default=7, help="cold starts (and floor runs) to take the median of")
    args = parser.parse_args(argv)

    home = the_store(args.notes)
    embed_store(home)
    queries = the_queries(args.queries)
    with tempfile.TemporaryDirectory() as scratch:
        project_dir = Path(scratch) / "quotes-api"
        (project_dir / ".anamnesis").mkdir(parents=True)
        (project_dir / ".anamnesis" / "project").write_text(PROJECT + "\n")
        params = server_params(home, project_dir)

        import_floor()  # warm the page cache and .pyc files for both
        anyio.run(cold_start, params, backend="asyncio")
        floors, bare_floors, starts = [], [], []
        for _ in range(args.starts):  # interleaved, so drift on the machine hits all alike
            floors.append(import_floor())
            bare_floors.append(import_floor(NO_EXIT))
            starts.append(anyio.run(cold_start, params, backend="asyncio"))
        samples, first, tools_chars, largest, memory = anyio.run(warm_calls, params, queries, backend="asyncio")

    print(machine_line())
    print(f"store: {home} ({args.notes} notes); {len(samples)} searches")
    table = Table(f"MCP server (stdio, {args.notes} notes)")
    floor = p50(floors)
    table.add("cold start: spawn → tools/list (p50)", p50(starts), floor, floor + COLD_START_MARGIN)
    table.add("  floor: import mcp.server.mcpserver (p50)", floor, None, None)
    table.add("  same import, without interpreter exit", p50(bare_floors), None, None)
    table.add("first search after start", first, None, None)
    get_p50 = largest.pop("(memory_get round trip p50, s)")
    target = SEARCH_P50_TARGETS.get(args.notes)
    table.add("memory_search round trip p50 (floor: memory_get)", p50(samples), get_p50, target)
    table.add("memory_search round trip p95", p95(samples), None, None)
    table.add_text(
        "added VmRSS, first server (loads and lends the model)",
        f"{memory['first']:.0f} MB",
        floor=f"{memory['start']:.0f} MB answering",
        target="one model copy per machine",
        verdict="ok",
    )
    verdict = "ok" if memory["second"] <= MEMORY_TARGET_MB else "MISS"
    table.misses += verdict == "MISS"
    table.add_text(
        "added VmRSS, second server (borrows it)",
        f"{memory['second']:.0f} MB",
        floor=f"{memory['start']:.0f} MB answering",
        target=f"≤ {MEMORY_TARGET_MB} MB",
        verdict=verdict,
    )
    budget_tokens = TOOLS_LIST_BUDGET_CHARS // 4
    verdict = "ok" if tools_chars <= TOOLS_LIST_BUDGET_CHARS else "MISS"
    table.misses += verdict == "MISS"
    table.add_text(
        "tools/list size",
        f"{tools_chars} chars = {tools_chars / 4:.0f} tokens",
        target=f"≤ {budget_tokens} tokens",
        verdict=verdict,
    )
    for tool, tokens in sorted(largest.items()):
        verdict = "ok" if tokens <= RESPONSE_TOKENS_TARGET else "MISS"
        table.misses += verdict == "MISS"
        table.add_text(
            f"largest {tool} response",
            f"{tokens:.0f} tokens",
            target=f"≤ {RESPONSE_TOKENS_TARGET} tokens",
            verdict=verdict,
        )
    table.print()
    return 1 if table.misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
