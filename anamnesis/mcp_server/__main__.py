"""`python -m anamnesis.mcp_server`: what `anamnesis mcp` does, without the CLI around it.

Reads the home from ANAMNESIS_HOME and the project from CLAUDE_PROJECT_DIR (or the working
directory), as Claude Code starts a server registered by hand.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from anamnesis.config import home_from_env, load_config
from anamnesis.errors import ConfigError
from anamnesis.mcp_server.server import run_stdio
from anamnesis.project import resolve_project

logger = logging.getLogger("anamnesis.mcp_server")


def main() -> int:
    try:
        config = load_config(home_from_env(os.environ), os.environ)
    except ConfigError as exc:
        logger.error("anamnesis mcp: %s", exc)
        return 2
    cwd = Path(os.environ.get("CLAUDE_PROJECT_DIR") or os.getcwd())
    # Stop at the user's home, as the CLI and the hooks do, so all three agree on the project.
    user_home = os.environ.get("HOME")
    return run_stdio(config, resolve_project(cwd, Path(user_home) if user_home else None))


if __name__ == "__main__":
    sys.exit(main())
