"""Commands of the sync layer, registered into the main parser by `register`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

CommandFactory = Callable[..., argparse.ArgumentParser]


def register(sub: Any, command: CommandFactory) -> None:
    """Add this layer's commands with `command(sub, name, summary, details, example, handler)`."""
