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
from anamnesis.queries import STATIC_TABLE_KEY, index_stamp_plan

if TYPE_CHECKING:
    from anamnesis.embedding import Embedder
    from anamnesis.index import SearchIndex
    from anamnesis.static_table import StaticTable

BATCH_NOTES = 64  # one worker-thread call each: a few seconds at most, so cancellation is prompt

EmbedProgress = Callable[[int, int], None]


class StaticTableCopy:
    """A long-lived process's copy of its index's static table, and the `STATIC_TABLE_KEY` it
    was read at. Such a process embeds after each write, and reading the 30k pieces again took
    ~0.1 s, most of it on the event loop, where it held up the process's searches."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.table: StaticTable | None = None


async def embed_pending(
    index: SearchIndex,
    embedder: Embedder,
    progress: EmbedProgress | None = None,
    batch: int = BATCH_NOTES,
    static: bool = True,
    copy: StaticTableCopy | None = None,
) -> int:
    """Embed every note that has no vector yet; how many were stored. `progress(done, total)`;
    `copy` keeps the static table between calls."""
    stored = 0
    table: StaticTable | None = None
    while True:
        before = await index.run(index_stamp_plan())
        pending = await index.pending_embeddings(with_static=static)
        if not pending:
            break
        total = await index.note_count()
        done = total - len(pending)
        if table is None and static:
            table = await static_table(index, embedder, copy)
        this_pass = 0
        for start in range(0, len(pending), batch):
            rows = await index.embedding_texts(pending[start : start + batch])
            if rows:
                await _embed_batch(index, embedder, table, rows)
                this_pass += len(rows)
            if progress is not None:
                progress(min(done + this_pass, total), total)
        stored += this_pass
        # Walk again only when another process committed meanwhile (it may have written notes)
        # and this pass got somewhere; this process's own writes wake its caller anyway.
        if not this_pass or (await index.run(index_stamp_plan()))[1] == before[1]:
            break
    if stored > batch:
        await anyio.to_thread.run_sync(release_memory)
    return stored


async def _embed_batch(
    index: SearchIndex, embedder: Embedder, table: StaticTable | None, rows: list[tuple[int, str, str]]
) -> None:
    """Embed one batch of (pk, hash, text) in a worker thread and store the vectors."""

    def compute() -> list[tuple[bytes, bytes | None]]:
        ids = embedder.piece_ids([text or " " for _, _, text in rows])  # tokenised once for both
        dense = embedder.embed_pieces(ids).astype("float16")
        if table is None:
            return [(row.tobytes(), None) for row in dense]
        pieces = table.note_vectors(ids).astype("float16")
        return [(row.tobytes(), piece.tobytes()) for row, piece in zip(dense, pieces, strict=True)]

    vectors = await anyio.to_thread.run_sync(compute)
    await index.store_embeddings([(pk, digest, d, s) for (pk, digest, _), (d, s) in zip(rows, vectors, strict=True)])


async def static_table(index: SearchIndex, embedder: Embedder, copy: StaticTableCopy | None = None) -> StaticTable:
    """The index's static table: `copy`'s while the index's is the one it read, else read from
    the index, or distilled (and stored) first if the index has none."""
    import numpy as np

    from anamnesis.static_table import StaticTable, build, piece_batches

    key = await index.get_meta(STATIC_TABLE_KEY)
    if copy is not None and copy.table is not None and key is not None and copy.key == key:
        return copy.table
    rows = await index.static_pieces()
    vocabulary = await anyio.to_thread.run_sync(embedder.vocabulary)
    if len(rows) == len(vocabulary):

        def unpack() -> StaticTable:
            by_piece = {piece: (weight, blob) for piece, weight, blob in rows}
            weights = [by_piece[piece][0] for piece in vocabulary]
            matrix = np.frombuffer(b"".join(by_piece[piece][1] for piece in vocabulary), dtype=np.float16)
            return StaticTable(matrix.reshape(len(vocabulary), -1), weights)

        table = await anyio.to_thread.run_sync(unpack)
    else:
        pooled = [await anyio.to_thread.run_sync(embedder.embed_pieces, batch) for batch in piece_batches(vocabulary)]
        texts = [text for _, _, text in await index.embedding_texts(await index.pending_embeddings(with_static=True))]
        note_pieces = await anyio.to_thread.run_sync(embedder.piece_ids, texts) if texts else []
        table = build(vocabulary, np.concatenate(pooled), note_pieces)
        await index.store_static_pieces(
            [(piece, float(table.weights[i]), table.vectors[i].tobytes()) for i, piece in enumerate(vocabulary)]
        )
        key = await index.get_meta(STATIC_TABLE_KEY)
    if copy is not None:
        copy.key, copy.table = key, table
    return table
