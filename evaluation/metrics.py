"""Answer metrics for LoCoMo-style QA, also the rewards of training.

- `f1_official` / `score_official`: the official LoCoMo evaluation (snap-research/locomo,
  task_eval/evaluation.py): lowercase, drop punctuation, commas and the words a/an/the/and, Porter
  stemming, token-multiset F1; category 1 (multi-hop) splits prediction and gold on commas and
  averages, over gold parts, the best F1 against any predicted part; category 3 keeps the gold
  answer before the first ';'.
- `f1_set`: the set-based token F1 of mem0's LoCoMo harness (lowercase, punctuation removed,
  whitespace split, token sets).
- `bleu1`: clipped unigram precision with brevity penalty on the same tokens as `f1_set`, with
  NLTK's smoothing method 1 (epsilon 0.1) for no overlap. (mem0 tokenises with nltk.word_tokenize,
  whose punkt data cannot be downloaded here; on short answers the difference is punctuation.)"""

from __future__ import annotations

import math
import re
import string
from collections import Counter

from nltk.stem import PorterStemmer

_stemmer = PorterStemmer()
_PUNCT = set(string.punctuation)


def normalize_official(text: str) -> str:
    text = str(text).replace(",", "").lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the|and)\b", " ", text)
    return " ".join(text.split())


def _f1(pred: list[str], gold: list[str]) -> float:
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(gold)
    return 2 * p * r / (p + r)


def f1_official(prediction: str, gold: str) -> float:
    return _f1([_stemmer.stem(w) for w in normalize_official(prediction).split()],
               [_stemmer.stem(w) for w in normalize_official(gold).split()])


def f1_multi(prediction: str, gold: str) -> float:
    """Official category-1 scoring: comma-separated answers on both sides."""
    preds = [p.strip() for p in str(prediction).split(",")]
    golds = [g.strip() for g in str(gold).split(",")]
    return sum(max(f1_official(p, g) for p in preds) for g in golds) / len(golds)


def score_official(prediction: str, gold: str, category: int) -> float:
    if category == 1:
        return f1_multi(prediction, gold)
    if category == 3:
        gold = str(gold).split(";")[0].strip()
    return f1_official(prediction, gold)


def simple_tokens(text: str) -> list[str]:
    return "".join(ch for ch in str(text).lower() if ch not in _PUNCT).split()


def f1_set(prediction: str, gold: str) -> float:
    pred, ref = set(simple_tokens(prediction)), set(simple_tokens(gold))
    common = pred & ref
    if not pred or not ref or not common:
        return 0.0
    p, r = len(common) / len(pred), len(common) / len(ref)
    return 2 * p * r / (p + r)


def bleu1(prediction: str, gold: str) -> float:
    hyp, ref = simple_tokens(prediction), simple_tokens(gold)
    if not hyp or not ref:
        return 0.0
    ref_counts = Counter(ref)
    matches = sum(min(c, ref_counts[w]) for w, c in Counter(hyp).items())
    precision = matches / len(hyp) if matches else 0.1 / len(hyp)
    brevity = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return brevity * precision
