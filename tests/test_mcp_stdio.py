"""The MCP server as Claude Code runs it: a subprocess speaking JSON-RPC on stdin/stdout.

`python -m anamnesis.mcp_server` reads its home from ANAMNESIS_HOME and its project from
CLAUDE_PROJECT_DIR, like `anamnesis mcp`. Both handshakes are exercised: `auto` is the
2026-07-28 `server/discover` path current Claude Code takes, `legacy` the `initialize` one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from anamnesis import __version__
from anamnesis.config import Config

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
PROJECT_KEY = "github.com/acme/quotes-api"


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A checkout whose project key comes from its `.anamnesis/project` marker."""
    directory = tmp_path / "work" / "quotes-api"
    (directory / ".anamnesis").mkdir(parents=True)
    (directory / ".anamnesis" / "project").write_text(PROJECT_KEY + "\n", encoding="utf-8")
    return directory


# `anamnesis mcp` (what Claude Code is configured to run) and the module's own entry point.
ENTRIES = {"cli": ["-m", "anamnesis", "mcp"], "module": ["-m", "anamnesis.mcp_server"]}


def server_params(config: Config, project_dir: Path, entry: str = "cli") -> StdioServerParameters:
    env = {
        "ANAMNESIS_HOME": str(config.home),
        "CLAUDE_PROJECT_DIR": str(project_dir),
        "GIT_CONFIG_GLOBAL": os.environ["GIT_CONFIG_GLOBAL"],
        "GIT_CONFIG_NOSYSTEM": "1",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    return StdioServerParameters(command=sys.executable, args=ENTRIES[entry], env=env, cwd=str(project_dir.parent))


@asynccontextmanager
async def serve(config: Config, project_dir: Path, mode: str, entry: str = "cli") -> AsyncIterator[Client]:
    with anyio.fail_after(60):  # the SDK import alone takes seconds on a slow machine
        async with Client(server_params(config, project_dir, entry), mode=mode) as client:
            yield client


async def ok(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    result = await client.call_tool(tool, arguments)
    text = "\n".join(block.text for block in result.content if block.type == "text")
    assert result.is_error is False, text
    return result


@pytest.mark.parametrize("entry", list(ENTRIES))
async def test_server_over_stdio_writes_to_the_claude_project_and_finds_it(
    config: Config, project_dir: Path, mode: str, entry: str
) -> None:
    async with serve(config, project_dir, mode, entry) as client:
        if mode == "legacy":
            assert client.server_info is not None
            assert client.server_info.name == "anamnesis"
            assert client.server_info.version == __version__
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert "memory_get" in tools
        assert "memory_write" in tools
        written = await ok(
            client,
            "memory_write",
            type="procedural",
            title="Run tests with pytest -q",
            body="The suite runs with `pytest -q` from the repo root.",
        )
        note_id = written.structured_content["id"] if written.structured_content else ""
        found = await ok(client, "memory_search", query="pytest suite")
    assert found.structured_content is not None
    assert [hit["id"] for hit in found.structured_content["hits"]] == [note_id]
    on_disk = (config.layout.memory_dir / "procedural" / f"{note_id}.md").read_text(encoding="utf-8")
    assert f"project: {PROJECT_KEY}" in on_disk


async def test_a_tool_error_over_stdio_is_a_result_not_a_broken_connection(
    config: Config, project_dir: Path, mode: str
) -> None:
    async with serve(config, project_dir, mode) as client:
        failed = await client.call_tool("memory_get", {"id": "01JD3W6Q2M8Z4T9K7B5X0R1C2V"})
        assert failed.is_error is True
        status = await ok(client, "memory_status")
    assert status.structured_content is not None
    assert status.structured_content["project"] == PROJECT_KEY


async def test_sessions_in_parallel_share_one_store(config: Config, project_dir: Path) -> None:
    ids: list[str] = []

    async def session(n: int) -> None:
        async with serve(config, project_dir, "auto") as client:
            for m in range(3):
                result = await ok(
                    client,
                    "memory_write",
                    type="semantic",
                    title=f"Session {n} fact {m}",
                    body="Concurrent sessions share the store.",
                )
                assert result.structured_content is not None
                ids.append(result.structured_content["id"])

    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(session, n)
    async with serve(config, project_dir, "legacy") as client:
        found = await ok(client, "memory_search", query="concurrent sessions store", k=20)
    assert found.structured_content is not None
    assert {hit["id"] for hit in found.structured_content["hits"]} == set(ids)
