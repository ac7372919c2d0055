"""Hybrid ranking, in one place: lexical BM25 and sentence vectors fused into one list.

Every surface that searches (MCP `memory_search`, `anamnesis search`, the dashboard, the eval
harness) comes through `hybrid_search`. Without a model (not installed, failed to load, turned
off in config, or not loaded yet) it is exactly the lexical search; notes without a vector yet
are still found lexically. The fusion was chosen by measurement (bench/bench_fusion.py, on the
shipped eval set and BEIR SciFact with cross-validation):

- lexical candidates: the strict (AND) and relaxed (OR) top `depth` by BM25;
- dense candidates: the top `depth` by cosine within the same filters, with the query's words
  that stand in more than `common_share` of the notes of the searched projects dropped before
  embedding (a project's own name or a person's says nothing about which of its notes is meant);
- each list's scores min-max normalised over its candidates, then weighted and summed (a note
  absent from a list gets 0 there), 0.5/0.5. Reciprocal-rank fusion (k=60: eval recall@5 0.866,
  SciFact nDCG@10 0.707; k=5: 0.921, 0.718) and other weights did worse on one set or the other.

Snippets are fetched only for the final `limit` hits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from anamnesis.queries import (
    Candidates,
    Rows,
    Within,
    candidates_plan,
    dense_vectors_page_plan,
    dense_vectors_plan,
    hits_plan,
    index_stamp_plan,
    scope_plan,
    search,
    term_notes_plan,
    vector_keys_plan,
)
from anamnesis.search import DEFAULT_LIMIT, MAX_LIMIT, Hit, SearchFilters, build_query, clamp_limit
from anamnesis.vectorizer import StaticTableCopy

if TYPE_CHECKING:
    from anamnesis.embedding import Embedder
    from anamnesis.index import SearchIndex


@dataclass(frozen=True, slots=True)
class Fusion:
    """How the two lists are fused (the defaults are what the measurements chose)."""

    lexical_weight: float = 0.5
    depth: int = 50
    common_share: float = 0.2
    method: str = "minmax"  # or "rrf"
    rrf_k: float = 60.0
    strict_bonus: float = 0.0


DEFAULT_FUSION = Fusion()
DIMENSIONS = 384
VECTOR_PAGE = 4096  # vectors read at a time on a first load


class VectorCache:
    """Every note vector of the index as one float32 matrix, kept in step with the index.

    Built once (float16 blobs converted to float32 here, not per query), then updated in place:
    when the index's vector generation moves, only the (pk, hash) keys are read, and only the
    vectors that came or changed are fetched; rows of vectors that went are zeroed and reused.
    A row's place never moves, so `rows` maps a note's pk to its row for as long as it has one.
    """

    def __init__(self) -> None:
        import numpy as np

        self.generation: int | None = None
        self.matrix = np.zeros((0, DIMENSIONS), dtype=np.float32)
        self.pks = np.zeros(0, dtype=np.int64)  # -1 in a free row
        self.rows: dict[int, int] = {}
        self.hashes: dict[int, str] = {}
        self._free: list[int] = []
        self._used = 0

    @property
    def used(self) -> Any:
        """The matrix's rows that have ever held a vector (free ones are zero: they score 0)."""
        return self.matrix[: self._used]

    async def refresh(self, index: SearchIndex) -> None:
        """Catch up with the index: a cheap generation check when nothing changed."""
        generation, keys = await index.run(vector_keys_plan(self.generation))
        if keys is None:
            return
        current = {int(pk): str(digest) for pk, digest in keys}
        for pk in [pk for pk, digest in self.hashes.items() if current.get(pk) != digest]:
            self._drop(pk)
        wanted = [pk for pk in current if pk not in self.rows]
        if wanted:
            self._reserve(len(wanted))
            if len(wanted) == len(current):  # the first load: every vector, page by page
                after = -1
                while page := await index.run(dense_vectors_page_plan(after, VECTOR_PAGE)):
                    self._put_rows(page)
                    after = int(page[-1][0])
            else:
                for start in range(0, len(wanted), 500):
                    self._put_rows(await index.run(dense_vectors_plan(wanted[start : start + 500])))
        self.generation = generation

    def _reserve(self, coming: int) -> None:
        """Room for `coming` more vectors, grown once to fit (doubling left up to half the
        matrix allocated and zeroed for nothing: 47 MB at 100k)."""
        import numpy as np

        needed = self._used + max(0, coming - len(self._free))
        if needed <= len(self.matrix):
            return
        grown = needed + 1024  # a little room for the notes written next
        self.matrix = np.resize(self.matrix, (grown, DIMENSIONS))
        self.matrix[self._used :] = 0.0
        self.pks = np.resize(self.pks, grown)
        self.pks[self._used :] = -1

    def _put_rows(self, rows: Rows) -> None:
        for pk, digest, blob in rows:
            self._put(int(pk), str(digest), blob)

    def _put(self, pk: int, digest: str, blob: bytes) -> None:
        import numpy as np

        if pk in self.rows:
            self._drop(pk)
        if self._free:
            row = self._free.pop()
        else:
            self._reserve(1)
            row = self._used
            self._used += 1
        self.matrix[row] = np.frombuffer(blob, dtype=np.float16)
        self.pks[row] = pk
        self.rows[pk] = row
        self.hashes[pk] = digest

    def _drop(self, pk: int) -> None:
        row = self.rows.pop(pk)
        del self.hashes[pk]
        self.matrix[row] = 0.0
        self.pks[row] = -1
        self._free.append(row)


