"""Filling the index's note vectors in the background: what long-lived processes run.

Vectors are derived data like the FTS index: a note written, edited or pulled loses its vector
(an index trigger drops it) and gets a new one here, in batches, newest notes first. Search
never waits for this: a note without a vector is still found lexically. A vector computed from
a note that changed meanwhile is not stored (the content hash must still match).

Each note gets the model's vector (dense, for long-lived processes) and, with `static`, the
static table's (for the hooks, which cannot load the model); the static table is then distilled
first if the index has none yet (10-30 s of CPU, once per index).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio.to_thread

from anamnesis.embedding import release_memory

if TYPE_CHECKING:
    from anamnesis.embedding import Embedder
    from anamnesis.index import SearchIndex
    from anamnesis.static_table import StaticTable

BATCH_NOTES = 64  # one worker-thread call each: a few seconds at most, so cancellation is prompt
ALL_NOTES = 1_000_000

EmbedProgress = Callable[[int, int], None]


async def embed_pending(
    index: SearchIndex,
    embedder: Embedder,
    progress: EmbedProgress | None = None,
    batch: int = BATCH_NOTES,
    static: bool = True,
) -> int:
    """Embed every note that has no vector yet; how many were stored. `progress(done, total)`."""
    done, total = await index.embedding_counts()
    stored = 0
    table: StaticTable | None = None
    while True:
        pending = await index.pending_embeddings(batch, with_static=static)
        if not pending:
            break
        if table is None and static:
            table = await static_table(index, embedder)
        texts = [text for _, _, text in pending]

        def compute(texts: list[str] = texts, table: StaticTable | None = table) -> list[tuple[bytes, bytes | None]]:
            ids = embedder.piece_ids([text or " " for text in texts])  # tokenised once for both
            dense = embedder.embed_pieces(ids).astype("float16")
            if table is None:
                return [(row.tobytes(), None) for row in dense]
            pieces = table.note_vectors(ids).astype("float16")
            return [(row.tobytes(), piece.tobytes()) for row, piece in zip(dense, pieces, strict=True)]

        vectors = await anyio.to_thread.run_sync(compute)
        await index.store_embeddings(
            [(pk, digest, d, s) for (pk, digest, _), (d, s) in zip(pending, vectors, strict=True)]
        )
        stored += len(pending)
        if progress is not None:
            progress(min(done + stored, total), total)
        if len(pending) < batch:
            break
    if stored > batch:
        await anyio.to_thread.run_sync(release_memory)
    return stored


async def static_table(index: SearchIndex, embedder: Embedder) -> StaticTable:
    """The index's static table, distilled (and stored) first if it has none."""
    import numpy as np

    from anamnesis.static_table import StaticTable, build, piece_batches

    rows = await index.static_pieces()
    vocabulary = await anyio.to_thread.run_sync(embedder.vocabulary)
    if len(rows) == len(vocabulary):
        by_piece = {piece: (weight, blob) for piece, weight, blob in rows}
        weights = [by_piece[piece][0] for piece in vocabulary]
        matrix = np.frombuffer(b"".join(by_piece[piece][1] for piece in vocabulary), dtype=np.float16)
        return StaticTable(matrix.reshape(len(vocabulary), -1).astype(np.float32), weights)
    pooled = [await anyio.to_thread.run_sync(embedder.embed_pieces, batch) for batch in piece_batches(vocabulary)]
    texts = [text for _, _, text in await index.pending_embeddings(ALL_NOTES, with_static=True)]
    note_pieces = await anyio.to_thread.run_sync(embedder.piece_ids, texts) if texts else []
    table = build(vocabulary, np.concatenate(pooled), note_pieces)
    packed = table.vectors.astype(np.float16)
    await index.store_static_pieces(
        [(piece, float(table.weights[i]), packed[i].tobytes()) for i, piece in enumerate(vocabulary)]
    )
    return table
