"""The `anamnesis` command line: parse arguments, then run one command.

Only the standard library is imported here; each command imports what it needs when it runs,
so `anamnesis hook …` and `anamnesis --help` start fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit status (0 ok, 1 failed or found problems, 2 usage)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) == 2 and arguments[0] == "hook" and not arguments[1].startswith("-"):
        # The hot path: Claude Code runs this on every session start and prompt. Skip argparse
        # and every import that a hook does not need.
        from anamnesis.hooks import run_hook

        return run_hook(arguments[1], sys.stdin, sys.stdout, os.environ)
    from anamnesis.cli.parser import build_parser

    parser = build_parser()
    args = parser.parse_args(arguments)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    from anamnesis.cli.run import run_command

    return run_command(args, dict(os.environ), sys.stdout, sys.stderr)
