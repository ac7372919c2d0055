"""Choosing the fusion: lexical vs hybrid variants on the shipped eval set and BEIR SciFact.

    python bench/bench_fusion.py            # both sets, the variant grid, 5-fold cross-validation
    python bench/bench_fusion.py --quick    # the default fusion only

Each corpus is indexed once into bench/out/ and embedded fully (the embedding rate is printed).
Then every variant of `anamnesis.hybrid.Fusion` in the grid is scored: eval set recall@1/3/5/8
and MRR, SciFact nDCG@10 and recall@100. Cross-validation: the queries are split into 5 folds;
for each fold the variant best on the other four is scored on it, and the held-out scores are
averaged (so the chosen weight is not fitted to the queries it is judged on).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import anyio  # noqa: E402
from bench_scifact import DATA, ensure_home, load_jsonl, load_qrels, ndcg_at, recall_at  # noqa: E402
from common import machine_line  # noqa: E402

from anamnesis.config import Layout  # noqa: E402
from anamnesis.evaluation import load_eval_set  # noqa: E402
from anamnesis.hybrid import Fusion, Semantic, hybrid_search  # noqa: E402
from anamnesis.index import SearchIndex  # noqa: E402
from anamnesis.search import SearchFilters  # noqa: E402
from anamnesis.store import NoteStore  # noqa: E402
from anamnesis.vectorizer import embed_pending  # noqa: E402

EVALSET = ROOT / "evalset"
OUT = Path(__file__).resolve().parent / "out"
FOLDS = 5

GRID: list[tuple[str, Fusion | None]] = [
    ("lexical only", None),
    ("dense only (weight 0)", Fusion(lexical_weight=0.0)),
    ("minmax 0.3/0.7", Fusion(lexical_weight=0.3)),
    ("minmax 0.4/0.6", Fusion(lexical_weight=0.4)),
    ("minmax 0.5/0.5", Fusion(lexical_weight=0.5)),
    ("minmax 0.6/0.4", Fusion(lexical_weight=0.6)),
    ("minmax 0.7/0.3", Fusion(lexical_weight=0.7)),
    ("minmax 0.5/0.5, common words kept", Fusion(lexical_weight=0.5, common_share=1.0)),
    ("minmax 0.5/0.5, strict bonus 0.1", Fusion(lexical_weight=0.5, strict_bonus=0.1)),
    ("minmax 0.5/0.5, depth 50", Fusion(lexical_weight=0.5, depth=50)),
    ("rrf k=60", Fusion(method="rrf", rrf_k=60)),
    ("rrf k=5", Fusion(method="rrf", rrf_k=5)),
]


async def prepared(index: SearchIndex, name: str) -> Semantic:
    await index.refresh()
    semantic = Semantic()
    await semantic.load()
    if semantic.embedder is None:
        raise SystemExit(f"model unavailable: {semantic.problem}")
    started = time.perf_counter()
    stored = await embed_pending(index, semantic.embedder, static=False)  # the dense side is what is compared
    if stored:
        seconds = time.perf_counter() - started
        print(f"  {name}: embedded {stored} notes in {seconds:.1f} s ({stored / seconds:.0f} notes/s)")
    return semantic


PerQuery = Callable[[list[str]], float]


async def ranked_lists(
    index: SearchIndex, semantic: Semantic, queries: Sequence[str], fusion: Fusion | None, limit: int
) -> list[list[str]]:
    out = []
    for text in queries:
        hits = await hybrid_search(
            index,
            text,
            SearchFilters(),
            limit,
            semantic if fusion else None,
            max_limit=limit,
            fusion=fusion or Fusion(),
        )
        out.append([hit.id for hit in hits])
    return out


def cross_validated(per_variant: dict[str, list[float]]) -> tuple[float, list[str]]:
    """Mean held-out score when each fold uses the variant best on the other folds."""
    names = list(per_variant)
    n = len(next(iter(per_variant.values())))
    order = list(range(n))
    random.Random(12).shuffle(order)
    folds = [order[i::FOLDS] for i in range(FOLDS)]
    held, chosen = [], []
    for fold in folds:
        train = [i for i in order if i not in set(fold)]
        best = max(names, key=lambda v: sum(per_variant[v][i] for i in train))
        chosen.append(best)
        held.extend(per_variant[best][i] for i in fold)
    return sum(held) / n, chosen


async def eval_set(grid: list[tuple[str, Fusion | None]]) -> None:
    cases = load_eval_set(EVALSET / "queries.jsonl")
    scratch = OUT / "evalset-index"
    scratch.mkdir(parents=True, exist_ok=True)
    store = NoteStore(Layout(scratch), roots={"portable": EVALSET / "notes"})
    index = await SearchIndex.open(scratch / "index.db", store)
    try:
        semantic = await prepared(index, "eval set")
        print(f"\nshipped eval set ({len(cases)} queries): recall@1/3/5/8, MRR")
        per_variant: dict[str, list[float]] = {}
        for name, fusion in grid:
            lists = await ranked_lists(index, semantic, [c.query for c in cases], fusion, 8)
            at5, row = [], {1: 0.0, 3: 0.0, 5: 0.0, 8: 0.0}
            mrr = 0.0
            for case, ranked in zip(cases, lists, strict=True):
                relevant = set(case.relevant_ids)
                for k in row:
                    row[k] += len(relevant & set(ranked[:k])) / len(relevant)
                first = next((r for r, i in enumerate(ranked, 1) if i in relevant), None)
                mrr += 1 / first if first else 0.0
                at5.append(len(relevant & set(ranked[:5])) / len(relevant))
            per_variant[name] = at5
            n = len(cases)
            figures = " ".join(f"{row[k] / n:.3f}" for k in row)
            print(f"  {name:<36} {figures}   MRR {mrr / n:.3f}")
        score, chosen = cross_validated(per_variant)
        print(f"  5-fold CV recall@5 {score:.3f} (variant chosen per fold: {', '.join(chosen)})")
    finally:
        await index.aclose()


async def scifact(grid: list[tuple[str, Fusion | None]]) -> None:
    home = await ensure_home(DATA)
    layout = Layout(home)
    qrels = load_qrels(DATA / "qrels" / "test.tsv")
    texts = {q["_id"]: q["text"] for q in load_jsonl(DATA / "queries.jsonl")}
    qids = list(qrels)
    index = await SearchIndex.open(layout.index_path, NoteStore(layout))
    try:
        semantic = await prepared(index, "SciFact")
        print(f"\nSciFact test ({len(qids)} queries): nDCG@10, recall@100")
        per_variant: dict[str, list[float]] = {}
        for name, fusion in grid:
            started = time.perf_counter()
            lists = await ranked_lists(index, semantic, [texts[q] for q in qids], fusion, 100)
            ms = (time.perf_counter() - started) / len(qids) * 1000
            ndcg = [ndcg_at(r, qrels[q]) for q, r in zip(qids, lists, strict=True)]
            rec = [recall_at(r, qrels[q]) for q, r in zip(qids, lists, strict=True)]
            per_variant[name] = ndcg
            print(
                f"  {name:<36} nDCG@10 {sum(ndcg) / len(qids):.4f}  recall@100 {sum(rec) / len(qids):.4f}"
                f"  ({ms:.1f} ms/query)"
            )
        score, chosen = cross_validated(per_variant)
        print(f"  5-fold CV nDCG@10 {score:.4f} (variant chosen per fold: {', '.join(chosen)})")
    finally:
        await index.aclose()


async def main(quick: bool, which: str) -> None:
    print(f"bench_fusion\n{machine_line()}")
    grid = [g for g in GRID if g[1] is None or g[0] == "minmax 0.5/0.5"] if quick else GRID
    if which in ("all", "eval"):
        await eval_set(grid)
    if which in ("all", "scifact"):
        await scifact(grid)


def cli() -> int:
    parser = argparse.ArgumentParser(description="lexical vs hybrid fusion variants")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("all", "eval", "scifact"), default="all")
    args = parser.parse_args()
    anyio.run(main, args.quick, args.only, backend="asyncio")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
