"""Filling the index's note vectors in the background: what long-lived processes run.

Vectors are derived data like the FTS index: a note written, edited or pulled loses its vector
(an index trigger drops it) and gets a new one here, in batches, newest notes first. Search
never waits for this: a note without a vector is still found lexically. A vector computed from
a note that changed meanwhile is not stored (the content hash must still match).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio.to_thread

if TYPE_CHECKING:
    from anamnesis.embedding import Embedder
    from anamnesis.index import SearchIndex

BATCH_NOTES = 256

EmbedProgress = Callable[[int, int], None]


async def embed_pending(
    index: SearchIndex,
    embedder: Embedder,
    progress: EmbedProgress | None = None,
    batch: int = BATCH_NOTES,
) -> int:
    """Embed every note that has no vector yet; how many were stored. `progress(done, total)`."""
    done, total = await index.embedding_counts()
    stored = 0
    while True:
        pending = await index.pending_embeddings(batch)
        if not pending:
            return stored
        vectors = await anyio.to_thread.run_sync(embedder.embed, [text for _, _, text in pending])
        blobs = vectors.astype("float16")
        await index.store_embeddings(
            [(pk, digest, blobs[row].tobytes(), None) for row, (pk, digest, _) in enumerate(pending)]
        )
        stored += len(pending)
        if progress is not None:
            progress(min(done + stored, total), total)
        if len(pending) < batch:
            return stored
