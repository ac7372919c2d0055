"""Semantic recall costs at 10k notes: embedding rate, hybrid search latency, resident memory.

    python bench/bench_recall.py                 # 10k (bench/generate.py's cached store)
    python bench/bench_recall.py --notes 1000
    python bench/bench_recall.py --embed 0       # re-embed the whole store (10k: minutes)
    python bench/bench_recall.py --notes 100000 --embed 200 --synthetic-vectors

- embedding: the vectors of the `--embed` newest notes are dropped and made again by
  `Memory.embed_pending`, as the service or `reindex` does it (the static table distilled
  first when the index has none); notes/s, wall and CPU, next to the floor: the same texts
  straight into the ONNX session, as many at once as the embedder runs (tokenising and
  building the inputs untimed);
- `--synthetic-vectors`: notes without a vector get a random unit one first (stated in the
  output), so search latency at 100k can be measured without embedding 100k notes (the
  `--embed` sample is still embedded for real);
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import anyio  # noqa: E402
from common import Table, machine_line, p50, p95  # noqa: E402
from generate import ensure_store, make_queries  # noqa: E402

from anamnesis.config import Config, load_config  # noqa: E402
from anamnesis.index import SearchIndex  # noqa: E402
from anamnesis.memory import open_memory  # noqa: E402
from anamnesis.queries import run_sync, search_plan  # noqa: E402
from anamnesis.search import SearchFilters  # noqa: E402
from anamnesis.static_recall import static_search_plan  # noqa: E402
from anamnesis.store import NoteStore  # noqa: E402

SEARCH_P50_TARGETS = {10_000: 0.015, 100_000: 0.060}
EMBED_RATE_TARGET = 150.0
HOOK_RERANK_TARGET = 0.030


def drop_vectors(index_path: Path, count: int) -> None:
    """Forget the vectors of the `count` newest notes (all of them when 0)."""
    connection = sqlite3.connect(index_path)
    limit = count if count > 0 else -1
    with connection:
        connection.execute(
            "DELETE FROM note_vectors WHERE note_pk IN (SELECT pk FROM notes ORDER BY updated_at DESC LIMIT ?)",
            (limit,),
        )
    connection.close()


def fill_synthetic(index_path: Path) -> int:
    """Random unit vectors (dense and static) for every note without one; how many."""
    import numpy as np

    connection = sqlite3.connect(index_path)
    pending = [
        row[0]
        for row in connection.execute(
            "SELECT pk FROM notes n WHERE NOT EXISTS (SELECT 1 FROM note_vectors v WHERE v.note_pk = n.pk)"
        )
    ]
    rng = np.random.default_rng(1)
    rows = []
    for pk in pending:
        dense, static = rng.standard_normal((2, 384)).astype(np.float32)
        rows.append(
            (
                pk,
                (dense / np.linalg.norm(dense)).astype(np.float16).tobytes(),
                (static / np.linalg.norm(static)).astype(np.float16).tobytes(),
                pk,
            )
        )
    with connection:
        connection.executemany(
            "INSERT INTO note_vectors(note_pk, hash, dense, static) SELECT ?, hash, ?, ? FROM notes WHERE pk = ?", rows
        )
    connection.close()
    return len(pending)


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def pending_texts(config: Config) -> tuple[list[str], bool]:
    """The texts `embed_pending` is about to embed, and whether the index has a static table:
    read on a second connection to the index, behind `Memory` (a benchmark's look)."""
    index = await SearchIndex.open(config.layout.index_path, NoteStore(config.layout))
    try:
        pending = await index.embedding_texts(await index.pending_embeddings(with_static=True))
        return [text for _, _, text in pending], bool(await index.static_pieces())
    finally:
        await index.aclose()


async def main(n: int, count: int, sample: int, synthetic: bool) -> int:
    print(f"bench_recall · {n} notes\n{machine_line()}")
    home = await ensure_store(n)
    config = load_config(home, {"ANAMNESIS_MACHINE_ID": "bench"})
    table = Table(f"semantic recall, {n} notes")
    queries = make_queries(count)
    async with open_memory(config) as memory:
        await memory.ensure_fresh()
        if synthetic:
            filled = fill_synthetic(config.layout.index_path)
            print(f"  synthetic vectors for {filled} notes without one (search latency only)")
        drop_vectors(config.layout.index_path, sample)
        before = rss_mb()
        started = time.perf_counter()
        assert await memory.load_model() is None, memory.semantic
        load_seconds = time.perf_counter() - started
        loaded = rss_mb()
        assert memory.semantic is not None
        embedder = memory.semantic.embedder
        assert embedder is not None
        texts, has_static = await pending_texts(config)
        if not has_static:
            print("  this index has no static table yet: the embedding below includes distilling it (once)")
        started, cpu = time.perf_counter(), time.process_time()
        stored = await memory.embed_pending()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        embedded = rss_mb()
        # The floor: the same texts, tokenised beforehand, straight into session.run, as many
        # at once as the embedder runs.
        pieces = embedder.piece_ids(texts)
        feeds = [embedder.feeds(sequence) for sequence in pieces]
        started, raw_cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(embedder.workers) as pool:
            list(pool.map(embedder.run, feeds))
        raw, raw_cpu = time.perf_counter() - started, time.process_time() - raw_cpu
        status = await memory.recall_status()
        tokens = sum(len(p) for p in pieces) / max(1, len(pieces))
        print(f"  model load {load_seconds:.2f} s; embedded {stored} notes ({tokens:.0f} tokens each on average)")
        if stored:
            print(
                f"  embed_pending: {seconds:.1f} s = {stored / seconds:.0f} notes/s ({stored / cpu:.0f}/CPU-s); "
                f"raw session.run: {raw:.1f} s = {len(texts) / raw:.0f} notes/s ({len(texts) / raw_cpu:.0f}/CPU-s); "
                f"10k notes at this rate: {10_000 / stored * seconds:.0f} s"
            )
        print(f"  vectors: {status['embedded']}/{status['notes']}")
        print(
            f"  resident memory: {before:.0f} MB before the model, +{loaded - before:.0f} MB loaded, "
            f"+{embedded - before:.0f} MB after embedding"
        )
        if stored:
            table.add(
                "embedding: seconds per 1k notes",
                seconds / stored * 1000,
                raw / len(texts) * 1000,
                1000 / EMBED_RATE_TARGET,
            )

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
                    await memory.run(search_plan(text, filters, 8))
                    lexical.append(time.perf_counter() - t)
            table.add(f"hybrid search p50, {label}", p50(hybrid), p50(lexical), SEARCH_P50_TARGETS.get(n))
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
    parser.add_argument("--embed", type=int, default=500, help="notes to embed again (0: all)")
    parser.add_argument("--synthetic-vectors", action="store_true", help="random vectors for notes without one")
    args = parser.parse_args()
    return anyio.run(main, args.notes, args.queries, args.embed, args.synthetic_vectors, backend="asyncio")


if __name__ == "__main__":
    raise SystemExit(cli())
