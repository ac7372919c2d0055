"""No warning a user cannot act on: commands that import asyncssh, Quart and the MCP SDK print
only our own output, with Python's warnings at their default setting (as a user runs them).

And the suite's own policy: a warning raised from our code fails a test; a dependency's
deprecation is listed in the summary, so tomorrow's release of a library cannot break the suite.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from pathlib import Path

import anyio
import pytest

from tests.hubserver import make_machine, running_hub

REPO = Path(__file__).resolve().parent.parent
BOUND = 60


def _raise_from(module: str, category: type[Warning]) -> None:
    """warn() as if called from inside `module` (warnings attribute it to the caller's __name__)."""
    code = compile("import warnings\nwarnings.warn('deprecated thing', category, stacklevel=1)", "<x>", "exec")
    exec(code, {"__name__": module, "category": category})


@pytest.mark.parametrize("module", ["anamnesis", "anamnesis.sync.engine", "tests.test_x"])
def test_a_warning_raised_by_our_own_code_fails_the_test(module: str) -> None:
    with pytest.raises(DeprecationWarning):
        _raise_from(module, DeprecationWarning)


@pytest.mark.parametrize("module", ["asyncssh.crypto.misc", "quart.app", "somelib"])
def test_a_dependencys_deprecation_is_reported_not_fatal(module: str) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")  # catch_warnings(record) keeps pytest's filters otherwise
        _raise_from(module, DeprecationWarning)
    assert [str(w.message) for w in seen] == ["deprecated thing"]


def _user_env(home: Path) -> dict[str, str]:
    """A user's environment: warnings at Python's defaults, this checkout importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "PYTHONDEVMODE")}
    env["ANAMNESIS_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _no_warning(stderr: str) -> bool:
    return not any(word in stderr for word in ("Warning", "warnings.warn", "Traceback"))


async def _run(home: Path, *argv: str) -> tuple[int, str, str]:
    with anyio.fail_after(BOUND):
        done = await anyio.run_process([sys.executable, "-m", "anamnesis", *argv], env=_user_env(home), check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.anyio
async def test_sync_commands_print_no_warning_from_the_ssh_library(tmp_path: Path) -> None:
    """asyncssh 2.24 under cryptography 51 warned about DSA three times on every import."""
    async with running_hub(tmp_path / "hubroot", create=None) as hub:
        laptop = await make_machine(tmp_path, "laptop", None)
        hub.authorize(laptop.key)
        await laptop.write("Before the hub", "a note that existed before the hub")

        code, out, err = await _run(laptop.home, "peer", "add", "home", hub.url(), "--fingerprint", hub.fingerprint)
        assert (code, err) == (0, ""), out + err
        code, out, err = await _run(laptop.home, "sync")
        assert (code, err) == (0, ""), out + err
        code, out, err = await _run(laptop.home, "peer", "list")
        assert (code, err) == (0, ""), out + err
        assert "home" in out


@pytest.mark.anyio
async def test_the_mcp_server_and_the_dashboard_start_and_stop_without_a_warning(tmp_path: Path) -> None:
    machine = await make_machine(tmp_path, "desktop", None)
    with anyio.fail_after(BOUND):
        mcp = await anyio.run_process(
            [sys.executable, "-m", "anamnesis", "mcp"], input=b"", env=_user_env(machine.home), check=False
        )
    assert _no_warning(mcp.stderr.decode())  # it logs its own start-up lines there, nothing else

    command = [sys.executable, "-m", "anamnesis", "serve", "--port", "0", "--no-sync"]
    async with await anyio.open_process(command, env=_user_env(machine.home)) as serve:
        assert serve.stdout is not None
        assert serve.stderr is not None
        with anyio.fail_after(BOUND):
            first = await serve.stdout.receive()
        assert b"Anamnesis dashboard" in first or b"http://127.0.0.1" in first, first
        serve.send_signal(signal.SIGTERM)
        with anyio.fail_after(BOUND):
            await serve.wait()
            err = b"".join([chunk async for chunk in serve.stderr])
    assert _no_warning(err.decode())
