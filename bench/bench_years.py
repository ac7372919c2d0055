"""A store that lived for years: grown the way the product grows one, then measured.

    python bench/bench_years.py                       # 20,000 notes, 30,000+ commits, 3 machines
    python bench/bench_years.py --notes 5000 --commits 8000 --rounds 4   # a quicker look

How the store grows:

- old history by `git fast-import` (fast, and what git would have stored anyway): every note
  added in a commit of its own by one of three machines, then edited again and again (a few
  hot notes take hundreds of edits), with superseded notes, reflected notes and conflict copies
  named as the sync names them, over three years of commit dates;
- then through the product's own paths: the first machine pushes it to a hub (asyncssh on
  loopback, real git behind it), two more machines join with `peer add`, and for `--rounds`
  rounds each machine writes notes with `Memory.write` (a commit each) and syncs (merges);
- beside it, a fresh store of the same notes in one commit, for the "within 1.5× of a fresh
  store" targets.

Each figure is printed beside its floor, measured in the same run: the history page beside
`git log` over the note's literal paths with a commit-graph; `memory_get` beside reading the
file; sync and hooks beside the same on the fresh store; rebuild beside a raw FTS5 build of the
same files; disk beside `git gc --aggressive` of the same repository; a new machine's join
beside `git clone` of the hub over the same SSH.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import anyio  # noqa: E402
from common import Table, machine_line, p50, raw_fts_build  # noqa: E402
from generate import END_MS, _note  # noqa: E402

from anamnesis.gitrepo import GitRepo  # noqa: E402
from anamnesis.memory import NoteDraft, open_memory  # noqa: E402
from anamnesis.notes import NOTE_TYPES, Note, parse_note, render_note  # noqa: E402
from anamnesis.sync.merge import _conflict_copy  # noqa: E402
from anamnesis.sync.ssh import bridge_env  # noqa: E402
from anamnesis.sync.wiring import add_peer, run_sync  # noqa: E402
from anamnesis.upkeep import footprint, run_upkeep  # noqa: E402
from tests.hubserver import Machine, append_line, make_machine, running_hub  # noqa: E402

YEARS = 3
HOT_NOTES = 40  # notes that take a large share of the edits (a running list, a session log)
ENTRY = [sys.executable, "-m", "anamnesis"]


# -- growing the old history ----------------------------------------------------------------------


def _data(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"data %d\n" % len(raw) + raw + b"\n"


def fast_import_stream(notes: int, commits: int, seed: int, parent: str) -> tuple[bytes, list[str]]:
    """A fast-import stream of `commits` commits over `notes` notes; the hot notes' ids."""
    rng = random.Random(seed)
    start_s = END_MS / 1000 - YEARS * 365 * 86400
    step = YEARS * 365 * 86400 / commits
    machines = ("desktop", "laptop", "workstation")
    out = [b"feature done\n"]
    living: list[Note] = []
    adds = set(rng.sample(range(commits), notes)) if commits > notes else set(range(commits))
    hot: list[int] = []
    for index in range(commits):
        when = int(start_s + index * step)
        who = machines[rng.randrange(3)] if rng.random() < 0.2 else machines[index // 500 % 3]
        header = (
            f"commit refs/heads/main\nauthor {who} <anamnesis@{who}> {when} +0000\n"
            f"committer {who} <anamnesis@{who}> {when} +0000\n"
        ).encode()
        changes: list[tuple[str, str]] = []
        if index in adds or not living:
            note = _note(rng, len(living), living)
            note = Note(
                **{
                    **_fields(note),
                    "scope": "portable",
                    "machine_id": who,
                    "created_at": _iso(when),
                    "updated_at": _iso(when),
                }
            )
            living.append(note)
            if len(hot) < HOT_NOTES and rng.random() < 0.01:
                hot.append(len(living) - 1)
            message = f"memory: add {note.type}/{note.id}.md"
            changes.append((f"{note.type}/{note.id}.md", render_note(note)))
        else:
            pick = rng.choice(hot) if hot and rng.random() < 0.5 else rng.randrange(len(living))
            old = living[pick]
            body = old.body + f"\n\n- {_iso(when)[:10]} {who}: " + " ".join(rng.sample(old.body.split(), 6))
            note = Note(**{**_fields(old), "body": body, "updated_at": _iso(when)})
            living[pick] = note
            path = f"{note.type}/{note.id}.md"
            message = f"memory: update {path}"
            changes.append((path, render_note(note)))
            if rng.random() < 0.01:  # the other side of a same-note conflict, kept by the sync
                copy_path, copy_text, _, _ = _conflict_copy(path, render_note(old), "laptop", _stamp(when))
                changes.append((copy_path, copy_text))
                message = f"sync: merge hub\n\nKept both versions of:\n  {path} -> {copy_path}\n"
        out.append(header + _data(message))
        if index == 0:
            out.append(f"from {parent}\n".encode())
        for path, text in changes:
            out.append(f"M 100644 inline {path}\n".encode() + _data(text))
        out.append(b"\n")
    out.append(b"done\n")
    return b"".join(out), [living[i].id for i in hot]


def _fields(note: Note) -> dict[str, object]:
    return {name: getattr(note, name) for name in note.__dataclass_fields__}


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _stamp(seconds: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds))


