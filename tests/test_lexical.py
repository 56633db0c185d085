"""The hybrid order a question reads: the embedding's head kept, its tail filled by word matches."""

import numpy as np

from memstore.lexical import WORD_SHARE, bm25_order, hybrid_order

TEXTS = ["Jon likes to read in the evening", "Jon reads before bed", "Jon is reading a lot",
         "Jon enjoys reading on weekends", "Jon started a club", "Reading is Jon's hobby",
         "Jon finished The Lean Startup", "Gina opened a clothing store"]
COSINES = np.array([0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.2, 0.1])


def test_the_embedding_keeps_the_head_and_the_word_match_fills_the_tail():
    k = 5
    order = hybrid_order("What did Jon finish?", TEXTS, COSINES, k)
    head = k - round(WORD_SHARE * k)
    assert order[:head] == list(range(head))            # the embedding's first, in its order
    assert 6 in order and len(order) == len(set(order)) == k  # the memory naming "finish" is read


def test_without_a_matching_word_the_embedding_fills_everything():
    assert hybrid_order("zebra?", TEXTS, COSINES, 5) == [0, 1, 2, 3, 4]
    assert bm25_order("zebra?", TEXTS) == [] and bm25_order("the?", TEXTS) == []  # stop words match nothing


def test_stems_match_word_forms():
    assert bm25_order("Which store did Gina open?", TEXTS)[0] == 7  # "opened" ~ "open", "store"


def test_never_more_than_k_nor_more_than_there_are():
    assert hybrid_order("Jon reading", TEXTS[:3], COSINES[:3], 10) == [0, 1, 2]
    assert hybrid_order("Jon reading", TEXTS, COSINES, 1) == [0]
