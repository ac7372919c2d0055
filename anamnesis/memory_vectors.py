"""The semantic half of `Memory`: load the embedding model, embed notes, lend and borrow it.

`Memory` inherits `MemoryVectors`; the vectors live in the index like the FTS rows, derived
from the notes and computed in the background by long-lived processes.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.to_thread

from anamnesis.config import Config
from anamnesis.errors import AnamnesisError
from anamnesis.hybrid import Semantic
from anamnesis.index import SearchIndex
from anamnesis.locks import release_file_lock, try_file_lock
from anamnesis.vectorizer import EmbedProgress, embed_pending

logger = logging.getLogger(__name__)

# A long-lived process looks for notes without a vector (written by other processes or pulled)
# at least this often, and at once after its own writes.
VECTOR_POLL_INTERVAL = 30.0


class MemoryVectors:
    """Semantic recall for one home: `semantic` is None when config turns it off."""

    config: Config
    semantic: Semantic | None
    _index: SearchIndex
    _written: anyio.Event

    # -- vectors (semantic recall) --------------------------------------------------------

    async def load_model(self) -> str | None:
        """Load the embedding model (once); None when ready, else why search stays lexical."""
        if self.semantic is None:
            return "semantic search is turned off in config.json (search.semantic)"
        if not self.semantic.ready and self.semantic.problem is None:
            await self.semantic.load()
        return self.semantic.problem

    async def embed_pending(self, progress: EmbedProgress | None = None, *, static: bool = True) -> int:
        """Give every note without a vector one (0 when the model is off or unavailable, or
        another process of this home is embedding right now: it will do them); with `static`,
        the hooks' static vectors too (distilling the static table first if there is none)."""
        if await self.load_model() is not None or self.semantic is None or self.semantic.embedder is None:
            return 0
        lock_path = self.config.layout.state_dir / "embedding.lock"
        fd = await anyio.to_thread.run_sync(try_file_lock, lock_path)
        if fd is None:
            return 0
        try:
            return await embed_pending(
                self._index, self.semantic.embedder, progress, static=static, copy=self.semantic.static_copy
            )
        finally:
            release_file_lock(fd)

    async def keep_vectors_fresh(self, start: anyio.Event | None = None) -> None:
        """Run for the life of a long-lived process: load the model once `start` is set, then
        embed what lacks a vector, after each write here and every VECTOR_POLL_INTERVAL."""
        if start is not None:
            await start.wait()
        if await self.load_model() is not None:
            return
        while True:
            self._written = anyio.Event()
            try:
                await self.embed_pending()
            except AnamnesisError as exc:  # a busy index: the next round retries
                logger.info("embedding deferred: %s", exc)
            with anyio.move_on_after(VECTOR_POLL_INTERVAL):
                await self._written.wait()

    async def lend_model(self) -> None:
        """Run for the life of the service: load the model and lend it to this home's other
        processes (`model_lending`), so each Claude Code session need not load its own."""
        from anamnesis.model_lending import lend, socket_path

        path = socket_path(self.config.layout)
        if path is None or await self.load_model() is not None or self.semantic is None:
            return
        assert self.semantic.embedder is not None
        await lend(self.semantic.embedder, path)

    async def borrow_model(self) -> bool:
        """Use the model the service lends, if one answers; then this process loads none."""
        from anamnesis.model_lending import borrowed_vector, socket_path

        path = socket_path(self.config.layout)
        if self.semantic is None or path is None or not await anyio.Path(path).exists():
            return False
        if await borrowed_vector(path, "ping") is None:
            return False
        self.semantic.lender = path
        return True

    async def recall_status(self) -> dict[str, Any]:
        """What `status`, `doctor` and the dashboard say about semantic search."""
        embedded, total = await self._index.embedding_counts()
        problem: str | None
        if self.semantic is None:
            state, problem = "off", "turned off in config.json (search.semantic = false)"
        else:
            problem = self.semantic.problem
            if problem is None and not self.semantic.ready:
                problem = await anyio.to_thread.run_sync(model_problem)
            state = "unavailable" if problem else "ready" if self.semantic.ready else "available"
        lent = self.semantic is not None and self.semantic.lender is not None
        return {"state": state, "problem": problem, "embedded": embedded, "notes": total, "lent": lent}


def semantic_enabled(config: Config) -> bool:
    """config.json `search.semantic` (default true): false keeps search lexical, loads no model."""
    return config.search.semantic


def model_problem() -> str | None:
    """Why the embedding model could not load here (file missing, wrong hash, no runtime), or
    None; checks without loading it (a short-lived process must not pay 0.3 s for `status`)."""
    import importlib.util

    from anamnesis.embedding import model_file, verify
    from anamnesis.errors import ModelUnavailableError

    try:
        verify(model_file())
    except ModelUnavailableError as exc:
        return str(exc)
    for module in ("onnxruntime", "tokenizers", "numpy"):
        if importlib.util.find_spec(module) is None:
            return f"the embedding runtime is not installed: no module named {module!r}"
    return None