class Semantic:
    """The semantic side of one long-lived process: the model once loaded, and the vectors.

    `embedder` is None until `load` succeeds; `problem` says why it did not (shown by
    `status`, `doctor` and the dashboard). `vectors` is read whole once, then only what came
    or changed when the index's vector generation moves (any process embedded or dropped some).
    """

    def __init__(self, embedder: Embedder | None = None, problem: str | None = None) -> None:
        self.embedder = embedder
        self.problem = problem
        self._lender: Path | None = None
        self.lender_lost = anyio.Event()
        self.vectors = VectorCache()
        self.static_copy = StaticTableCopy()  # the hooks' table, kept between embedding rounds
        self._scopes: dict[SearchFilters, Scope] = {}
        self._loading = anyio.Lock()

    @property
    def lender(self) -> Path | None:
        """The socket of the process that lends its model to this one, if one does."""
        return self._lender

    @lender.setter
    def lender(self, path: Path | None) -> None:
        if path is not None and self.lender_lost.is_set():
            self.lender_lost = anyio.Event()  # borrowing again: the next loss is news
        self._lender = path

    @property
    def ready(self) -> bool:
        return self.embedder is not None or self.lender is not None

    async def query_vector(self, text: str) -> Any | None:
        """The query's vector from the model here or the one the service lends (None: no answer)."""
        if self.embedder is not None:
            return await anyio.to_thread.run_sync(self.embedder.embed_one, text)
        if self.lender is not None:
            from anamnesis.model_lending import borrowed_vector

            vector = await borrowed_vector(self.lender, text)
            if vector is None:  # the service stopped: lexical until a model is loaded here
                self.lender = None
                self.lender_lost.set()
            return vector
        return None

    async def load(self) -> None:
        """Load the model in a worker thread, once however many tasks ask; on failure record
        why (search stays lexical)."""
        from anamnesis.embedding import load_embedder
        from anamnesis.errors import ModelUnavailableError

        async with self._loading:
            if self.embedder is not None or self.problem is not None:
                return
            try:
                self.embedder = await anyio.to_thread.run_sync(load_embedder)
            except ModelUnavailableError as exc:
                self.problem = str(exc)

    async def scope_rows(self, index: SearchIndex, filters: SearchFilters) -> tuple[VectorCache, Scope]:
        """The vectors and what `filters` admit of them; read again only when the index changed
        (any process's commit, or a new vector)."""
        import numpy as np

        stamp = await index.run(index_stamp_plan())
        vectors = self.vectors
        if stamp[0] != vectors.generation:
            await vectors.refresh(index)
        cached = self._scopes.get(filters)
        if cached is not None and cached.stamp == stamp:
            return vectors, cached
        admitted, total = await index.run(scope_plan(filters))
        pks = np.sort(np.asarray(admitted, dtype=np.int64))
        if len(pks) == len(vectors.rows) and all(pk in vectors.rows for pk in pks.tolist()):
            rows = None  # every vector is in scope: score the whole matrix, no gather
        else:
            rows = np.asarray([vectors.rows[pk] for pk in pks.tolist() if pk in vectors.rows], dtype=np.int64)
        if len(self._scopes) > 32:
            self._scopes.clear()
        scope = self._scopes[filters] = Scope(stamp, rows, pks, total)
        return vectors, scope


