"""Run `python -m anamnesis ...` with stderr on a pseudo-terminal, as a person at a terminal sees it.

Progress bars go to stderr only when it is a terminal; stdout stays a pipe, so a test sees both.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

DEADLINE = 60.0


def run_in_pty(args: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, what the terminal showed); AssertionError if the command goes silent."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "anamnesis", *args], stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], DEADLINE)
        if not ready:
            process.kill()
            raise AssertionError(f"no output from the command within {DEADLINE:g} s")
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closed: the command is done with it
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    process.stdout.close()
    process.wait(timeout=DEADLINE)
    return process.returncode, out, b"".join(chunks).decode(errors="replace")
