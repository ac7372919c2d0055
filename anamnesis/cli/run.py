"""Run one parsed command: read config, call core, print, and translate errors once.

This is a root: the only place (with the service and the hook entry) that reads the
environment and config. An `AnamnesisError` becomes one line on stderr and the exit code of
the CLI's table in `anamnesis.edges` (with --json, the failure as JSON on stdout too);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import anyio

from anamnesis.cli import commands
from anamnesis.cli.io import IO
from anamnesis.cli.output import human_stream, print_json
from anamnesis.config import home_from_env, load_config
from anamnesis.edges import EXIT_CODES, EXIT_INTERRUPTED, EXIT_OK, cli_message, lookup
from anamnesis.errors import AnamnesisError


def _handler(name: str) -> Any:
    """The function for a parsed command: core commands first, then each layer's own."""
    from anamnesis.cli import health_cli, home_cli
    from anamnesis.cli.layers import layer_modules

    for module in (commands, home_cli, health_cli, *layer_modules()):
        function = getattr(module, name, None)
        if function is not None:
            return function
    raise AssertionError(f"no handler for command {name!r}")


def run_command(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    handler = args.handler
    raw_out = out
    out, err = human_stream(out), human_stream(err)  # notes come from every machine: no escapes
    try:
        home = home_from_env(environ)
        if handler == "hook":
            from anamnesis.hooks import run_hook

            return run_hook(args.event, sys.stdin, raw_out, environ)
        if handler == "mcp":  # the MCP SDK runs its own event loop
            return commands.mcp(home, environ)
        config = load_config(home, environ)
        io = IO(out=out, err=err, environ=environ, cwd=Path.cwd(), stdin=sys.stdin)
        function = _handler(handler)
        result: int = anyio.run(function, config, args, io)
        return result
    except AnamnesisError as exc:
        return report_failure(exc, out, err, as_json=getattr(args, "json", False))
    except KeyboardInterrupt:
        err.write("anamnesis: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


def report_failure(exc: AnamnesisError, out: TextIO, err: TextIO, *, as_json: bool) -> int:
    """The CLI's edge: one line on stderr, JSON too when a script asked for it; the exit code."""
    err.write(cli_message(exc) + "\n")
    if as_json:  # a script asked for JSON: it gets JSON, failure included
        print_json(out, {"ok": False, "error": str(exc), "error_type": type(exc).__name__})
    return lookup(EXIT_CODES, exc)
