"""The command modules of the layers above core, in one list the parser and the dispatcher share.

Each module has `register(sub, command)` that adds its subcommands, and one `async def
handler(config, args, io)` per command, named by the `handler` default its parsers set.
"""

from __future__ import annotations

from types import ModuleType


def layer_modules() -> tuple[ModuleType, ...]:
    """Imported on demand: the hook path never parses arguments and must stay light."""
    from anamnesis.cli import reflect_cli, service_cli, sync_cli, tidy_cli

    return (sync_cli, service_cli, reflect_cli, tidy_cli)
