"""Metrics against hand-worked examples."""

import math

import pytest

from evaluation.metrics import bleu1, f1_multi, f1_official, f1_set, normalize_official, score_official


def test_official_normalisation():
    assert normalize_official("The cat, and a Dog!") == "cat dog"


def test_official_f1_stems():
    # "running" and "runs" both stem to "run": full overlap
    assert f1_official("running", "runs") == 1.0
    # pred {went, camp} vs gold {camp, trip}: stems went/camp vs camp/trip -> 1 common, P=1/2 R=1/2
    assert f1_official("went camping", "camping trip") == pytest.approx(0.5)
    assert f1_official("", "anything") == 0.0


def test_official_multi_answer_category_1():
    # gold parts: "pottery", "painting"; predicted parts: "painting", "hiking"
    # best per gold part: pottery -> 0, painting -> 1 -> mean 0.5
    assert f1_multi("painting, hiking", "pottery, painting") == pytest.approx(0.5)
    assert score_official("painting, hiking", "pottery, painting", 1) == pytest.approx(0.5)
    # category 3 keeps the gold answer before ';'
    assert score_official("likely yes", "Likely yes; because she said so", 3) == 1.0


def test_set_f1_and_bleu1():
    # sets: pred {7, may, 2023}, gold {may, 7th, 2023} -> common 2, P=R=2/3
    assert f1_set("7 May 2023", "May 7th, 2023") == pytest.approx(2 / 3)
    assert f1_set("the the cat", "cat") == pytest.approx(2 * 0.5 * 1 / 1.5)  # set {the, cat}
    # bleu1: hyp [in, boston], ref [boston] -> precision 1/2, no brevity penalty (hyp longer)
    assert bleu1("in Boston", "Boston") == pytest.approx(0.5)
    # hyp [boston], ref [boston, ma] -> precision 1, BP = exp(1 - 2/1)
    assert bleu1("Boston", "Boston, MA") == pytest.approx(math.exp(-1))
    # no overlap: NLTK smoothing method 1, epsilon 0.1 / len(hyp)
    assert bleu1("Denver", "Boston") == pytest.approx(0.1)
