"""Index build and refresh speed, next to the floor of touching the same files.

    python bench/bench_index.py                  # 10k notes (targets: rebuild ≤ 5 s, refresh ≤ 0.3 s)
    python bench/bench_index.py --notes 100000   # 100k (target: rebuild ≤ 60 s; takes a few minutes)

Measures, on a cached generated store (bench/generate.py):

- full rebuild: `Memory.reindex(full=True)` (drop everything, read and parse every note, insert);
  floor: `read_bytes()` of every note file (warm page cache, as for the rebuild);
- full rebuild into a fresh database file (no drop), once;
- refresh when nothing changed: `SearchIndex.refresh()` (stat every file, compare with the index);
  floor: one `os.scandir` + `stat` walk over the same directories;
- refresh after one note changed (information, no target).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import anyio  # noqa: E402
from common import Table, machine_line, p50, raw_fts_build  # noqa: E402
from generate import ensure_store, note_paths  # noqa: E402

from anamnesis.config import Layout, load_config  # noqa: E402
from anamnesis.index import SearchIndex  # noqa: E402
from anamnesis.memory import open_memory  # noqa: E402
from anamnesis.store import NoteStore  # noqa: E402

TARGET_REBUILD = {10_000: 5.0, 100_000: 60.0}
TARGET_REFRESH = {10_000: 0.3}


def read_all(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        total += len(path.read_bytes())
    return total


def stat_walk(home: Path) -> int:
    count = 0
    for root in Layout(home).scope_roots().values():
        for note_type in ("procedural", "semantic", "episodic"):
            with os.scandir(root / note_type) as entries:
                for entry in entries:
                    entry.stat(follow_symlinks=False)
                    count += 1
    return count


def timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


async def main(n: int, repeat: int, refresh_repeat: int) -> int:
    home = await ensure_store(n)
    paths = note_paths(home)
    notes = sum(1 for p in paths if p.name != "README.md")
    print(f"bench_index · {notes} notes at {home}\n{machine_line()}")
    read_all(paths)  # warm the page cache for floor and rebuild alike

    table = Table(f"index, {notes} notes")
    floor_reads = [timed(read_all, paths)[0] for _ in range(max(3, repeat))]
    config = load_config(home, {})
    async with open_memory(config) as memory:
        rebuilds, fts_floors = [], []
        for i in range(repeat):  # the floor interleaved, so drift on the machine hits both alike
            fts_floors.append(raw_fts_build(paths))
            start = time.perf_counter()
            report = await memory.reindex(full=True)
            rebuilds.append(time.perf_counter() - start)
            if report.added != notes or report.problems:
                print(f"  !! rebuild {i}: added {report.added} of {notes}, {len(report.problems)} problems")
            print(f"  rebuild {i + 1}/{repeat}: {rebuilds[-1]:.2f} s", flush=True)
        table.add(
            f"full rebuild, Memory.reindex(full=True), p50 of {repeat}",
            p50(rebuilds),
            p50(floor_reads),
            TARGET_REBUILD.get(n),
        )
        table.add(f"  (best of {repeat})", min(rebuilds), min(floor_reads), None)
        fts_floor = p50(fts_floors)
        target = 3 * fts_floor if n <= 10_000 else TARGET_REBUILD.get(n)
        table.add("full rebuild against reading + a raw FTS5 build (≤ 3× at 10k)", p50(rebuilds), fts_floor, target)

        # Refresh with nothing changed: what every search pays in a new process.
        index = await SearchIndex.open(config.layout.index_path, NoteStore(config.layout))
        await index.refresh()
        refreshes, walks = [], []
        for _ in range(refresh_repeat):
            walks.append(timed(stat_walk, home)[0])
            start = time.perf_counter()
            report = await index.refresh()
            refreshes.append(time.perf_counter() - start)
            assert not report.changed, report
        table.add(
            f"refresh, nothing changed, p50 of {refresh_repeat}",
            p50(refreshes),
            p50(walks),
            TARGET_REFRESH.get(n),
        )

        # One note edited by hand (content changed), then restored.
        victim = next(p for p in paths if p.name != "README.md")
        original = victim.read_bytes()
        one_changed = []
        try:
            for i in range(5):
                victim.write_bytes(original + f"\nedited {i}\n".encode())
                start = time.perf_counter()
                report = await index.refresh()
                one_changed.append(time.perf_counter() - start)
                assert report.updated == 1, report
        finally:
            victim.write_bytes(original)
            await index.refresh()
            await index.aclose()
        table.add("refresh, one note edited, p50 of 5", p50(one_changed), p50(walks), None)

    # Full build into a brand-new database file (no drop of an old one).
    fresh_db = home.parent / "fresh-index.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{fresh_db}{suffix}").unlink(missing_ok=True)
    start = time.perf_counter()
    index = await SearchIndex.open(fresh_db, NoteStore(Layout(home)))
    try:
        report = await index.refresh()
    finally:
        await index.aclose()
    fresh = time.perf_counter() - start
    for suffix in ("", "-wal", "-shm"):
        Path(f"{fresh_db}{suffix}").unlink(missing_ok=True)
    table.add("full build into a fresh db file, once", fresh, p50(floor_reads), TARGET_REBUILD.get(n))

    table.print()
    print("\nfloors: rebuild rows = read_bytes() of every note file; refresh rows = one os.scandir+stat walk.")
    return 1 if table.misses else 0


def cli() -> int:
    parser = argparse.ArgumentParser(description="Index rebuild and refresh benchmark")
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=None, help="full rebuilds (default 3; 1 above 50k)")
    parser.add_argument("--refresh-repeat", type=int, default=20)
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.notes <= 50_000 else 1)
    return anyio.run(main, args.notes, repeat, args.refresh_repeat, backend="asyncio")


if __name__ == "__main__":
    raise SystemExit(cli())
