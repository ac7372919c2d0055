"""Semantic recall costs at 10k notes: embedding rate, hybrid search latency, resident memory.

    python bench/bench_recall.py                 # 10k (bench/generate.py's cached store)
    python bench/bench_recall.py --notes 1000

- embedding: every note of the store without a vector, in one process, as the service or
  `reindex` does it (the static table distilled first when the index has none); notes/s;
- hybrid search: `Memory.search` (model warm, vectors loaded) unfiltered and with a
  project+global filter, p50/p95 over the generated queries, next to the lexical search on the
  same index (the floor: what hybrid adds to it);
- the prompt hook's static rerank (`static_search_plan` on a plain sqlite3 connection) next to
  the lexical `search_plan` on the same connection;
- resident memory (VmRSS) of this process before the model loads, after, and after embedding.

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import anyio  # noqa: E402
from common import Table, machine_line, p50, p95  # noqa: E402
from generate import ensure_store, make_queries  # noqa: E402

from anamnesis.config import load_config  # noqa: E402
from anamnesis.memory import open_memory  # noqa: E402
from anamnesis.queries import run_sync, search, search_plan  # noqa: E402
from anamnesis.search import SearchFilters  # noqa: E402
from anamnesis.static_recall import static_search_plan  # noqa: E402

SEARCH_P50_TARGET = 0.015
EMBED_RATE_TARGET = 150.0
HOOK_RERANK_TARGET = 0.030


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def main(n: int, count: int) -> int:
    print(f"bench_recall · {n} notes\n{machine_line()}")
    home = await ensure_store(n)
    config = load_config(home, {"ANAMNESIS_MACHINE_ID": "bench"})
    table = Table(f"semantic recall, {n} notes")
    queries = make_queries(count)
    async with open_memory(config) as memory:
        await memory.ensure_fresh()
        before = rss_mb()
        started = time.perf_counter()
        assert await memory.load_model() is None, memory.semantic
        load_seconds = time.perf_counter() - started
        loaded = rss_mb()
        started = time.perf_counter()
        stored = await memory.embed_pending()
        seconds = time.perf_counter() - started
        embedded = rss_mb()
        status = await memory.recall_status()
        print(f"  model load {load_seconds:.2f} s; embedded {stored} notes in {seconds:.1f} s", end="")
        print(f" ({stored / seconds:.0f} notes/s)" if stored else " (all had vectors)")
        print(f"  vectors: {status['embedded']}/{status['notes']}")
        print(
            f"  resident memory: {before:.0f} MB before the model, +{loaded - before:.0f} MB loaded, "
            f"+{embedded - before:.0f} MB after embedding"
        )
        if stored > 500:
            table.add("embedding: seconds per 1k notes", seconds / stored * 1000, None, 1000 / EMBED_RATE_TARGET)

        for label, make_filters in (
            ("no filter", lambda project: SearchFilters()),
            ("project+global", lambda project: SearchFilters(projects=(project or "global", "global"))),
        ):
            hybrid, lexical = [], []
            for _ in range(2):
                for text, project in queries:
                    filters = make_filters(project)
                    t = time.perf_counter()
                    await memory.search(text, filters, 8)
                    hybrid.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    await search(memory.index, text, filters, 8)
                    lexical.append(time.perf_counter() - t)
            table.add(f"hybrid search p50, {label}", p50(hybrid), p50(lexical), SEARCH_P50_TARGET)
            table.add(f"hybrid search p95, {label}", p95(hybrid), p95(lexical), None)

    connection = sqlite3.connect(config.layout.index_path)
    rerank, plain = [], []
    for text, project in queries:
        filters = SearchFilters(projects=(project or "global", "global"))
        t = time.perf_counter()
        run_sync(connection, static_search_plan(text, filters, 8))
        rerank.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_sync(connection, search_plan(text, filters, 8))
        plain.append(time.perf_counter() - t)
    connection.close()
    table.add("hook static rerank of the lexical top 100, p50", p50(rerank), p50(plain), HOOK_RERANK_TARGET)
    table.print()
    return 1 if table.misses else 0


def cli() -> int:
    parser = argparse.ArgumentParser(description="embedding rate, hybrid latency, memory")
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    return anyio.run(main, args.notes, args.queries, backend="asyncio")


if __name__ == "__main__":
    raise SystemExit(cli())
