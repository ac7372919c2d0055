"""Sync cycle cost over loopback SSH, next to the cost of one SSH handshake measured in the same run.

    python bench/bench_sync.py              # 15 rounds each
    python bench/bench_sync.py --rounds 40

Two machines sync through an asyncssh hub in this process (tests/hubserver.py: real
`git upload-pack`/`receive-pack` behind it), each with its memory open as the service keeps it.
Measures the median of:

- one SSH handshake: connect (key exchange, host key check, public-key auth) and close;
- a cycle with nothing to do (connect, fetch, nothing to integrate or push);
- a cycle with one changed note (connect, commit, fetch, push, index refresh);

with the shared connection (the default: one handshake per cycle for every git command) and,
for comparison, with the bridge (`python -m anamnesis.sync.git_ssh`: a process and a handshake
per git command). The floor column is the handshake: a cycle cannot cost less than one.
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
from common import Table, machine_line, p50  # noqa: E402

from anamnesis.memory import Memory, NoteDraft, open_memory  # noqa: E402
from anamnesis.sync.peers import sync_settings  # noqa: E402
from anamnesis.sync.ssh import connect_hub  # noqa: E402
from anamnesis.sync.wiring import run_sync  # noqa: E402
from tests.hubserver import Machine, make_machine, running_hub  # noqa: E402


async def handshake(machine: Machine, url: str, rounds: int) -> list[float]:
    from anamnesis.sync.peers import parse_hub_url

    config = machine.config
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        conn, _client = await connect_hub(config.layout, sync_settings(config), parse_hub_url(url))
        conn.close()
        await conn.wait_closed()
        samples.append(time.perf_counter() - start)
    return samples


async def cycles(machine: Machine, memory: Memory, rounds: int, *, change: bool) -> list[float]:
    samples = []
    for i in range(rounds):
        if change:
            await memory.write(NoteDraft(type="semantic", title=f"Bench note {i}", body=f"changed note number {i}"))
        start = time.perf_counter()
        report = await run_sync(machine.config, memory=memory)
        samples.append(time.perf_counter() - start)
        assert report.ok, report.as_dict()
        assert report.pushed == change, report.as_dict()
    return samples


async def main(rounds: int) -> None:
    os.environ.pop("SSH_AUTH_SOCK", None)
    with tempfile.TemporaryDirectory(prefix="anamnesis-bench-sync-") as scratch:
        base = Path(scratch)
        os.environ["HOME"] = str(base)
        async with running_hub(base / "hubroot") as hub:
            laptop = await make_machine(base, "laptop", hub)
            desktop = await make_machine(base, "desktop", hub)
            await laptop.write("Seed", "the first note")
            await laptop.sync()
            await desktop.sync()
            table = Table(f"sync over loopback SSH, median of {rounds} ({machine_line()})")
            shake = p50(await handshake(laptop, hub.url(), rounds))
            table.add("one SSH handshake (connect + auth + close)", shake, None, None)
            for label, shared in (("shared connection", True), ("bridge process per git command", False)):
                laptop.set_sync(shared_connection=shared)
                async with open_memory(laptop.config) as memory:
                    idle = p50(await cycles(laptop, memory, rounds, change=False))
                    changed = p50(await cycles(laptop, memory, rounds, change=True))
                table.add(f"cycle, nothing to do ({label})", idle, shake, None)
                table.add(f"cycle, one changed note ({label})", changed, shake, None)
            table.print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="samples per measure (default 15)")
    anyio.run(main, parser.parse_args().rounds, backend="asyncio")
