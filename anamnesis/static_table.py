"""Distilling the static table the hooks rank with, from the loaded model (long-lived processes).

Each of the tokenizer's 30,522 WordPiece pieces goes through the model alone (`[CLS] piece
[SEP]`) and keeps its mean-pooled vector (about 10-30 s, once per index). A piece's weight is
its inverse document frequency over the notes at distillation time; special tokens, punctuation
and stopwords weigh nothing. A note's static vector is the weighted mean of its pieces' vectors
(`note_static_vectors`), computed next to its dense vector. `static_recall.py` reads all of it
with the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from anamnesis.search import STOPWORDS

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from anamnesis.embedding import Vectors

    PieceVectors = npt.NDArray[np.float16]

DISTILL_BATCH = 512


class StaticTable:
    """The distilled piece vectors (normalised, float16 as the index stores them: a long-lived
    process keeps the table, and float32 would hold 47 MB instead of 23) and the weights,
    indexed by piece id. A note's vector is computed in float32 from the pieces it has."""

    def __init__(self, vectors: PieceVectors, weights: Sequence[float]) -> None:
        import numpy as np

        self.vectors = vectors
        self.weights = np.asarray(weights, dtype=np.float32)

    def note_vectors(self, sequences: Sequence[Sequence[int]]) -> Vectors:
        """The static vector of each id sequence: weighted mean of its pieces, L2-normalised."""
        import numpy as np

        out = np.zeros((len(sequences), self.vectors.shape[1]), dtype=np.float32)
        for row, ids in enumerate(sequences):
            chosen = np.asarray(ids, dtype=np.int64)
            weights = self.weights[chosen]
            total = (self.vectors[chosen] * weights[:, None]).sum(axis=0)
            norm = float(np.linalg.norm(total))
            if norm:
                out[row] = total / norm
        return out


def piece_batches(vocabulary: Sequence[str]) -> list[list[list[int]]]:
    """Every piece alone between [CLS] and [SEP], in batches (each one a short worker-thread call)."""
    cls_id, sep_id = vocabulary.index("[CLS]"), vocabulary.index("[SEP]")
    return [
        [[cls_id, i, sep_id] for i in range(start, min(start + DISTILL_BATCH, len(vocabulary)))]
        for start in range(0, len(vocabulary), DISTILL_BATCH)
    ]


def build(vocabulary: Sequence[str], vectors: Vectors, note_pieces: Sequence[Sequence[int]]) -> StaticTable:
    """The table from the pieces' pooled vectors; the notes' pieces give the IDF weights."""
    import numpy as np

    frequency = np.zeros(len(vocabulary), dtype=np.int64)
    for sequence in note_pieces:
        frequency[np.unique(np.asarray(sequence, dtype=np.int64))] += 1
    count = len(note_pieces)
    weights = [
        0.0 if _silent(piece) else math.log((count + 1) / (int(frequency[i]) + 1)) + 1.0
        for i, piece in enumerate(vocabulary)
    ]
    # Centred: every pooled piece vector shares one large common direction (cosines of unrelated
    # texts sat at 0.6-0.8); removing the mean leaves what tells pieces apart.
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    centred /= np.clip(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12, None)
    return StaticTable(centred.astype(np.float16), weights)


def _silent(piece: str) -> bool:
    """A piece that says nothing about a topic: special tokens, punctuation, stopwords."""
    if piece.startswith("[") and piece.endswith("]"):
        return True
    bare = piece.removeprefix("##")
    return not any(ch.isalnum() for ch in bare) or piece in STOPWORDS
