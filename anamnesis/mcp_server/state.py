"""What the tools of one server run share: the open memory, the session's project, the sync.

The memory is opened by the server's lifespan; if the home is not usable yet (no `anamnesis
init`), the server still starts and each call retries, so the model gets a message it can relay
instead of a server that failed to connect.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from anamnesis.config import Config
from anamnesis.errors import AnamnesisError
from anamnesis.mcp_server.errors import fix_message
from anamnesis.memory import Memory, open_memory

logger = logging.getLogger(__name__)

SyncFn = Callable[[Memory], Awaitable[Mapping[str, Any]]]
"""Runs one sync cycle on the open memory and returns a short summary (pushed, pulled, …)."""


@dataclass(slots=True)
class ServerState:
    """The open memory (or why it is not open), the session's project and the sync to run."""

    config: Config
    project: str
    sync: SyncFn | None
    stack: AsyncExitStack
    opened: Memory | None = None
    problem: str | None = None
    _opening: anyio.Lock = field(default_factory=anyio.Lock)
    called: anyio.Event = field(default_factory=anyio.Event)

    async def open(self) -> None:
        try:
            self.opened = await self.stack.enter_async_context(open_memory(self.config))
            self.problem = None
        except AnamnesisError as exc:
            self.problem = fix_message(exc)
            logger.warning("memory not available: %s", exc)

    async def memory(self) -> Memory:
        self.called.set()
        if self.opened is None:
            async with self._opening:
                if self.opened is None:
                    await self.open()
        if self.opened is None:
            raise ToolError(self.problem or "the memory is not available")
        return self.opened


def state_of(ctx: Context[ServerState]) -> ServerState:
    return ctx.request_context.lifespan_context
