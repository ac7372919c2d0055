"""Commands that tidy the store: `dedup` and `import` (placeholder: registers nothing yet)."""

from __future__ import annotations

from typing import Any


def register(sub: Any, command: Any) -> None:
    """Add this layer's commands with `command(sub, name, summary, details, example, handler)`."""
