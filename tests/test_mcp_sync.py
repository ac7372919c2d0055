"""`memory_sync` through a real MCP client, running the real sync against an in-process SSH hub.

The model calls it when the user asks for a sync or expects a note from another machine; it must
say plainly when no hub exists, carry a note to the other machine when one does, and turn an
unreachable hub into an error that tells the model the notes are safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from anamnesis.config import Config
from anamnesis.mcp_server import build_server
from anamnesis.memory import open_memory
from anamnesis.sync.peers import Peer, save_peer
from anamnesis.sync.wiring import sync_memory
from tests.hubserver import Hub, make_machine
from tests.ports import unused_port
from tests.test_mcp_stdio import ENTRIES, serve

pytestmark = pytest.mark.anyio

PROJECT = "github.com/acme/quotes-api"


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def _call(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    return await client.call_tool(tool, arguments)


async def test_without_a_hub_memory_sync_says_how_to_add_one(config: Config) -> None:
    async with Client(build_server(config, PROJECT, sync=sync_memory)) as client:
        result = await _call(client, "memory_sync")
    assert result.is_error is False
    assert "No hub is configured" in _text(result)
    assert "anamnesis peer add NAME ssh://user@host/path" in _text(result)
    assert result.structured_content is not None
    assert result.structured_content["synced"] is False


@pytest.mark.parametrize("entry", list(ENTRIES))
async def test_anamnesis_mcp_over_stdio_syncs_with_the_hub(tmp_path: Path, hub: Hub, entry: str) -> None:
    """What Claude Code runs (`anamnesis mcp`) serves the real sync once a hub is configured."""
    laptop = await make_machine(tmp_path, "laptop", hub)
    await laptop.write("Deploys go through the staging gate", "Never push straight to prod.")
    project_dir = tmp_path / "work" / "quotes-api"
    project_dir.mkdir(parents=True)
    async with serve(laptop.config, project_dir, "auto", entry) as client:
        result = await _call(client, "memory_sync")
    assert result.is_error is False, _text(result)
    assert result.structured_content is not None
    assert result.structured_content["synced"] is True
    desktop = await make_machine(tmp_path, "desktop", hub)
    await desktop.sync()
    assert any("staging gate" in text for text in desktop.note_files().values())


async def test_a_note_written_through_mcp_reaches_the_other_machine(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    async with Client(build_server(laptop.config, PROJECT, sync=sync_memory)) as client:
        written = await _call(
            client,
            "memory_write",
            type="procedural",
            title="Warm the quotes cache before load tests",
            body="Run `make warm-cache` first, or p99 latency doubles.",
        )
        assert written.is_error is False, _text(written)
        synced = await _call(client, "memory_sync")
    assert synced.is_error is False, _text(synced)
    assert synced.structured_content is not None
    assert synced.structured_content["synced"] is True
    assert synced.structured_content["hub"] == hub.url()
    assert "Synced with ssh://" in _text(synced)

    await desktop.sync()
    async with open_memory(desktop.config) as memory:
        hits = await memory.search("warm cache load tests")
    assert [h.title for h in hits] == ["Warm the quotes cache before load tests"]


async def test_an_unreachable_hub_is_a_tool_error_that_reassures(tmp_path: Path) -> None:
    laptop = await make_machine(tmp_path, "laptop", None)
    save_peer(laptop.home / "config.json", Peer(name="hub", url=f"ssh://git@127.0.0.1:{unused_port()}/srv/memory.git"))
    async with Client(build_server(laptop.config, PROJECT, sync=sync_memory)) as client:
        result = await _call(client, "memory_sync")
    assert result.is_error is True
    assert "safe on this machine" in _text(result)
