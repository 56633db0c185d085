"""The outcome rewards on hand-worked cases. The answerer here is a stand-in that answers only
when the needed memory is among those shown (plumbing of the fork and the scoring); the same
check with the real model is in test_training.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainer.rewards import FrozenAnswerer, Op, answer_reward, fork, manager_reward, parse_op
from policy.runtime import LLM


def msg(obj) -> list[dict]:
    return [{"role": "assistant", "content": json.dumps(obj) if not isinstance(obj, str) else obj}]


def test_answer_reward_hand_worked():
    # official F1: exact (after normalisation) = 1; "19 January 2023" vs "19 January, 2023" = same tokens
    assert answer_reward(msg({"relevant": [1], "answer": "19 January 2023"}), "19 January, 2023", 2) == 1.0
    # 2 of 3 gold tokens, 2 of 2 predicted: P=1, R=2/3, F1=0.8
    assert answer_reward(msg({"relevant": [], "answer": "January 2023"}), "19 January, 2023", 2) == pytest.approx(0.8)
    assert answer_reward(msg({"relevant": [], "answer": "Paris"}), "Rome", 4) == 0.0
    # not the serving JSON: no reward, whatever the text says
    assert answer_reward(msg("Rome"), "Rome", 4) == 0.0
    assert answer_reward(msg('{"relevant": [1], "answer": 3}'), "3", 4) == 0.0
    # broken JSON elsewhere (a date among the numbers) still counts by its answer string
    assert answer_reward('{"relevant": [28, 9 June, 2023], "answer": "Rome"}', "Rome", 4) == 1.0
    assert answer_reward('{"relevant": [1], "answer": "Ro', "Rome", 4) == 0.0  # cut off: no answer
    # a plain string completion (non-chat prompts) is read the same way
    assert answer_reward('{"relevant": [2], "answer": "Rome"}', "Rome", 4) == 1.0


def test_parse_op_accepts_only_what_serving_grammar_allows():
    assert parse_op(msg({"op": "ADD"}), 0) == Op("ADD")
    assert parse_op(msg({"op": "NOOP"}), 3) == Op("NOOP")
    assert parse_op(msg({"op": "UPDATE", "target": 2, "text": " new "}), 2) == Op("UPDATE", 2, "new")
    assert parse_op(msg({"op": "DELETE", "target": 1}), 1) == Op("DELETE", 1)
    assert parse_op(msg({"op": "DELETE", "target": 3}), 2) is None       # not a candidate shown
    assert parse_op(msg({"op": "DELETE", "target": 1}), 0) is None       # nothing shown
    assert parse_op(msg({"op": "UPDATE", "target": 1}), 1) is None       # UPDATE needs text
    assert parse_op(msg({"op": "MERGE"}), 1) is None
    assert parse_op(msg("ADD"), 1) is None


def test_fork_leaves_the_bank_alone():
    bank = {"m1": ("Jon lives in Paris", "2023-01-02"), "m2": ("Jon has a cat", "2023-01-03")}
    snapshot = dict(bank)
    assert fork(bank, Op("ADD"), "Jon likes jazz", ["m1"], "2023-02-01")["new"] == ("Jon likes jazz", "2023-02-01")
    assert fork(bank, Op("UPDATE", 1, "Jon lives in Berlin"), "f", ["m1", "m2"], "2023-02-01")["m1"] == \
        ("Jon lives in Berlin", "2023-02-01")
    assert "m2" not in fork(bank, Op("DELETE", 2), "f", ["m1", "m2"], "2023-02-01")
    assert fork(bank, Op("NOOP"), "f", ["m1"], "2023-02-01") == bank
    assert bank == snapshot


class MemoryReader(LLM):
    """Answers the banker question only when a memory shown says it (stand-in for the answerer)."""

    def __init__(self):
        super().__init__(identity="fake:reader")

    def _complete(self, system, user, schema, max_tokens, temperature, seed):
        answer = "19 January, 2023" if "banker" in user.split("Question")[0] else "I do not know"
        return json.dumps({"relevant": [], "answer": answer}), 1, 1


def bag_of_words(texts):
    vocab = ["jon", "job", "banker", "lost", "gina", "dog", "dance", "studio"]
    v = np.array([[t.lower().count(w) for w in vocab] for t in texts], dtype=float) + 1e-3
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_deleting_the_needed_fact_scores_lower():
    bank = {"m1": ("Jon lost his job as a banker", "2023-01-19"), "m2": ("Gina has a dog", "2023-01-20")}
    questions = [["When did Jon lose his job as a banker?", "19 January, 2023", 2, "2023-08-01T00:00:00.000000Z"]]
    answerer = FrozenAnswerer(MemoryReader(), bag_of_words, k=1)
    common = dict(fact="Jon opened a dance studio", day="2023-01-25", bank=bank, candidate_ids=["m1", "m2"],
                  questions=questions, answerer=answerer)
    keep = manager_reward(msg({"op": "ADD"}), **common)
    delete = manager_reward(msg({"op": "DELETE", "target": 1}), **common)
    other = manager_reward(msg({"op": "DELETE", "target": 2}), **common)
    broken = manager_reward(msg({"op": "DELETE", "target": 7}), **common)
    assert keep == 1.0 and other == 1.0
    assert delete < keep and delete == 0.0
    assert broken == 0.0
    # identical retrieved memories are answered once
    calls = answerer.calls
    manager_reward(msg({"op": "NOOP"}), **common)
    assert answerer.calls == calls