# Below this share of the store a scope is ranked with the join (see Scope.within).
WITHIN_SHARE = 0.05


@dataclass(slots=True)
class Scope:
    """What one filter admits as of one index stamp: the vector matrix's rows (None: every
    row), the notes' pks (sorted), and the words counted among them (word -> notes)."""

    stamp: tuple[int, int, int]
    rows: Any
    pks: Any
    store_size: int  # notes in the index, admitted or not
    term_counts: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.pks)

    def within(self) -> Within | None:
        """This scope for ranking in FTS5 alone (`queries.ranked_plan`); None when it holds so
        small a share of the store that joining each match to test the filters costs less."""
        share = self.size / max(self.store_size, 1)
        return Within(self.admits, share) if share >= WITHIN_SHARE else None

    def admits(self, candidates: list[int]) -> list[bool]:
        """Which of `candidates` (pks) this scope holds."""
        import numpy as np

        return self._holds(np.asarray(candidates, dtype=np.int64)).tolist()  # type: ignore[no-any-return]

    async def common_terms(self, index: SearchIndex, terms: tuple[str, ...], cap: int) -> set[str]:
        """The `terms` held by more than `cap` of this scope's notes.

        A word's notes come from its FTS5 doclist alone and are counted here against the scope's
        sorted pks (a membership test in numpy), so a word frequent across the store but rare
        in the project costs a doclist walk, not a join per note. A process's searches reuse
        their words, so the counts stay with the scope, which is read again when the index
        changes.
        """
        import numpy as np

        counted = self.term_counts
        if len(counted) > 4096:
            counted.clear()
        unknown = tuple(term for term in terms if term not in counted)
        if unknown:
            for term, listed in zip(unknown, await index.run(term_notes_plan(unknown)), strict=True):
                held = self._holds(np.fromstring(listed or "", dtype=np.int64, sep=","))
                counted[term] = int(np.count_nonzero(held))
        return {term for term in terms if counted[term] > cap}

    def _holds(self, candidates: Any) -> Any:
        """For each pk of `candidates` (an int64 array), whether this scope holds it."""
        import numpy as np

        if not len(self.pks):
            return np.zeros(len(candidates), dtype=bool)
        at = np.minimum(np.searchsorted(self.pks, candidates), len(self.pks) - 1)
        return self.pks[at] == candidates


async def hybrid_search(
    index: SearchIndex,
    text: str,
    filters: SearchFilters = SearchFilters(),
    limit: int | None = DEFAULT_LIMIT,
    semantic: Semantic | None = None,
    *,
    max_limit: int = MAX_LIMIT,
    fusion: Fusion = DEFAULT_FUSION,
) -> list[Hit]:
    """Ranked hits for `text`: fused lexical and vector scores, or lexical alone without a model."""
    if semantic is None or not semantic.ready:
        return await search(index, text, filters, limit, max_limit=max_limit)
    wanted = clamp_limit(limit, max_limit)
    query = build_query(text)
    if query is None:
        return []
    depth = max(fusion.depth, wanted)
    vectors, admitted = await semantic.scope_rows(index, filters)
    scope = await _dense_scope(index, vectors, admitted, text, query.terms, filters, fusion)
    within = admitted.within()
    found: list[Candidates] = []

    async def lexical_side() -> None:  # SQLite ranks lexically while the query is embedded
        found.append(await index.run(candidates_plan(query, filters, depth, within)))

    query_vector = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lexical_side)
        if scope is not None:
            query_vector = await semantic.query_vector(scope.text)
    dense = _dense_scores(scope, query_vector, depth) if scope is not None else {}
    lexical, strict_pks = found[0].scores, set(found[0].strict)
    fused = fuse(lexical, dense, fusion, strict_pks)
    ranked = sorted(fused.items(), key=lambda item: -item[1])[:wanted]
    matches = [(pk, score, _match(pk, strict_pks, lexical)) for pk, score in ranked]
    return await index.run(hits_plan(matches, query.relaxed))


