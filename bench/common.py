"""Small helpers shared by the benchmark scripts: timing summaries and the result table."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def p95(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[94]


def machine_line() -> str:
    import aiosqlite

    return (
        f"{time.strftime('%Y-%m-%d')} · {platform.system()} {platform.machine()} · "
        f"{os.cpu_count()} cores · Python {platform.python_version()} · SQLite {sqlite3.sqlite_version} · "
        f"aiosqlite {aiosqlite.__version__}"
    )


def fmt_seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 0.001:
        return f"{value * 1000:.1f} ms"
    return f"{value * 1e6:.0f} µs"


@dataclass(slots=True)
class Table:
    """Rows of `measure | value | floor | ×floor | target | verdict`, printed aligned."""

    title: str
    rows: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    misses: int = 0

    def add(self, name: str, value: float, floor: float | None, target: float | None) -> None:
        ratio = f"{value / floor:.1f}×" if floor else "-"
        verdict = "-"
        if target is not None:
            ok = value <= target
            verdict = "ok" if ok else "MISS"
            self.misses += 0 if ok else 1
        self.rows.append(
            (
                name,
                fmt_seconds(value),
                fmt_seconds(floor) if floor is not None else "-",
                ratio,
                f"≤ {fmt_seconds(target)}" if target is not None else "-",
                verdict,
            )
        )

    def add_text(
        self, name: str, value: str, floor: str = "-", ratio: str = "-", target: str = "-", verdict: str = "-"
    ) -> None:
        self.rows.append((name, value, floor, ratio, target, verdict))

    def print(self) -> None:
        header = ("measure", "value", "floor", "×floor", "target", "")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(6)]
        print(f"\n{self.title}")
        print("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in self.rows:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        sys.stdout.flush()


def raw_fts_build(paths: list[object]) -> float:
    """Seconds to read every note file and build a plain FTS5 table over them in memory: the
    least a full rebuild can cost (no parsing, no metadata, no per-note checks)."""
    start = time.perf_counter()
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(head, body, tokenize='porter unicode61')")
    rows = []
    for path in paths:
        with open(str(path), encoding="utf-8") as handle:
            head, _, body = handle.read().partition("\n---\n")
        rows.append((head, body))
    db.executemany("INSERT INTO t VALUES (?, ?)", rows)
    db.commit()
    db.close()
    return time.perf_counter() - start


def copy_home(source: Path, target: Path) -> None:
    """Copy a bench home, without the Unix sockets in `state/` (a process that lent its model
    and was killed leaves one behind; a socket cannot be copied)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.sock"))
