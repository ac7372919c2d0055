"""Notes travel as they are written: the service pushes a change within seconds and hears the hub
move over a connection it keeps open; writers without a service start one settling push; the
first session after sitting down waits a bounded moment for the other machine's news.

Two simulated machines sync through the real asyncssh hub (tests/hubserver.py); the service runs
in this process, hooks and `anamnesis mcp` run as real processes. Every wait is on a condition,
within a bound; the sync interval is an hour, so only the new paths can explain a note arriving.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from mcp import Client
from mcp.types import TextContent

from anamnesis.freshstart import ARRIVING
from anamnesis.locks import file_lock
from anamnesis.mcp_server import build_server
from anamnesis.sync.wiring import sync_memory
from tests.hubserver import Hub, Machine, make_machine
from tests.test_hook_sync import session_start
from tests.test_service import Client as HttpClient
from tests.test_service import running_service
from tests.test_transcript import basic_session, write_transcript

pytestmark = pytest.mark.anyio

BOUND = 60  # seconds: a bound on waiting for a condition, never a measured duration
HOUR = 3600.0


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


async def eventually(condition: Callable[[], Any], bound: float = BOUND) -> None:
    """Wait until `condition()` (run in a thread: it may read files or run git) is true."""
    with anyio.fail_after(bound):
        while not await anyio.to_thread.run_sync(condition):
            await anyio.sleep(0.05)


def hub_paths(hub: Hub) -> set[str]:
    """The files on the hub's main (empty when it has none yet)."""
    import subprocess

    result = subprocess.run(
        ["git", "--git-dir", str(hub.repo()), "ls-tree", "-r", "--name-only", "main"],
        capture_output=True,
        text=True,
        check=False,
    )
    return set(result.stdout.split()) if result.returncode == 0 else set()


def context_of(output: str) -> str:
    return str(json.loads(output)["hookSpecificOutput"]["additionalContext"]) if output else ""


async def two_machines(tmp_path: Path, hub: Hub) -> tuple[Machine, Machine]:
    """Desktop and laptop, both synced once with the hub, both set to an hourly interval."""
    desktop = await make_machine(tmp_path, "desktop", hub)
    laptop = await make_machine(tmp_path, "laptop", hub)
    for machine in (desktop, laptop):
        machine.set_sync(interval=HOUR, check_interval=0.2, push_delay=0.3)
        assert (await machine.sync()).ok
    return desktop, laptop


def make_stale(machine: Machine) -> None:
    """As after a night asleep: the last sync is older than the interval."""
    for name in ("sync.json", "sync-requested", "hub-heard.json"):
        path = machine.home / "state" / name
        if path.exists():
            os.utime(path, (1, 1))


async def news_overnight(desktop: Machine, laptop: Machine, title: str) -> None:
    """The desktop writes `title` and syncs it to the hub; the laptop's last sync is old."""
    await desktop.write(title, "Written on the desktop.", type="procedural", project="global")
    assert (await desktop.sync()).ok
    make_stale(laptop)


# -- the service -------------------------------------------------------------------------------


async def test_a_burst_of_notes_written_while_the_service_runs_reaches_the_hub_in_one_push(
    tmp_path: Path, hub: Hub
) -> None:
    desktop, _laptop = await two_machines(tmp_path, hub)
    desktop.set_sync(push_delay=3.0)  # the burst below is written well within it
    async with running_service(desktop.config, sync=True, sync_interval=HOUR) as (_info, seen):
        with anyio.fail_after(BOUND):
            await seen["synced"].wait()  # the first cycle, at start
        notes = [await desktop.write(f"Burst note {i}", f"written in a burst, number {i}") for i in range(3)]
        await eventually(lambda: any("sent changes" in message for _ok, message in seen["syncs"]))
        # The first push carried the whole burst.
        assert {f"semantic/{note.id}.md" for note in notes} <= hub_paths(hub)


async def test_the_service_hears_the_hub_move_over_its_open_connection_and_fetches(tmp_path: Path, hub: Hub) -> None:
    desktop, laptop = await two_machines(tmp_path, hub)
    async with running_service(laptop.config, sync=True, sync_interval=HOUR) as (info, seen):
        with anyio.fail_after(BOUND):
            await seen["synced"].wait()
        heard = laptop.home / "state" / "hub-heard.json"
        await eventually(heard.exists)
        await desktop.write("Staging deploys need a ticket", "Written on the desktop while the laptop listens.")
        assert (await desktop.sync()).ok
        connections = hub.stats.connections
        client = HttpClient()

        def found() -> bool:
            _status, body = client.request(info.url + "/search?q=staging+ticket", None, {"Accept": "application/json"})
            return any(hit["title"] == "Staging deploys need a ticket" for hit in json.loads(body)["hits"])

        await eventually(found)
        # Checks and the fetch went over the connection the service keeps: no new handshake.
        assert hub.stats.connections == connections
        _status, body = await client.get(info.url + "/fleet", {"Accept": "application/json"})
        machines = {m["machine"]: m for m in json.loads(body)["machines"]}
        assert machines["laptop"]["heard_at"] is not None
        assert machines["desktop"]["pushed_at"] is not None
    status = await anyio.run_process(
        [sys.executable, "-m", "anamnesis", "status"], env={**os.environ, "ANAMNESIS_HOME": str(laptop.home)}
    )
    lines = status.stdout.decode().splitlines()
    desktop_line = next(line for line in lines if line.startswith("machine   desktop:"))
    laptop_line = next(line for line in lines if line.startswith("machine   laptop:"))
    assert "last pushed never" not in desktop_line
    assert "last heard from the hub never" not in laptop_line


