"""Search quality on BEIR SciFact (test split): nDCG@10 and recall@100 next to plain FTS5.

    python bench/bench_scifact.py                 # ours, the plain-FTS5 floor, and the variant grid
    python bench/bench_scifact.py --no-variants   # just ours and the floor

The data is /work/shared/data/scifact (or --data DIR): 5,183 abstracts, 300 test claims with
graded judgments in qrels/test.tsv (README.md there). Each abstract becomes one note (title = the
doc title, body = the abstract, type semantic; the note id is the corpus id), written as files into
a cached home under bench/out/ and indexed once. A title longer than the note format allows
(200 characters; 41 of them) keeps its first words in the title and the rest opens the body, so
every word is still indexed exactly once.

- ours: `anamnesis.queries.search(index, claim, limit=100, max_limit=100)`;
- floor: plain FTS5 on the same database: the claim's \\w+ tokens each double-quoted, joined with
  OR, `ORDER BY bm25(notes_fts)` (equal column weights), LIMIT 100, on a plain aiosqlite connection;
- variants: our query pipeline re-played in SQL with one knob changed at a time (stopwords,
  strict-first pass, title/body/tags weights), to show what each costs or gains.

Metrics are BEIR's (pytrec_eval): nDCG@10 with linear gain (the qrels grade) and log2 discount,
recall@100 = judged-relevant docs in the top 100 / judged-relevant docs, both averaged over
every test query (a query with no result scores 0).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import aiosqlite  # noqa: E402
import anyio  # noqa: E402
from common import machine_line  # noqa: E402

from anamnesis.config import Layout, load_config  # noqa: E402
from anamnesis.home import init_home  # noqa: E402
from anamnesis.index import SearchIndex  # noqa: E402
from anamnesis.notes import MAX_TITLE_CHARS, Note, render_note  # noqa: E402
from anamnesis.queries import WEIGHT_BODY, WEIGHT_TAGS, WEIGHT_TITLE, search  # noqa: E402
from anamnesis.search import query_terms  # noqa: E402
from anamnesis.store import NoteStore  # noqa: E402

DATA = Path("/work/shared/data/scifact")
OUT = Path(__file__).resolve().parent / "out" / "scifact-v1"
TARGET_NDCG = 0.685
PUBLISHED = (
    ("BM25, BEIR paper", 0.665, None),
    ("BM25, Anserini flat", 0.679, 0.9253),
    ("plain SQLite FTS5 porter, title+text (README)", 0.685, 0.9253),
)
_WORD = re.compile(r"\w+", re.UNICODE)


# -- data ---------------------------------------------------------------------------------------


def load_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            parts = line.rstrip("\n").split("\t")
            if number == 0 and parts[0] == "query-id":
                continue
            qrels[parts[0]][parts[1]] = int(parts[2])
    return dict(qrels)


def split_title(title: str) -> tuple[str, str]:
    """(title that fits the note format, overflow for the body); cut at a word boundary."""
    title = " ".join(title.split())
    if len(title) <= MAX_TITLE_CHARS:
        return title, ""
    cut = title.rfind(" ", 0, MAX_TITLE_CHARS + 1)
    cut = cut if cut > 0 else MAX_TITLE_CHARS
    return title[:cut].rstrip(), title[cut:].strip()


async def ensure_home(data: Path, rebuild: bool = False) -> Path:
    """A home with one note per SciFact abstract, written once and cached."""
    home = OUT / "home"
    marker = OUT / "manifest.json"
    if marker.is_file() and not rebuild:
        return home
    if OUT.exists():
        shutil.rmtree(OUT)
    started = time.perf_counter()
    layout = load_config(home, {"ANAMNESIS_MACHINE_ID": "bench"}).layout
    await init_home(layout, "bench")
    directory = layout.memory_dir / "semantic"
    overflowed = 0
    docs = load_jsonl(data / "corpus.jsonl")
    for doc in docs:
        title, overflow = split_title(doc["title"])
        overflowed += bool(overflow)
        body = f"{overflow}\n\n{doc['text']}" if overflow else doc["text"]
        note = Note(
            id=doc["_id"],
            type="semantic",
            title=title,
            body=body,
            project="scifact",
            machine_id="bench",
            prov_source="import",
            created_at="2026-01-01T00:00:00Z",
            updated_at="2026-01-01T00:00:00Z",
        )
        (directory / f"{note.id}.md").write_text(render_note(note), encoding="utf-8")
    marker.write_text(json.dumps({"notes": len(docs), "long_titles_split": overflowed}) + "\n")
    print(f"  wrote {len(docs)} notes ({overflowed} long titles split) in {time.perf_counter() - started:.1f} s")
    return home


# -- metrics ------------------------------------------------------------------------------------


def ndcg_at(ranked: list[str], judged: dict[str, int], k: int = 10) -> float:
    dcg = sum(judged.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], judged: dict[str, int], k: int = 100) -> float:
    relevant = {doc for doc, g in judged.items() if g > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


@dataclass(frozen=True, slots=True)
class Score:
    ndcg10: float
    recall100: float

    @classmethod
    def of(cls, runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> Score:
        n = len(qrels)
        return cls(
            sum(ndcg_at(runs.get(q, []), j) for q, j in qrels.items()) / n,
            sum(recall_at(runs.get(q, []), j) for q, j in qrels.items()) / n,
        )


# -- runs ---------------------------------------------------------------------------------------


def quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


async def run_ours(index: SearchIndex, queries: dict[str, str]) -> tuple[dict[str, list[str]], dict[str, int]]:
    runs, kinds = {}, {"strict hits": 0, "queries with a strict hit": 0}
    for qid, text in queries.items():
        hits = await search(index, text, limit=100, max_limit=100)
        runs[qid] = [hit.id for hit in hits]
        strict = sum(hit.match == "strict" for hit in hits)
        kinds["strict hits"] += strict
        kinds["queries with a strict hit"] += bool(strict)
    return runs, kinds


class Replay:
    """`search()`'s pipeline in raw SQL with its knobs exposed (for the variant grid)."""

    def __init__(self, db: aiosqlite.Connection, pk_to_id: dict[int, str]) -> None:
        self.db = db
        self.pk_to_id = pk_to_id

    async def match(self, expression: str, weights: tuple[float, float, float], limit: int) -> list[str]:
        sql = (
            "SELECT rowid FROM notes_fts WHERE notes_fts MATCH ? "
            f"ORDER BY bm25(notes_fts, {weights[0]}, {weights[1]}, {weights[2]}) LIMIT ?"
        )
        rows = await self.db.execute_fetchall(sql, (expression, limit))
        return [self.pk_to_id[row[0]] for row in rows]

    async def run(
        self, text: str, *, stopwords: bool, strict_first: bool, weights: tuple[float, float, float], limit: int = 100
    ) -> list[str]:
        terms = list(query_terms(text)) if stopwords else list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
        if not terms:
            return []
        quoted = [quote(t) for t in terms]
        ranked: list[str] = []
        if strict_first:
            ranked = await self.match(" AND ".join(quoted), weights, limit)
            if len(ranked) >= limit or len(terms) == 1:
                return ranked[:limit]
        seen = set(ranked)
        relaxed = await self.match(" OR ".join(quoted), weights, limit + len(ranked))
        ranked.extend(doc for doc in relaxed if doc not in seen)
        return ranked[:limit]


