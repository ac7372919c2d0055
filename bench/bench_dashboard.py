"""Server-side time of every dashboard page with 10k notes (target: p50 ≤ 100 ms per page).

    python bench/bench_dashboard.py                 # 10k notes, 30 timed requests per page
    python bench/bench_dashboard.py --notes 1000 --runs 50

The cached store of bench/generate.py is copied to a temporary home (the cache stays untouched),
its notes committed to git in one commit, then given what the pages show: a note edited a few
times (history, diff), fleet files of three machines, a conflict copy, a file that does not parse.
Each page is requested through Quart's test client in this process: routing, guards, the memory
calls, template rendering and the response, without a socket, which is the server-side time.
The floor of a page is its core call alone (Memory.list, Memory.search, Memory.get, …).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import anyio  # noqa: E402
from common import Table, copy_home, machine_line, p50, p95  # noqa: E402
from generate import ensure_store, make_queries  # noqa: E402

from anamnesis.config import load_config  # noqa: E402
from anamnesis.dashboard import DashboardSettings, create_app  # noqa: E402
from anamnesis.memory import Memory, open_memory  # noqa: E402
from anamnesis.search import SearchFilters  # noqa: E402

TARGET_P50 = 0.100
HOST = "127.0.0.1:8765"


async def rev_parse(memory: Memory, rev: str) -> str:
    argv = ["git", "-C", str(memory.config.layout.memory_dir), "rev-parse", rev]
    return (await anyio.run_process(argv)).stdout.decode().strip()


async def prepare(memory: Memory) -> dict[str, str]:
    """Commit the store, then give every page something to show; ids the pages are asked about."""
    started = time.perf_counter()
    await memory.commit_pending("bench: the generated notes")
    listed = await memory.list(SearchFilters(projects=("github.com/acme/quotes-api",), scope="portable"), 5)
    note = await memory.get(listed.notes[0].id)
    for round_ in range(3):
        note = note.with_changes(body=note.body + f"\n\nEdit {round_}: one more line.", updated_at=note.updated_at)
        await memory.save(note, f"bench: edit {round_}")
    other = await memory.get(listed.notes[1].id)
    copy = other.with_changes(
        id=other.id + "-laptop",
        body="The laptop's version.",
        machine_id="laptop",
        tags=(*other.tags, "conflict"),
        extra={"conflict_of": other.id},
    )
    await memory.save(copy)
    head = await memory.head()
    older = await rev_parse(memory, "HEAD~3")
    fleet = memory.config.layout.memory_dir / ".fleet"
    fleet.mkdir(exist_ok=True)
    for name, sha, written in (("desktop", head, 9000), ("laptop", older, 800), ("workstation", "f" * 40, 200)):
        (fleet / f"{name}.json").write_text(
            json.dumps(
                {
                    "machine": name,
                    "synced_at": "2026-11-20T10:00:00Z",
                    "head": sha,
                    "notes_written": written,
                    "conflicts": 1 if name == "laptop" else 0,
                }
            )
        )
    (memory.config.layout.memory_dir / "semantic" / "broken.md").write_text("no front-matter\n")
    await memory.reindex()
    print(f"  prepared in {time.perf_counter() - started:.1f} s (one commit of every note, edits, fleet, conflict)")
    return {"note": note.id, "copy": copy.id, "head": head}


async def main(n: int, runs: int) -> int:
    cached = await ensure_store(n)
    print(f"bench_dashboard · {n} notes (copy of {cached})\n{machine_line()}")
    with tempfile.TemporaryDirectory(prefix="anamnesis-bench-dashboard-") as tmp:
        home = Path(tmp) / "home"
        copy_home(cached, home)
        config = load_config(home, {})
        async with open_memory(config) as memory:
            ids = await prepare(memory)
            app = create_app(config, DashboardSettings(host="127.0.0.1", port=8765), memory=memory)
            client = app.test_client()
            queries = [text for text, _ in make_queries(runs)]
            project = "github.com/acme/quotes-api"
            first_page = await client.get("/?format=json", headers={"Host": HOST})
            cursor = (await first_page.get_json())["next_cursor"]
            pages: list[tuple[str, Callable[[int], str], Callable[[int], Awaitable[Any]] | None]] = [
                ("notes, newest first", lambda i: "/", lambda i: memory.list(SearchFilters(), 25)),
                (
                    "notes, project + type filter",
                    lambda i: f"/?project={project}&type=procedural",
                    lambda i: memory.list(SearchFilters(projects=(project,), types=("procedural",)), 25),
                ),
                (
                    "notes, second page",
                    lambda i: f"/?cursor={cursor}",
                    lambda i: memory.list(SearchFilters(), 25, cursor),
                ),
                (
                    "search",
                    lambda i: f"/search?q={queries[i % len(queries)]}",
                    lambda i: memory.search(queries[i % len(queries)], SearchFilters(), 20),
                ),
                ("note", lambda i: f"/notes/{ids['note']}", lambda i: memory.get(ids["note"])),
                ("edit form", lambda i: f"/notes/{ids['note']}/edit", lambda i: memory.get(ids["note"])),
                ("new note form", lambda i: "/new", None),
                ("history", lambda i: f"/notes/{ids['note']}/history", lambda i: memory.history(ids["note"])),
                ("diff of two versions", lambda i: f"/notes/{ids['note']}/diff", None),
                ("fleet", lambda i: "/fleet", None),
                ("conflicts", lambda i: "/conflicts", None),
                ("health", lambda i: "/health", lambda i: memory.status()),
            ]
            table = Table(f"dashboard pages, {n} notes, {runs} requests each (server side, Quart test client)")
            for name, path_of, floor_of in pages:
                for i in range(3):  # warm: templates compiled, SQLite and page caches
                    response = await client.get(path_of(i), headers={"Host": HOST})
                    if response.status_code != 200:
                        raise SystemExit(
                            f"{name}: {response.status_code} {(await response.get_data(as_text=True))[:500]}"
                        )
                page_samples: list[float] = []
                floor_samples: list[float] = []
                for i in range(runs):
                    path = path_of(i)
                    t0 = time.perf_counter()
                    await _get(client, path)
                    page_samples.append(time.perf_counter() - t0)
                    if floor_of is not None:
                        t0 = time.perf_counter()
                        await floor_of(i)
                        floor_samples.append(time.perf_counter() - t0)
                floor = p50(floor_samples) if floor_samples else None
                table.add(f"{name}, p50", p50(page_samples), floor, TARGET_P50)
                table.add(f"{name}, p95", p95(page_samples), p95(floor_samples) if floor_samples else None, None)
            edits: list[float] = []
            for i in range(min(runs, 10)):
                form = await (
                    await client.get(f"/notes/{ids['note']}/edit?format=json", headers={"Host": HOST})
                ).get_json()
                body = {"base": form["base"], "title": form["form"]["title"], "body": form["form"]["body"] + f" {i}"}
                headers = {"Host": HOST, "Origin": f"http://{HOST}", "X-CSRF-Token": form["csrf_token"]}
                t0 = time.perf_counter()
                response = await client.post(f"/notes/{ids['note']}/edit", json=body, headers=headers)
                edits.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    raise SystemExit(f"edit: {response.status_code} {(await response.get_data(as_text=True))[:500]}")
            table.add(f"save an edit (write, git commit, reindex), p50 of {len(edits)} (info)", p50(edits), None, None)
    table.print()
    print("\nfloor: the page's core call alone (Memory.list/search/get/history/status) on the same memory.")
    return 1 if table.misses else 0


async def _get(client: Any, path: str) -> None:
    response = await client.get(path, headers={"Host": HOST})
    await response.get_data()


def cli() -> int:
    parser = argparse.ArgumentParser(description="Dashboard page latency benchmark")
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30, help="timed requests per page")
    args = parser.parse_args()
    return anyio.run(main, args.notes, args.runs, backend="asyncio")


if __name__ == "__main__":
    raise SystemExit(cli())