# -- writers without a service -----------------------------------------------------------------


async def test_memory_write_without_a_service_sends_the_note_to_the_hub_within_seconds(
    tmp_path: Path, hub: Hub
) -> None:
    _desktop, laptop = await two_machines(tmp_path, hub)
    async with Client(build_server(laptop.config, "github.com/acme/quotes-api", sync=sync_memory)) as client:
        results = [
            await client.call_tool("memory_write", {"type": "semantic", "title": title, "body": "From the laptop."})
            for title in ("Quotes are cached for a minute", "Prices come from the pricing service")
        ]
    texts = [block.text for result in results for block in result.content if isinstance(block, TextContent)]
    assert all("being sent to your hub within seconds" in text for text in texts), texts
    ids = [result.structured_content["id"] for result in results if result.structured_content]
    await eventually(lambda: {f"semantic/{i}.md" for i in ids} <= hub_paths(hub))


async def test_a_session_captured_at_compaction_without_a_service_reaches_the_hub(tmp_path: Path, hub: Hub) -> None:
    _desktop, laptop = await two_machines(tmp_path, hub)
    transcript = write_transcript(tmp_path / "session.jsonl", basic_session())
    payload = {
        "session_id": "s-compact",
        "transcript_path": str(transcript),
        "cwd": str(tmp_path),
        "hook_event_name": "PreCompact",
        "trigger": "manual",
    }
    result = await anyio.run_process(
        [sys.executable, "-m", "anamnesis", "hook", "pre-compact"],
        input=json.dumps(payload).encode(),
        env={**os.environ, "ANAMNESIS_HOME": str(laptop.home)},
    )
    assert result.stdout == b""
    captured = [path for path in laptop.note_files() if path.startswith("episodic/")]
    assert captured
    await eventually(lambda: set(captured) <= hub_paths(hub))


# -- session start -----------------------------------------------------------------------------


async def test_the_first_session_after_a_night_asleep_holds_the_note_the_other_machine_wrote(
    tmp_path: Path, hub: Hub
) -> None:
    desktop, laptop = await two_machines(tmp_path, hub)
    laptop.set_sync(start_wait=10)  # a bound for a loaded test machine; the default is 1.5 s
    await news_overnight(desktop, laptop, "Always run the linters before a commit")
    context = context_of(await session_start(laptop, tmp_path))
    assert "Always run the linters before a commit" in context
    assert ARRIVING not in context


async def test_past_the_bound_the_session_hears_that_notes_are_arriving_and_the_sync_finishes(
    tmp_path: Path, hub: Hub
) -> None:
    desktop, laptop = await two_machines(tmp_path, hub)
    laptop.set_sync(start_wait=5)
    await news_overnight(desktop, laptop, "Prefer small pull requests")
    # Another sync holds the lock: the session's sync sees the news but cannot bring it in time.
    async with file_lock(laptop.home / "state" / "sync.lock", BOUND, "the sync"):
        context = context_of(await session_start(laptop, tmp_path))
    assert ARRIVING in context
    assert "Prefer small pull requests" not in context
    await eventually(lambda: any("Prefer small pull requests" in text for text in laptop.note_files().values()))
    context = context_of(await session_start(laptop, tmp_path))  # within the interval: no wait
    assert "Prefer small pull requests" in context
    assert ARRIVING not in context


async def test_with_nothing_new_the_session_answers_at_once_and_the_sync_still_sends_this_machines_notes(
    tmp_path: Path, hub: Hub
) -> None:
    _desktop, laptop = await two_machines(tmp_path, hub)
    laptop.set_sync(start_wait=10)
    note = await laptop.write("Tabs, not spaces, in Makefiles", "Local.", type="procedural", project="global")
    make_stale(laptop)
    context = context_of(await session_start(laptop, tmp_path))
    assert "Tabs, not spaces, in Makefiles" in context
    assert ARRIVING not in context
    await eventually(lambda: f"procedural/{note.id}.md" in hub_paths(hub))  # the sync went on after the answer


async def test_an_unreachable_hub_costs_a_session_nothing_but_the_bound_and_only_once(tmp_path: Path, hub: Hub) -> None:
    _desktop, laptop = await two_machines(tmp_path, hub)
    await laptop.write("Use the staging hub", "A note of the laptop's own.", type="procedural", project="global")
    await hub.stop()
    make_stale(laptop)
    context = context_of(await session_start(laptop, tmp_path))
    assert "Use the staging hub" in context
    assert ARRIVING not in context
    marker = laptop.home / "state" / "sync-requested"
    started = marker.stat().st_mtime_ns
    await session_start(laptop, tmp_path)
    assert marker.stat().st_mtime_ns == started  # no second attempt within the interval