async def run_floor(replay: Replay, queries: dict[str, str]) -> dict[str, list[str]]:
    """Plain FTS5: every \\w+ token double-quoted, OR, `ORDER BY bm25(notes_fts)` (weights 1)."""
    runs = {}
    sql = "SELECT rowid FROM notes_fts WHERE notes_fts MATCH ? ORDER BY bm25(notes_fts) LIMIT 100"
    for qid, text in queries.items():
        tokens = _WORD.findall(text)
        if not tokens:
            runs[qid] = []
            continue
        rows = await replay.db.execute_fetchall(sql, (" OR ".join(quote(t) for t in tokens),))
        runs[qid] = [replay.pk_to_id[row[0]] for row in rows]
    return runs


# -- main ---------------------------------------------------------------------------------------


def line(name: str, score: Score, floor: Score | None = None) -> str:
    delta = f"  ({score.ndcg10 - floor.ndcg10:+.4f} vs floor)" if floor else ""
    return f"  {name:<58} nDCG@10 {score.ndcg10:.4f}   recall@100 {score.recall100:.4f}{delta}"


async def main(data: Path, variants: bool, rebuild: bool) -> int:
    print(f"bench_scifact · BEIR SciFact test · {data}\n{machine_line()}")
    home = await ensure_home(data, rebuild)
    layout = Layout(home)
    qrels = load_qrels(data / "qrels" / "test.tsv")
    all_queries = {q["_id"]: q["text"] for q in load_jsonl(data / "queries.jsonl")}
    queries = {qid: all_queries[qid] for qid in qrels}
    print(f"  {len(queries)} test queries, {sum(len(j) for j in qrels.values())} judgments")

    index = await SearchIndex.open(layout.index_path, NoteStore(layout))
    raw = await aiosqlite.connect(layout.index_path)
    try:
        started = time.perf_counter()
        report = await index.refresh()
        if report.changed:
            print(f"  indexed {report.added} notes in {time.perf_counter() - started:.1f} s")
        if report.problems:
            print(f"  !! {len(report.problems)} notes not indexed, e.g. {report.problems[0]}")
        pk_to_id = {row[0]: row[1] for row in await raw.execute_fetchall("SELECT pk, id FROM notes")}
        replay = Replay(raw, pk_to_id)

        started = time.perf_counter()
        ours_runs, kinds = await run_ours(index, queries)
        ours_seconds = time.perf_counter() - started
        ours = Score.of(ours_runs, qrels)
        floor = Score.of(await run_floor(replay, queries), qrels)

        print("\nSciFact test (300 queries)")
        for name, ndcg, recall in PUBLISHED:
            rec = f"{recall:.4f}" if recall is not None else "  -   "
            print(f"  {'published: ' + name:<58} nDCG@10 {ndcg:.4f}   recall@100 {rec}")
        print(line("floor: plain FTS5, OR of \\w+ tokens, bm25 weights 1/1/1", floor))
        print(line(f"ours: search(limit=100), weights {WEIGHT_TITLE:g}/{WEIGHT_BODY:g}/{WEIGHT_TAGS:g}", ours, floor))
        verdict = "ok" if ours.ndcg10 >= TARGET_NDCG else "MISS"
        print(f"  target: ours nDCG@10 ≥ {TARGET_NDCG}: {verdict}")
        print(
            f"  ({ours_seconds / len(queries) * 1000:.1f} ms per query at limit 100; "
            f"{kinds['queries with a strict hit']} of {len(queries)} queries had strict (AND) hits, "
            f"{kinds['strict hits']} strict hits in all)"
        )

        if variants:
            print("\nvariants: search()'s pipeline re-played in SQL, one knob at a time")
            ours_weights = (WEIGHT_TITLE, WEIGHT_BODY, WEIGHT_TAGS)
            grid = []
            for stopwords in (True, False):
                for strict_first in (True, False):
                    for title_weight in (1.0, 2.0, 3.0):
                        grid.append((stopwords, strict_first, (title_weight, WEIGHT_BODY, WEIGHT_TAGS)))
            if ours_weights not in [g[2] for g in grid]:
                grid.insert(0, (True, True, ours_weights))
            results = []
            for stopwords, strict_first, weights in grid:
                runs = {
                    qid: await replay.run(text, stopwords=stopwords, strict_first=strict_first, weights=weights)
                    for qid, text in queries.items()
                }
                score = Score.of(runs, qrels)
                name = (
                    f"stopwords {'dropped' if stopwords else 'kept':<7} · "
                    f"{'strict-first' if strict_first else 'OR only':<12} · "
                    f"weights {weights[0]:g}/{weights[1]:g}/{weights[2]:g}"
                )
                if (stopwords, strict_first, weights) == (True, True, ours_weights):
                    name += "  = ours"
                    if abs(score.ndcg10 - ours.ndcg10) > 1e-9:
                        name += f" (replay differs from search(): {ours.ndcg10:.4f})"
                results.append((score, name))
            for score, name in sorted(results, key=lambda r: -r[0].ndcg10):
                print(line(name, score, floor))
    finally:
        await raw.close()
        await index.aclose()
    return 0 if ours.ndcg10 >= TARGET_NDCG else 1


def cli() -> int:
    parser = argparse.ArgumentParser(description="BEIR SciFact nDCG@10 / recall@100")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--rebuild", action="store_true", help="write the notes and index again")
    args = parser.parse_args()
    return anyio.run(main, args.data, not args.no_variants, args.rebuild, backend="asyncio")


if __name__ == "__main__":
    raise SystemExit(cli())
