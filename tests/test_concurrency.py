"""Many processes on one home at once (MCP servers, hooks, the CLI): nothing locks up, nothing is lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from anamnesis.config import Config
from anamnesis.memory import open_memory
from anamnesis.search import SearchFilters
from tests.conftest import run_cli_env

pytestmark = pytest.mark.anyio

WRITERS = 4
WRITES_EACH = 25
SEARCHERS = 2
MAX_SEARCH_ROUNDS = 3_000

WRITER = """
import sys
from pathlib import Path
import anyio
from anamnesis.config import load_config
from anamnesis.memory import NoteDraft, open_memory

async def main(home: str, worker: int, count: int) -> None:
    async with open_memory(load_config(Path(home), {})) as memory:
        for i in range(count):
            token = f"w{worker}n{i}"
            note = await memory.write(
                NoteDraft(type="semantic", title=f"Writer {worker} note {i}", body=f"{token} shared payload")
            )
            print(note.id, token, flush=True)

anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
"""

# Searches until every note the writers will write is in the index (bounded by rounds, never by
# waiting), so the searching overlaps the writing however the processes get scheduled. Nothing is
# deleted here, so the number of notes in the index may only grow: a drop means a refresh in one
# process threw away a row another process had just added.
SEARCHER = """
import sys
from pathlib import Path
import anyio
from anamnesis.config import load_config
from anamnesis.memory import open_memory

async def main(home: str, expected: int, max_rounds: int) -> None:
    async with open_memory(load_config(Path(home), {})) as memory:
        rounds = drops = most = 0
        while rounds < max_rounds and most < expected:
            rounds += 1
            await memory.search("shared payload note", limit=20)
            await memory.list(limit=20)
            total = (await memory.counts())["total"]
            drops += total < most
            most = max(most, total)
        print("rounds", rounds, "drops", drops, flush=True)

anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
"""


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60)
    return result.stdout.strip()


async def test_processes_writing_and_searching_one_home_lose_nothing(config: Config) -> None:
    home = str(config.home)
    expected = WRITERS * WRITES_EACH
    env = run_cli_env(config.home)
    commands = [[sys.executable, "-c", WRITER, home, str(w), str(WRITES_EACH)] for w in range(WRITERS)]
    commands += [[sys.executable, "-c", SEARCHER, home, str(expected), str(MAX_SEARCH_ROUNDS)]] * SEARCHERS
    results: list[subprocess.CompletedProcess[bytes] | None] = [None] * len(commands)

    async def run(slot: int) -> None:
        results[slot] = await anyio.run_process(commands[slot], env=env, check=False)

    assert not config.layout.index_path.exists()  # every process races to create the index too
    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            for slot in range(len(commands)):
                tg.start_soon(run, slot)

    written: dict[str, str] = {}
    for result in results:
        assert result is not None
        stderr = result.stderr.decode(errors="replace")
        assert "locked" not in stderr.lower()
        assert result.returncode == 0, stderr
    for result in results[WRITERS:]:
        assert result is not None
        assert result.stdout.decode().split()[2:] == ["drops", "0"]
    for result in results[:WRITERS]:
        assert result is not None
        for line in result.stdout.decode().splitlines():
            note_id, token = line.split()
            written[token] = note_id
    assert len(written) == expected
    assert len(set(written.values())) == expected

    # On disk and committed, as the machine, one commit per note.
    memory_dir = config.layout.memory_dir
    assert sorted(p.stem for p in (memory_dir / "semantic").glob("*.md")) == sorted(written.values())
    assert git(memory_dir, "status", "--porcelain") == ""
    tracked = set(git(memory_dir, "ls-files", "--", "semantic").splitlines())
    assert tracked == {f"semantic/{note_id}.md" for note_id in written.values()}
    authors = git(memory_dir, "log", "--format=%an").splitlines()
    assert authors == ["desktop"] * (expected + 1)

    # Found by search, every one of them, by a fresh process and without a rebuild.
    async with open_memory(config) as memory:
        for token, note_id in written.items():
            assert [hit.id for hit in await memory.search(token)] == [note_id]
        listed: list[str] = []
        cursor = None
        while True:
            page = await memory.list(SearchFilters(), limit=50, cursor=cursor)
            listed.extend(summary.id for summary in page.notes)
            if (cursor := page.next_cursor) is None:
                break
        assert sorted(listed) == sorted(written.values())
        assert (await memory.status())["problems"] == 0
