"""Installing the release as users do: `uv tool install anamnesis-memory` from a built wheel.

The distribution is `anamnesis-memory` (the name `anamnesis` on the package index is an
unrelated HDF5 library); the command it installs is `anamnesis`. This builds our wheel, installs
it with uv into a scratch tool directory (its dependencies from the package index, ours from the
wheel), and runs the README's first steps with the installed command on a scratch home.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import anamnesis

REPO = Path(__file__).resolve().parent.parent
SPEC = f"anamnesis-memory=={anamnesis.__version__}"
SYSTEM_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


def _run(argv: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    return done


@pytest.mark.slow
def test_uv_tool_install_from_the_built_wheel_gives_a_working_anamnesis(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv, "uv comes with the test extras"
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)], dict(os.environ))
    home = tmp_path / "user"
    home.mkdir()
    env = {
        **os.environ,  # the registry's address, certificates and proxy, as the machine has them
        "PATH": SYSTEM_PATH,  # a machine that never installed us
        "HOME": str(home),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_TOOL_DIR": str(tmp_path / "uv-tools"),
        "UV_TOOL_BIN_DIR": str(tmp_path / "bin"),
        "UV_FIND_LINKS": str(wheels),  # this release is not on the package index yet: our wheel stands in
        "UV_PYTHON": sys.executable,
    }
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "ANAMNESIS_HOME"):
        env.pop(name, None)

    _run([uv, "tool", "install", SPEC], env, timeout=600)

    command = str(tmp_path / "bin" / "anamnesis")
    assert _run([command, "--version"], env).stdout.strip().endswith(anamnesis.__version__)
    _run([command, "init"], env)
    note = ["--type", "procedural", "--title", "Configs over scripts", "We prefer configuration files."]
    _run([command, "write", *note], env)
    found = _run([command, "search", "which configuration style do we prefer"], env).stdout
    assert "Configs over scripts" in found
    assert (home / ".anamnesis" / "memory" / ".git").is_dir()  # the notes live in the git repo under ~/.anamnesis
    # The wheel carries the embedding model: the installed command embeds with it, no download.
    billing = ["--title", "Nightly export outage", "The nightly billing export died: the S3 credentials expired."]
    _run([command, "write", "--type", "semantic", *billing], env)
    assert "2/2 notes embedded" in _run([command, "reindex"], env, timeout=300).stdout
    assert "Nightly export outage" in _run([command, "search", "why did the invoices job fail"], env).stdout
