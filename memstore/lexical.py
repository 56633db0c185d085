"""Hybrid ranking: the embedding's order fused with a word match (BM25), for questions.

A question names what it asks about ("What book is Jon reading?"). In a bank of hundreds of
memories about the same two people, all-MiniLM-L6-v2 scores many of them close to the one that
names the book, and that one falls out of the ten an Answer Agent reads. BM25 (bm25s, English stop
words, Snowball stems) ranks by the words themselves; the two orders are fused by reciprocal rank
(Cormack et al. 2009, k = 60, equal weights), each contributing its first `POOL` memories. On the
trained policy's LoCoMo banks (conv-30 and conv-41, 233 questions), the share of questions with a
memory from an evidence turn among the ten shown: embedding 56.2%, BM25 57.1%, fused 64.4%
(docs/results/locomo.md). Hits keep their cosine as `score`, so thresholds on similarity keep
their meaning; only the order changes."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

RRF_K = 60  # the constant of reciprocal-rank fusion
POOL = 50   # memories each ranking contributes


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


def bm25_order(query: str, texts: Sequence[str], n: int = POOL) -> list[int]:
    """Indices of the texts sharing a word with the query, best BM25 score first (at most n)."""
    import bm25s

    words = _tokens([query])[0]
    if not words or not texts:
        return []
    index = bm25s.BM25()
    index.index(_tokens(texts), show_progress=False)
    scores = index.get_scores(words)
    top = np.argsort(-scores, kind="stable")[:n]
    return [int(i) for i in top if scores[i] > 0]


def fused_order(query: str, texts: Sequence[str], cosines: np.ndarray, k: int) -> list[int]:
    """The k best indices of `texts` by reciprocal-rank fusion of their cosine order and their
    BM25 order for `query`; ties keep the cosine order."""
    dense = np.argsort(-np.asarray(cosines), kind="stable")[:max(POOL, k)]
    fused: dict[int, float] = {}
    for rank, i in enumerate(dense):
        fused[int(i)] = 1.0 / (RRF_K + rank)
    for rank, i in enumerate(bm25_order(query, texts)):
        fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused, key=lambda i: -fused[i])[:k]
