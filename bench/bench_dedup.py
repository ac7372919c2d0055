"""Dedup speed on a generated store, next to the floor of reading the same notes.

    python bench/bench_dedup.py                  # 10k notes (target: a dedup plan ≤ 5 s)
    python bench/bench_dedup.py --notes 100000   # 100k (information)

Measures, on a copy of a cached generated store (bench/generate.py) with 5% planted
near-duplicates (a copy of a random note with one word changed):

- `plan_dedup(memory)`: load the notes from the index, then `find_duplicates` (p50 of 3);
  floor: `SELECT title, body FROM notes` of the same index;
- `find_duplicates` alone, and on the worst case: every note in one project and type;
- how many planted near-duplicates of durable notes it finds (session summaries are grouped only
  when identical, by design, so their planted copies are not counted);
- `apply_dedup` of the whole plan: one commit however many groups.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import anyio  # noqa: E402
from common import Table, machine_line, p50  # noqa: E402
from generate import ensure_store  # noqa: E402

from anamnesis.config import load_config  # noqa: E402
from anamnesis.curation.dedup import apply_dedup, candidates, find_duplicates, plan_dedup  # noqa: E402
from anamnesis.ids import new_ulid  # noqa: E402
from anamnesis.memory import Memory, open_memory  # noqa: E402

TARGET_PLAN = {10_000: 5.0}
PLANTED_SHARE = 0.05


def read_bodies(index_path: Path) -> int:
    """The floor: every title and body straight from SQLite, as plain reads."""
    db = sqlite3.connect(index_path)
    try:
        return len(db.execute("SELECT title, body FROM notes").fetchall())
    finally:
        db.close()


async def plant(memory: Memory, share: float, seed: int = 7) -> set[str]:
    """Copies of random notes with one word changed, saved in one commit; their ids."""
    notes = await candidates(memory)
    chosen = random.Random(seed).sample(notes, int(len(notes) * share))
    copies = []
    for note in chosen:
        original = await memory.get(note.id)
        words = original.body.split(" ")
        words[len(words) // 2] = "zzplanted"
        copies.append(original.with_changes(id=new_ulid(), body=" ".join(words), supersedes=()))
    await memory.save_all(copies, "bench: planted near-duplicates")
    return {c.id for c in copies if c.type != "episodic"}


async def run(n: int) -> int:
    source = await ensure_store(n)
    table = Table(f"dedup, {n:,} notes + {PLANTED_SHARE:.0%} planted near-duplicates · {machine_line()}")
    with tempfile.TemporaryDirectory(prefix="anamnesis-bench-dedup-") as scratch:
        home = Path(scratch) / "home"
        shutil.copytree(source, home, symlinks=True)
        config = load_config(home, {})
        async with open_memory(config) as memory:
            await memory.reindex()
            planted = await plant(memory, PLANTED_SHARE)
            await memory.ensure_fresh()
            floors, plans = [], []
            for _ in range(3):
                start = time.perf_counter()
                await anyio.to_thread.run_sync(read_bodies, config.layout.index_path)
                floors.append(time.perf_counter() - start)
                start = time.perf_counter()
                plan = await plan_dedup(memory)
                plans.append(time.perf_counter() - start)
            table.add(f"plan_dedup, {plan.checked:,} notes, p50 of 3", p50(plans), p50(floors), TARGET_PLAN.get(n))

            notes = await candidates(memory)
            start = time.perf_counter()
            find_duplicates(notes)
            table.add("find_duplicates alone", time.perf_counter() - start, None, None)
            one = [dataclasses.replace(x, project="p", type="semantic", scope="portable") for x in notes]
            start = time.perf_counter()
            find_duplicates(one)
            table.add("find_duplicates, worst case: one project and type", time.perf_counter() - start, None, None)

            found = {r.note.id for g in plan.groups for r in g.retire} | {g.keep.id for g in plan.groups}
            caught = len(planted & found)
            table.add_text(
                "planted durable near-duplicates found", f"{caught}/{len(planted)}", verdict="ok" if caught else "MISS"
            )
            table.add_text("groups / notes to retire", f"{len(plan.groups)} / {plan.retired_count}")

            start = time.perf_counter()
            await apply_dedup(memory, plan)
            table.add(f"apply_dedup, {len(plan.groups)} groups in one commit", time.perf_counter() - start, None, None)
    table.print()
    return 1 if table.misses or not caught else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", type=int, default=10_000)
    args = parser.parse_args()
    return anyio.run(run, args.notes)


if __name__ == "__main__":
    sys.exit(main())
