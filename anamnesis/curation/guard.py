"""The eval guard: a curation change that lowers search recall@5 is refused unless forced.

A change (reflection's new notes, dedup's superseding) is tried first on a scratch copy of
the store, scored with the eval harness before and after, and only then made for real. The
change is a function of a `Memory`, so the trial and the real run do the same thing. With no
eval set there is nothing to measure: the change goes ahead and the result says so.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import anyio.to_thread

from anamnesis.config import Config, Layout
from anamnesis.errors import CurationRefusedError
from anamnesis.evaluation import EvalCase, default_eval_path, load_eval_set
from anamnesis.home import init_home
from anamnesis.memory import Memory, open_memory

T = TypeVar("T")
GUARD_K = 5
TOLERANCE = 1e-9  # recall is a ratio of small integers: equal is equal


@dataclass(frozen=True, slots=True)
class Guarded(Generic[T]):
    """What the change returned on the real store, and the recall it was judged by."""

    value: T
    eval_path: Path
    recall_before: float | None  # None: no eval set, nothing was measured
    recall_after: float | None
    forced: bool = False

    def describe(self) -> str:
        if self.recall_before is None or self.recall_after is None:
            return f"eval guard: no eval set at {self.eval_path}, so recall was not checked"
        verdict = "forced" if self.forced and self.recall_after < self.recall_before - TOLERANCE else "ok"
        return f"eval guard: recall@{GUARD_K} {self.recall_before:.3f} → {self.recall_after:.3f} ({verdict})"


async def guarded_apply(
    config: Config,
    change: Callable[[Memory], Awaitable[T]],
    *,
    force: bool = False,
    eval_path: Path | None = None,
) -> Guarded[T]:
    """Run `change` on the real memory, after a trial run on a copy shows it keeps recall@5.

    Raises `CurationRefusedError` (and changes nothing) when the trial lowers recall and
    `force` is false. `change` must not depend on anything but the memory it is given.
    """
    path = eval_path or default_eval_path(config.home)
    cases = await _cases(path)
    if not cases:
        async with open_memory(config) as memory:
            value = await change(memory)
        return Guarded(value, path, None, None, force)
    async with open_memory(config) as memory:
        await memory.ensure_fresh()
        before = (await memory.evaluate(cases)).recall[GUARD_K]
    after = await _trial(config, change, cases)
    if after < before - TOLERANCE and not force:
        raise CurationRefusedError(before, after, path, k=GUARD_K)
    async with open_memory(config) as memory:
        value = await change(memory)
    return Guarded(value, path, before, after, force)


async def _cases(path: Path) -> list[EvalCase]:
    if not await anyio.Path(path).is_file():
        return []
    return await anyio.to_thread.run_sync(load_eval_set, path)


async def _trial(config: Config, change: Callable[[Memory], Awaitable[object]], cases: list[EvalCase]) -> float:
    """recall@5 after `change` on a scratch copy of this home's notes (its own git and index)."""
    with tempfile.TemporaryDirectory(prefix="anamnesis-guard-") as scratch:
        layout = Layout(Path(scratch) / "home")
        await init_home(layout, config.machine_id)
        await anyio.to_thread.run_sync(_copy_notes, config.layout, layout)
        trial_config = dataclasses.replace(config, layout=layout, remote=None, peers=())
        async with open_memory(trial_config) as memory:
            await memory.commit_pending("anamnesis: copy of the store for the eval guard")
            await memory.reindex(full=True)
            await change(memory)
            await memory.ensure_fresh()
            return (await memory.evaluate(cases)).recall[GUARD_K]


def _copy_notes(source: Layout, target: Layout) -> None:
    for name in ("memory", "local"):
        origin = source.home / name
        if not origin.is_dir():
            continue
        for note in origin.glob("*/*.md"):
            if note.is_symlink() or note.parent.is_symlink():
                continue  # the store never follows a link; neither does its copy
            destination = target.home / name / note.relative_to(origin)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(note, destination)
