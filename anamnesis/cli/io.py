"""What a CLI command sees of its process: streams, environment, working directory.

Its own module so every command module (core and each layer's) can take it without importing
the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True, slots=True)
class IO:
    """The process's streams, environment and working directory, as the command sees them."""

    out: TextIO
    err: TextIO
    environ: Mapping[str, str]
    cwd: Path
    stdin: TextIO
