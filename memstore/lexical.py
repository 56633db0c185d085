"""Hybrid ranking for questions: the embedding's order, its tail filled by a word match (BM25).

A question names what it asks about ("What book is Jon reading?"). In a bank of hundreds of
memories about the same two people, all-MiniLM-L6-v2 scores many of them close to the one that
names the book, and that one falls out of the ten an Answer Agent reads. BM25 (bm25s, English stop
words, Snowball stems) ranks by the words themselves. The embedding keeps the head of the list and
the word match fills the last WORD_SHARE of it: fusing the two orders by reciprocal rank reached
more evidence too, but reordering the head cost the 0.5B reader answers it had got right (dates
above all), since it leans on the first memories it is shown (docs/results/locomo.md, "Hybrid
retrieval"). Hits keep their cosine as `score`, so thresholds on similarity keep their meaning."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

POOL = 50          # BM25 matches considered
WORD_SHARE = 0.3   # of the k memories read, the share the word match may fill


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


def hybrid_order(query: str, texts: Sequence[str], cosines: np.ndarray, k: int) -> list[int]:
    """The k indices a question reads: the embedding's first k - m in its order, then the m best
    BM25 matches not among them (m = WORD_SHARE of k, rounded), then the embedding's next if the
    words match fewer. The embedding's head stays as it was (small readers lean on the first
    memories they are shown); the word match only fills the tail."""
    m = round(WORD_SHARE * k)
    dense = [int(i) for i in np.argsort(-np.asarray(cosines), kind="stable")[:k]]
    head = dense[:k - m]
    taken = set(head)
    words = [i for i in bm25_order(query, texts) if i not in taken][:m]
    taken.update(words)
    return head + words + [i for i in dense[k - m:] if i not in taken][:k - len(head) - len(words)]
