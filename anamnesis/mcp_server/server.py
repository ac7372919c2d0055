"""`build_server`: the memory tools as one MCP server, its lifespan, and serving it on stdio.

The tool list is what every session pays before it asks anything, so the descriptions are the
tools' docstrings in one line, the advertised input schemas are compacted, no output schema is
published, and the whole `tools/list` stays under `TOOLS_LIST_BUDGET_CHARS`.

Start-up is measured (bench/bench_mcp.py: spawn → tools/list, against importing the SDK alone):
the sync engine and the embedding model load after the server has answered, never before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, ToolAnnotations

from anamnesis import __version__
from anamnesis.config import Config
from anamnesis.mcp_server.state import ServerState, SyncFn
from anamnesis.mcp_server.tools import (
    memory_get,
    memory_list,
    memory_search,
    memory_status,
    memory_sync,
    memory_write,
)
from anamnesis.memory import Memory

logger = logging.getLogger(__name__)

SERVER_NAME = "anamnesis"
# The whole tools/list, as JSON: what every session pays before it asks anything (~1.2k tokens).
TOOLS_LIST_BUDGET_CHARS = 4_800
# The embedding model loads after the server answers: on the first tool call, or this long after
# start, whichever comes first (0.3 s of CPU that must not delay `tools/list`).
MODEL_LOAD_DELAY = 2.0

INSTRUCTIONS = (
    "Anamnesis is the user's long-term memory across sessions and machines. Search it before "
    "relying on assumptions about this project or the user's preferences; save durable lessons "
    "with memory_write; correct a wrong note by writing its replacement with supersedes."
)

_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_TOOLS: tuple[tuple[Callable[..., Awaitable[CallToolResult]], ToolAnnotations], ...] = (
    (memory_search, _READ_ONLY),
    (memory_get, _READ_ONLY),
    (memory_list, _READ_ONLY),
    (memory_status, _READ_ONLY),
    (memory_write, ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)),
    (memory_sync, ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)),
)


def compact_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An input schema without what costs tokens and tells the model nothing.

    pydantic adds a title to every property and spells an optional argument as
    `anyOf [X, null]` with `default: null`; the model only needs X. The arguments are still
    validated against the full signature, so a lenient form (null, a string for a list) works.
    """
    properties: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        alternatives = [alt for alt in prop.pop("anyOf", []) if alt.get("type") != "null"]
        if alternatives:
            prop = {**alternatives[0], **prop}
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        properties[name] = prop
    compact: dict[str, Any] = {"type": "object", "properties": properties}
    if schema.get("required"):
        compact["required"] = list(schema["required"])
    return compact


def _tool(fn: Callable[..., Awaitable[CallToolResult]], annotations: ToolAnnotations) -> Tool:
    tool = Tool.from_function(fn, description=" ".join((fn.__doc__ or "").split()), annotations=annotations)
    tool.parameters = compact_schema(tool.parameters)
    return tool


def build_server(config: Config, project: str, *, sync: SyncFn | None = None) -> MCPServer[ServerState]:
    """The memory tools for one session in `project`; the memory opens when the server runs.

    `sync`, when given and the config names a hub, is what `memory_sync` runs.
    """

    @asynccontextmanager
    async def lifespan(_server: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        async with AsyncExitStack() as stack, anyio.create_task_group() as background:
            state = ServerState(config=config, project=project, sync=sync, stack=stack)
            await state.open()
            background.start_soon(_recall_in_background, state)
            try:
                yield state
            finally:
                background.cancel_scope.cancel()

    return MCPServer(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        version=__version__,
        tools=[_tool(fn, annotations) for fn, annotations in _TOOLS],
        lifespan=lifespan,
    )


async def _recall_in_background(state: ServerState) -> None:
    """Once the server has answered: borrow the home's one model (from the service, or from the
    first session that loaded it), or else load it here and lend it to the sessions after this
    one, keeping this session's writes (and anything else without a vector) embedded. Search
    meanwhile is lexical, never waiting."""
    with anyio.move_on_after(MODEL_LOAD_DELAY):
        await state.called.wait()
    memory = state.opened
    if memory is None or memory.semantic is None:
        return
    from anamnesis.model_lending import share_model

    await share_model(memory)  # borrow the home's one model, or load it here and lend it


async def _sync(memory: Memory) -> Mapping[str, Any]:
    """The sync `anamnesis mcp` serves: imported on the first call, so start-up stays lean."""
    from anamnesis.sync.wiring import sync_memory

    return await sync_memory(memory)


def run_stdio(config: Config, project: str, *, sync: SyncFn | None = _sync) -> int:
    """Serve the tools on stdin/stdout until the client closes them; the exit code.

    asyncio, because the index (aiosqlite) only runs there.
    """
    server = build_server(config, project, sync=sync)
    logger.debug("serving project %s from %s", project, config.home)
    anyio.run(server.run_stdio_async, backend="asyncio")
    return 0
