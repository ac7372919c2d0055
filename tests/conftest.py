"""Shared fixtures: every test gets its own HOME and ANAMNESIS_HOME under tmp_path and a clean
git identity, so nothing reads or writes the developer's real files.

Backends: code that only uses anyio is tested on asyncio and trio (`both_backends`); code that
goes through the index (aiosqlite), Quart or asyncssh runs on asyncio, the default here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from anamnesis.config import Config, load_config
from anamnesis.home import init_home
from anamnesis.memory import Memory, open_memory

if TYPE_CHECKING:
    from tests.hubserver import Hub

both_backends = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """HOME and ANAMNESIS_HOME in tmp_path; git sees no user or system config."""
    home = tmp_path / "home"
    home.mkdir()
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Test User\n\temail = test@example.invalid\n[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANAMNESIS_HOME", str(home / ".anamnesis"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    for name in list(os.environ):
        if name.startswith("ANAMNESIS_") and name != "ANAMNESIS_HOME":
            monkeypatch.delenv(name)
    return home


@pytest.fixture
def anamnesis_home(isolated_env: Path) -> Path:
    return isolated_env / ".anamnesis"


@pytest.fixture
async def config(anamnesis_home: Path) -> Config:
    """An initialized home for machine `desktop`."""
    base = load_config(anamnesis_home, {"ANAMNESIS_MACHINE_ID": "desktop"})
    await init_home(base.layout, "desktop")
    return load_config(anamnesis_home, {})


@pytest.fixture
async def memory(config: Config) -> AsyncIterator[Memory]:
    """The real memory of an initialized home: files, SQLite and git."""
    async with open_memory(config) as mem:
        yield mem


def run_cli_env(home: Path) -> dict[str, str]:
    """Environment for running `python -m anamnesis` as a subprocess against the test home."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return env


PYTHON = sys.executable


@pytest.fixture
async def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hub]:
    """A hub on 127.0.0.1 (asyncssh in-process, real git) holding an empty `memory.git`.

    The agent is hidden, so each simulated machine authenticates with its own key only.
    """
    from tests.hubserver import running_hub

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    async with running_hub(tmp_path / "hubroot") as running:
        yield running
