"""Semantic reranking for the hooks, in the standard library only: a static table, no model.

A hook has ~150 ms in all and loading the model costs 0.3 s, so the hooks use a static
(model2vec-style) table distilled from the same model (`static_table.py` builds it, in the
index database): one vector per WordPiece piece, and per note the weighted mean of its pieces'
vectors. Here a prompt is split into pieces exactly as the model's tokenizer does (BERT
normalisation, punctuation split, greedy longest-match WordPiece; the pieces' membership is
looked up in SQLite, one query), its vector is the weighted mean of theirs, and the lexical
top 100 are reranked by fusing BM25 with that cosine. Everything here is a read plan
(`anamnesis.queries`), so it runs on the hooks' plain sqlite3 connection.
"""

from __future__ import annotations

import math
import struct
import unicodedata
from collections.abc import Container, Sequence
from dataclasses import dataclass

from anamnesis.queries import Plan, candidates_plan, hits_plan
from anamnesis.search import DEFAULT_LIMIT, MAX_LIMIT, Hit, SearchFilters, build_query, clamp_limit

DIMENSIONS = 384
RERANK_DEPTH = 100
LEXICAL_WEIGHT = 0.5
MAX_WORD_CHARS = 48  # longer "words" (hashes, base64) are [UNK] to the model anyway
MAX_PIECES = 256
MAX_WORDS = 200  # a pasted log says no more about the topic than its first 200 words


def basic_tokens(text: str) -> list[str]:
    """BERT's basic tokenizer (uncased): lower-case, strip accents, split on space and punctuation."""
    text = unicodedata.normalize("NFD", text.lower())
    out: list[str] = []
    word: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Mn" or char == "\ufffd" or (category.startswith("C") and char not in "\t\n\r"):
            continue
        if char.isspace():
            if word:
                out.append("".join(word))
                word = []
        elif _is_punctuation(char, category) or _is_cjk(ord(char)):
            if word:
                out.append("".join(word))
                word = []
            out.append(char)
        else:
            word.append(char)
    if word:
        out.append("".join(word))
    return out


def _is_punctuation(char: str, category: str) -> bool:
    code = ord(char)
    return (33 <= code <= 47) or (58 <= code <= 64) or (91 <= code <= 96) or (123 <= code <= 126) or category[0] == "P"


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def candidate_pieces(words: Sequence[str]) -> set[str]:
    """Every piece greedy WordPiece could ask about for these words (prefixes and ##-infixes)."""
    wanted: set[str] = set()
    for word in words:
        if len(word) > MAX_WORD_CHARS:
            continue
        for start in range(len(word)):
            for end in range(start + 1, len(word) + 1):
                wanted.add(word[start:end] if start == 0 else "##" + word[start:end])
    return wanted


def wordpiece(words: Sequence[str], vocabulary: Container[str]) -> list[str]:
    """Greedy longest-match-first WordPiece over `vocabulary`; a word it cannot split is skipped
    (the model would see [UNK], which says nothing about the topic)."""
    pieces: list[str] = []
    for word in words:
        if len(word) > MAX_WORD_CHARS:
            continue
        start, found = 0, list[str]()
        while start < len(word):
            end = len(word)
            piece = None
            while start < end:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                if candidate in vocabulary:
                    piece = candidate
                    break
                end -= 1
            if piece is None:
                found = []
                break
            found.append(piece)
            start = end
        pieces.extend(found)
    return pieces[:MAX_PIECES]


def unpack(blob: bytes) -> tuple[float, ...]:
    """A float16 vector blob as floats."""
    return struct.unpack(f"<{len(blob) // 2}e", blob)


def static_vector_plan(text: str) -> Plan[tuple[float, ...] | None]:
    """The static vector of `text` (L2-normalised), or None when no piece of it is known."""
    words = basic_tokens(text)[:MAX_WORDS]
    wanted = sorted(candidate_pieces(words))
    if not wanted:
        return None
    known: dict[str, tuple[float, bytes]] = {}
    for start in range(0, len(wanted), 900):
        part = wanted[start : start + 900]
        rows = yield (
            f"SELECT piece, weight, vector FROM static_pieces WHERE piece IN ({', '.join('?' * len(part))})",
            part,
        )
        known.update({row[0]: (float(row[1]), bytes(row[2])) for row in rows})
    if not known:
        return None
    total = [0.0] * DIMENSIONS
    for piece in wordpiece(words, known.keys()):
        weight, blob = known[piece]
        if weight <= 0:
            continue
        for i, value in enumerate(unpack(blob)):
            total[i] += weight * value
    norm = math.sqrt(sum(v * v for v in total))
    return tuple(v / norm for v in total) if norm else None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One reranked note: BM25 (higher is better), static cosine (None: no vector yet), fused score."""

    pk: int
    bm25: float
    cosine: float | None
    strict: bool
    fused: float


def static_rank_plan(text: str, filters: SearchFilters, depth: int = RERANK_DEPTH) -> Plan[list[Candidate]]:
    """The lexical top `depth` reranked by BM25 fused with static cosine (min-max, 0.5/0.5); plain
    lexical order (strict matches first) where there is no static table or no note vector yet."""
    query = build_query(text)
    if query is None:
        return []
    found = yield from candidates_plan(query, filters, depth)
    lexical, strict_pks, order = found.scores, found.strict, list(found.order)
    cosines: dict[int, float] = {}
    if lexical:
        query_vector = yield from static_vector_plan(text)
        if query_vector is not None:
            pks = list(lexical)
            rows = yield (
                f"SELECT note_pk, static FROM note_vectors WHERE static IS NOT NULL "
                f"AND note_pk IN ({', '.join('?' * len(pks))})",
                pks,
            )
            for pk, blob in rows:
                cosines[int(pk)] = sum(a * b for a, b in zip(query_vector, unpack(bytes(blob)), strict=True))
    if cosines:
        fused = _fuse(lexical, cosines)
        order.sort(key=lambda pk: -fused[pk])
    else:
        fused = {pk: 1.0 - rank / len(order) for rank, pk in enumerate(order)}
    return [Candidate(pk, lexical[pk], cosines.get(pk), pk in strict_pks, fused[pk]) for pk in order]


def static_search_plan(
    text: str, filters: SearchFilters = SearchFilters(), limit: int | None = DEFAULT_LIMIT, max_limit: int = MAX_LIMIT
) -> Plan[list[Hit]]:
    """Hits in `static_rank_plan`'s order, at most `limit`."""
    wanted = clamp_limit(limit, max_limit)
    query = build_query(text)
    if query is None:
        return []
    candidates = yield from static_rank_plan(text, filters)
    ranked = [(c.pk, c.fused, "strict" if c.strict else "relaxed") for c in candidates[:wanted]]
    hits = yield from hits_plan(ranked, query.relaxed)
    return hits


def _fuse(lexical: dict[int, float], cosines: dict[int, float]) -> dict[int, float]:
    fused = {}
    low, high = min(lexical.values()), max(lexical.values())
    c_low, c_high = min(cosines.values()), max(cosines.values())
    for pk, score in lexical.items():
        lex = (score - low) / (high - low) if high > low else 1.0
        cos = (cosines[pk] - c_low) / (c_high - c_low) if pk in cosines and c_high > c_low else 0.0
        fused[pk] = LEXICAL_WEIGHT * lex + (1 - LEXICAL_WEIGHT) * cos
    return fused
