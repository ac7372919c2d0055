"""The bridge: git's ssh program as a process of its own (`python -m anamnesis.sync.git_ssh`).

git runs it once per network command, with ssh's arguments; it connects to the hub with the
same policy as the sync (`connect_hub`) and wires the remote `git-upload-pack` or
`git-receive-pack` to its own stdin, stdout and stderr. It serves where descriptors cannot be
passed to a shared connection, when `sync.shared_connection` is off, and a user's own git
commands. Its only way back to the engine is git's stderr and exit status, so a failure is
written as a marked line whose code (`LinkFailure`) keeps the error's type across the process.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

import anamnesis
from anamnesis.config import Layout, home_from_env, load_config
from anamnesis.errors import AnamnesisError
from anamnesis.sync.link import LinkFailure, mark
from anamnesis.sync.peers import HubURL, sync_settings
from anamnesis.sync.ssh.connection import connect_hub
from anamnesis.sync.sshlib import asyncssh

_PACKAGE_PARENT = str(Path(anamnesis.__file__).resolve().parent.parent)


def bridge_env(layout: Layout) -> dict[str, str]:
    """git's ssh program as a process per command (`python -m anamnesis.sync.git_ssh`)."""
    return {
        "GIT_SSH_COMMAND": f"{shlex.quote(sys.executable)} -m anamnesis.sync.git_ssh",
        "GIT_SSH_VARIANT": "ssh",
        "ANAMNESIS_HOME": str(layout.home),
        "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")])),
    }


def parse_ssh_argv(argv: Sequence[str]) -> tuple[str | None, int | None, str, str]:
    """(user, port, host, command) from the arguments git gives its ssh program."""
    port: int | None = None
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        option = argv[i]
        if option in ("-p", "-o", "-l", "-i", "-F"):
            i += 1
            if option == "-p" and i < len(argv):
                port = int(argv[i])
        elif option not in ("-G", "-4", "-6", "-T", "-x", "-a"):
            raise ValueError(f"unsupported ssh option {option}")
        i += 1
    if i >= len(argv):
        raise ValueError("no host given")
    host, user = argv[i], None
    if "@" in host:
        user, host = host.rsplit("@", 1)
    return user, port, host, " ".join(argv[i + 1 :])


def _stdin_source() -> Any:
    mode = os.fstat(0).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return os.dup(0)
    if stat.S_ISREG(mode):  # epoll cannot watch a regular file
        return os.fdopen(os.dup(0), "rb")
    return asyncssh.DEVNULL


async def bridge(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run one git command on the hub named in `argv`, wired to our stdin/stdout/stderr."""
    try:
        user, port, host, command = parse_ssh_argv(argv)
    except ValueError as exc:
        print(mark(LinkFailure.OTHER, str(exc)), file=sys.stderr)
        return 255
    if "-G" in argv:
        return 0
    try:
        config = load_config(home_from_env(environ), environ)
        hub = HubURL(url=f"ssh://{host}", host=host, path="", user=user, port=port)
        conn, _client = await connect_hub(config.layout, sync_settings(config), hub)
        async with conn:
            env = {"GIT_PROTOCOL": environ["GIT_PROTOCOL"]} if environ.get("GIT_PROTOCOL") else {}
            process = await conn.create_process(
                command, env=env, encoding=None, stdin=_stdin_source(), stdout=os.dup(1), stderr=os.dup(2)
            )
            result = await process.wait()
    except AnamnesisError as exc:  # the type travels as a code; the engine raises it again
        print(mark(LinkFailure.of(exc), str(exc)), file=sys.stderr)
        return 255
    except (OSError, asyncssh.Error) as exc:
        print(mark(LinkFailure.LOST, f"connection to the hub lost: {exc}"), file=sys.stderr)
        return 255
    if result.exit_status is None or result.exit_status < 0:
        print(mark(LinkFailure.LOST, "connection to the hub lost (no exit status)"), file=sys.stderr)
        return 255
    return int(result.exit_status)


def bridge_main() -> None:
    sys.exit(anyio.run(bridge, sys.argv[1:], dict(os.environ), backend="asyncio"))