def _match(pk: int, strict: set[int], lexical: dict[int, float]) -> str:
    return "strict" if pk in strict else "relaxed" if pk in lexical else "semantic"


@dataclass(frozen=True, slots=True)
class _DenseScope:
    text: str  # what is embedded: the query without the scope's common words
    vectors: VectorCache
    rows: Any  # the matrix rows within the filters; None: every vector


async def _dense_scope(
    index: SearchIndex,
    vectors: VectorCache,
    scope: Scope,
    text: str,
    terms: tuple[str, ...],
    filters: SearchFilters,
    fusion: Fusion,
) -> _DenseScope | None:
    """The vectors in scope and the text to embed (None: no vector in scope)."""
    if not (len(vectors.rows) if scope.rows is None else len(scope.rows)):
        return None
    cap = int(fusion.common_share * scope.size)
    common: set[str] = set()
    if len(terms) > 1 and filters.projects:  # a project's own words; across all, few are that common
        common = await scope.common_terms(index, terms, cap)
    return _DenseScope(dense_query(text, common), vectors, scope.rows)


def _dense_scores(scope: _DenseScope, query_vector: Any | None, depth: int) -> dict[int, float]:
    """Cosine of the best `depth` notes in scope to the query."""
    import numpy as np

    if query_vector is None:
        return {}
    vectors, rows = scope.vectors, scope.rows
    # One pass over the whole matrix, then the scope's rows: cheaper than gathering (copying)
    # the scope's rows first. Free rows are zero and out of any scope.
    scores = _scores(vectors.used, query_vector)
    if rows is None:
        rows = np.flatnonzero(vectors.pks[: len(scores)] >= 0)
    scores = scores[rows]
    top = np.argpartition(-scores, depth)[:depth] if len(scores) > depth else np.arange(len(scores))
    return {int(vectors.pks[rows[i]]): float(scores[i]) for i in top}


# Rows per BLAS call. OpenBLAS splits a larger matrix-vector product over threads that then
# spin, and on a busy machine that took 17-22 ms over 10k vectors; a block this size stays on
# the calling thread. Measured over 100k vectors, quiet machine: 6.9 ms in blocks, 12-15 ms with
# einsum's loops (one thread), 3.2 ms unblocked (two threads, and two spinning afterwards).
_SCORE_BLOCK = 1024


def _scores(matrix: Any, query_vector: Any) -> Any:
    """`matrix @ query_vector` on the calling thread, block by block."""
    import numpy as np

    query_vector = np.asarray(query_vector, dtype=matrix.dtype)
    scores = np.empty(len(matrix), dtype=matrix.dtype)
    for start in range(0, len(matrix), _SCORE_BLOCK):
        np.dot(matrix[start : start + _SCORE_BLOCK], query_vector, out=scores[start : start + _SCORE_BLOCK])
    return scores


def dense_query(text: str, common: set[str]) -> str:
    """`text` without the words in `common` (matched lower-cased); the text itself if none remain."""
    import re

    if not common:
        return text
    kept = [word for word in re.findall(r"\w+", text) if word.lower() not in common]
    return " ".join(kept) if kept else text


def fuse(lexical: dict[int, float], dense: dict[int, float], fusion: Fusion, strict: set[int]) -> dict[int, float]:
    """One score per candidate from the two lists (see the module docstring)."""
    fused: dict[int, float] = {}
    weight = fusion.lexical_weight
    if fusion.method == "rrf":
        for scores, w in ((lexical, weight), (dense, 1.0 - weight)):
            order = sorted(scores, key=lambda pk: -scores[pk])
            for rank, pk in enumerate(order, start=1):
                fused[pk] = fused.get(pk, 0.0) + w / (fusion.rrf_k + rank)
        return fused
    for scores, w in ((lexical, weight), (dense, 1.0 - weight)):
        if not scores:
            continue
        low, high = min(scores.values()), max(scores.values())
        for pk, score in scores.items():
            fused[pk] = fused.get(pk, 0.0) + w * ((score - low) / (high - low) if high > low else 1.0)
    if fusion.strict_bonus:
        for pk in strict:
            fused[pk] = fused.get(pk, 0.0) + fusion.strict_bonus
    return fused
