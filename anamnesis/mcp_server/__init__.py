"""The MCP server (`anamnesis mcp`): the memory tools Claude Code calls, served over stdio.

Six tools with the names and parameters of anamnesis-memory 0.1.3, plus `memory_get` and paging:
`memory_search`, `memory_get`, `memory_list`, `memory_status` (read-only), `memory_write`,
`memory_sync`. The package reads in the order a call flows:

- `server`: `build_server(config, project)`, its lifespan, the tool list and its budget, stdio;
- `state`: what the tools of one run share (the memory, opened lazily; the session's project);
- `tools`: each tool's arguments checked, core called (its docstring is the model's prompt);
- `presentation`: each result in text and structured form, bounded, built from `anamnesis.shapes`;
- `errors`: the one table from `AnamnesisError`s to tool errors the model can act on.

Only `anamnesis mcp` imports this package: the SDK costs seconds to import, which hooks and the
CLI must not pay.
"""

from __future__ import annotations

from anamnesis.mcp_server.presentation import RESPONSE_BUDGET_CHARS
from anamnesis.mcp_server.server import TOOLS_LIST_BUDGET_CHARS, build_server, compact_schema, run_stdio
from anamnesis.mcp_server.tools import MAX_WRITE_BODY_CHARS

__all__ = [
    "MAX_WRITE_BODY_CHARS",
    "RESPONSE_BUDGET_CHARS",
    "TOOLS_LIST_BUDGET_CHARS",
    "build_server",
    "compact_schema",
    "run_stdio",
]