async def grow_history(machine: Machine, notes: int, commits: int, seed: int) -> list[str]:
    repo = GitRepo(machine.memory_dir, machine.name)
    parent = await repo.output("rev-parse", "HEAD")
    stream, hot = fast_import_stream(notes, commits, seed, parent)
    await repo.run("fast-import", "--quiet", input=stream, timeout=1800)
    await repo.run("reset", "--hard", "-q", "main", timeout=600)
    return hot


# -- measuring -----------------------------------------------------------------------------------


async def timed(fn: Callable[[], Awaitable[object]], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    return p50(samples)


async def run_timed(argv: list[str], env: dict[str, str], stdin: str = "", runs: int = 1) -> float:
    """p50 of whole commands; run without blocking the loop, which serves the in-process hub."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        done = await anyio.run_process(argv, input=stdin.encode(), env=env, check=False)
        samples.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):  # doctor exits 1 on findings
            raise SystemExit(f"{argv} failed: {done.stderr.decode()[-800:]}")
    return p50(samples)


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def hook_env(home: Path) -> dict[str, str]:
    return {**os.environ, "ANAMNESIS_HOME": str(home)}


async def hook_times(home: Path, runs: int) -> tuple[float, float]:
    env = hook_env(home)
    payload = {"cwd": str(home.parent), "session_id": "bench"}
    start = await run_timed([*ENTRY, "hook", "session-start"], env, json.dumps(payload), runs)
    prompt = {**payload, "prompt": "how do we deploy the billing worker"}
    ask = await run_timed([*ENTRY, "hook", "user-prompt-submit"], env, json.dumps(prompt), runs)
    return start, ask


async def sync_times(machine: Machine, runs: int) -> tuple[float, float]:
    async with open_memory(machine.config) as memory:
        idle = await timed(lambda: run_sync(machine.config, memory=memory), runs)
        changed = []
        for i in range(runs):
            await memory.write(NoteDraft(type="semantic", title=f"Bench change {i}", body=f"one changed note {i}"))
            start = time.perf_counter()
            await run_sync(machine.config, memory=memory)
            changed.append(time.perf_counter() - start)
    return idle, p50(changed)


async def main(args: argparse.Namespace) -> int:
    os.environ.pop("SSH_AUTH_SOCK", None)
    scratch = Path(tempfile.mkdtemp(prefix="anamnesis-bench-years-"))
    os.environ["HOME"] = str(scratch)
    table = Table(f"a store that lived {YEARS} years: {args.notes} notes, {args.commits}+ commits ({machine_line()})")
    try:
        async with running_hub(scratch / "hubroot") as hub, running_hub(scratch / "freshhub") as fresh_hub:
            started = time.perf_counter()
            desktop = await make_machine(scratch, "desktop", hub)
            hot = await grow_history(desktop, args.notes, args.commits, args.seed)
            async with open_memory(desktop.config) as memory:
                await memory.reindex()
            first_push = time.perf_counter()
            await desktop.sync()
            print(
                f"grew {args.commits} commits in {first_push - started:.1f} s; first push "
                f"{time.perf_counter() - first_push:.1f} s",
                file=sys.stderr,
            )

            # Two more machines join the way a user adds one: `peer add` on a fresh home.
            others = []
            for name in ("laptop", "workstation"):
                machine = await make_machine(scratch, name, None)
                hub.authorize(machine.key)
                start = time.perf_counter()
                await add_peer(machine.config, "hub", hub.url(), fingerprint=hub.fingerprint)
                join = time.perf_counter() - start
                others.append(machine)
            context = await run_timed(
                [*ENTRY, "hook", "session-start"],
                hook_env(others[-1].home),
                json.dumps({"cwd": str(scratch), "session_id": "join"}),
            )
            clone_dir = scratch / "clone"
            start = time.perf_counter()
            await anyio.run_process(
                ["git", "clone", "-q", hub.url(), str(clone_dir)],
                env={**os.environ, **bridge_env(others[-1].config.layout)},
            )
            clone = time.perf_counter() - start
            table.add("new machine joins (peer add → searchable)", join, clone, None)
            table.add("  its first session-start hook", context, None, None)

            # Years of use through the product: writes on every machine, syncs that merge.
            machines = [desktop, *others]
            for round_ in range(args.rounds):
                for machine in machines:
                    async with open_memory(machine.config) as memory:
                        for i in range(args.writes):
                            await memory.write(
                                NoteDraft(
                                    type="episodic",
                                    title=f"Session {round_}.{i} on {machine.name}",
                                    body=f"what happened in session {round_}.{i}",
                                )
                            )
                        if hot:
                            await append_line(memory, hot[round_ % len(hot)], f"- {machine.name} round {round_}")
                    await machine.sync()
            for machine in machines:
                await machine.sync()
            repo = GitRepo(desktop.memory_dir, "desktop")
            commits = int(await repo.output("rev-list", "--count", "HEAD"))
            print(f"after {args.rounds} rounds on 3 machines: {commits} commits", file=sys.stderr)

            # The same notes, fresh: one commit, its own hub.
            fresh = await make_machine(scratch, "fresh", fresh_hub)
            for note_type in NOTE_TYPES:
                shutil.rmtree(fresh.memory_dir / note_type, ignore_errors=True)
                shutil.copytree(desktop.memory_dir / note_type, fresh.memory_dir / note_type)
            await GitRepo(fresh.memory_dir, "fresh").commit_all("bench: the same notes, fresh")
            async with open_memory(fresh.config) as memory:
                await memory.reindex()
            await fresh.sync()

            # History and get: before upkeep, after upkeep, and the floor.
            async with open_memory(desktop.config) as memory:
                sample = hot[:10] + [p.stem for p in sorted((desktop.memory_dir / "semantic").glob("*.md"))[:10]]
                sample = [s for s in sample if ".sync-conflict-" not in s]
                loose_before = await footprint(repo)
                size_before = du(desktop.memory_dir / ".git")

                async def history_all() -> None:
                    for note_id in sample:
                        await memory.history(note_id)

                history_before = await timed(history_all, 1) / len(sample)
                upkeep_start = time.perf_counter()
                record = await run_upkeep(desktop.config, force=True)
                upkeep_seconds = time.perf_counter() - upkeep_start
                assert record is not None
                assert record.error is None, record.error
                history_after = await timed(history_all, args.runs) / len(sample)
                floor_samples = []
                for note_id in sample:
                    note = await memory.get(note_id)
                    paths = [f"{t}/{note.id}.md" for t in NOTE_TYPES]
                    start = time.perf_counter()
                    subprocess.run(
                        ["git", "-C", str(desktop.memory_dir), "log", "--format=%H %s", "-n", "50", "--", *paths],
                        check=True,
                        capture_output=True,
                    )
                    floor_samples.append(time.perf_counter() - start)
                history_floor = p50(floor_samples)
                table.add("history of a note, before upkeep (p50)", history_before, history_floor, None)
                table.add("history of a note, after upkeep (p50)", history_after, history_floor, 0.100)

                async def get_all() -> None:
                    for note_id in sample:
                        await memory.get(note_id)

                get_time = await timed(get_all, args.runs) / len(sample)
                read_floor = p50([_read_time(desktop.memory_dir, s) for s in sample])
                table.add("memory_get (p50)", get_time, read_floor, None)

                rebuild = await timed(lambda: memory.reindex(full=True), 1)
                notes_on_disk = [p for t in NOTE_TYPES for p in (desktop.memory_dir / t).glob("*.md")]
                table.add(f"full rebuild, {args.notes} notes", rebuild, raw_fts_build(notes_on_disk), None)

            size_after = du(desktop.memory_dir / ".git")
            loose_after = await footprint(repo)
            # The floor: the same repository directory, copied, after git's most thorough gc.
            aggressive = scratch / "aggressive.git"
            shutil.copytree(desktop.memory_dir / ".git", aggressive)
            subprocess.run(["git", "--git-dir", str(aggressive), "gc", "-q", "--aggressive", "--prune=now"], check=True)
            size_floor = du(aggressive)
            for label, git_dir in (("after upkeep", desktop.memory_dir / ".git"), ("aggressive", aggressive)):
                parts = {p.name: du(p) if p.is_dir() else p.stat().st_size for p in git_dir.iterdir()}
                packs = du(git_dir / "objects" / "pack")
                top = ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])[:4])
                print(f"  {label}: packs {packs / 1e6:.1f} MB; largest parts (MB): {top}", file=sys.stderr)
            table.add_text(
                "memory/.git before upkeep",
                f"{size_before / 1e6:.1f} MB",
                f"{size_floor / 1e6:.1f} MB",
                f"{size_before / size_floor:.1f}×",
                target="-",
                verdict=f"{loose_before.loose_objects} loose, {loose_before.packs} packs",
            )
            ratio = size_after / size_floor
            table.add_text(
                "memory/.git after upkeep",
                f"{size_after / 1e6:.1f} MB",
                f"{size_floor / 1e6:.1f} MB",
                f"{ratio:.1f}×",
                "≤ 1.5×",
                ("ok" if ratio <= 1.5 else "MISS") + f" ({loose_after.loose_objects} loose, {loose_after.packs} packs)",
            )
            table.misses += 0 if ratio <= 1.5 else 1
            table.add("upkeep run (repack + commit-graph)", upkeep_seconds, None, None)

            idle, changed = await sync_times(desktop, args.runs)
            fresh_idle, fresh_changed = await sync_times(fresh, args.runs)
            table.add("sync, nothing to do", idle, fresh_idle, fresh_idle * 1.5)
            table.add("sync, one changed note", changed, fresh_changed, fresh_changed * 1.5)

            start_hook, prompt_hook = await hook_times(desktop.home, args.runs)
            fresh_start, fresh_prompt = await hook_times(fresh.home, args.runs)
            table.add("hook session-start (p50)", start_hook, fresh_start, max(fresh_start * 1.5, 0.150))
            table.add("hook user-prompt-submit (p50)", prompt_hook, fresh_prompt, max(fresh_prompt * 1.5, 0.150))
            env = hook_env(desktop.home)
            table.add("anamnesis status", await run_timed([*ENTRY, "status"], env, runs=3), None, None)
            table.add("anamnesis doctor", await run_timed([*ENTRY, "doctor"], env, runs=3), None, None)
            table.print()
            print(
                "floors: history = git log over the note's literal paths (commit-graph present); get = reading the"
                " file; rebuild = read + raw FTS5; disk = git gc --aggressive; sync and hooks = the fresh store"
                " (targets 1.5× of it); join = git clone over the same SSH"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if table.misses else 0


def _read_time(memory_dir: Path, note_id: str) -> float:
    for note_type in NOTE_TYPES:
        path = memory_dir / note_type / f"{note_id}.md"
        if path.exists():
            start = time.perf_counter()
            parse_note(path.read_text(encoding="utf-8"))
            return time.perf_counter() - start
    return 0.0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", type=int, default=20_000, help="notes in the store (default 20,000)")
    parser.add_argument("--commits", type=int, default=30_000, help="commits of old history (default 30,000)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of writes and syncs on 3 machines (default 6)")
    parser.add_argument("--writes", type=int, default=10, help="notes each machine writes per round (default 10)")
    parser.add_argument("--runs", type=int, default=10, help="samples per timing (default 10)")
    parser.add_argument("--seed", type=int, default=20261205)
    sys.exit(anyio.run(main, parser.parse_args(), backend="asyncio"))
