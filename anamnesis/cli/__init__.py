"""The `anamnesis` command line: parse arguments, then run one command.

Only the standard library is imported here; each command imports what it needs when it runs,
so `anamnesis hook …` and `anamnesis --help` start fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from anamnesis.cli.parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit status (0 ok, 1 failed or found problems, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    from anamnesis.cli.run import run_command

    return run_command(args, dict(os.environ), sys.stdout, sys.stderr)
