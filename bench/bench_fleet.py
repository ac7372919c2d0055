"""Many machines, one note: conflict copies per 100 concurrent edits.

    python bench/bench_fleet.py                 # 10 machines, 4 rounds
    python bench/bench_fleet.py --machines 5 --rounds 8

Every machine appends a line to the same note each round, then all of them sync at once
through one hub (asyncssh on loopback, real git): push races, retries and merges of merges.
Edits that do not overlap should merge on their own; the floor is zero conflict copies.
Prints the conflict copies made, per 100 edits, whether any line was lost, and whether every
machine ends with the same text.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import anyio  # noqa: E402
from common import machine_line  # noqa: E402

from anamnesis.errors import SyncError  # noqa: E402
from tests.hubserver import Machine, make_machine, running_hub  # noqa: E402


async def main(count: int, rounds: int) -> int:
    os.environ.pop("SSH_AUTH_SOCK", None)
    with tempfile.TemporaryDirectory(prefix="anamnesis-bench-fleet-") as scratch:
        base = Path(scratch)
        os.environ["HOME"] = str(base)
        async with running_hub(base / "hubroot") as hub:
            machines = [await make_machine(base, f"m{i:02d}", hub) for i in range(count)]
            shared = await machines[0].write("Running log", "## Log\n- started", type="episodic")
            for machine in machines:
                await machine.sync()
            copies = deferred = 0
            started = time.perf_counter()
            for round_ in range(rounds):
                for machine in machines:
                    await machine.append(shared.id, f"- {machine.name} round {round_}")
                reports = []

                async def sync(machine: Machine) -> None:
                    nonlocal deferred
                    try:
                        reports.append(await machine.sync())  # noqa: B023  (awaited inside the round)
                    except SyncError:  # lost every push race this time: the next sync retries
                        deferred += 1

                async with anyio.create_task_group() as tasks:
                    for machine in machines:
                        tasks.start_soon(sync, machine)
                copies += sum(len(r.conflicts) for r in reports)
            for _ in range(2):
                for machine in machines:
                    await machine.sync()
            elapsed = time.perf_counter() - started
            texts = {m.name: (m.memory_dir / "episodic" / f"{shared.id}.md").read_text() for m in machines}
            lines = [f"- {m.name} round {r}" for m in machines for r in range(rounds)]
            lost = sum(1 for line in lines if not all(line in t for t in texts.values()))
    edits = count * rounds
    print(machine_line())
    print(f"{count} machines × {rounds} rounds = {edits} concurrent edits of one note, in {elapsed:.1f} s")
    print(f"  conflict copies: {copies} ({100 * copies / edits:.1f} per 100 edits; floor 0)")
    print(f"  syncs that lost every push race and left it to the next sync: {deferred}")
    print(f"  lines lost: {lost}; every machine ends with the same text: {len(set(texts.values())) == 1}")
    return 1 if copies or lost or len(set(texts.values())) != 1 else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    options = parser.parse_args()
    sys.exit(anyio.run(main, options.machines, options.rounds, backend="asyncio"))
