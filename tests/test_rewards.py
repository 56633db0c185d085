"""The outcome rewards on hand-worked cases. The answerer here is a stand-in that answers only
when the needed memory is among those shown (plumbing of the fork and the scoring); the same
check with the real model is in test_training.py."""

from __future__ import annotations

import json

import pytest

from conftest import dump
from memstore import MemoryStore
from memstore.fork import Fork
from policy.answer import AnswerAgent
from policy.runtime import LLM
from trainer.rewards import (ForkAnswerer, Op, answer_reward, apply_op, extract_rewards, length_penalty, manager_reward,
                             manager_rewards, parse_facts, parse_op)


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
    # scored as served: a greedy loop's repeats are dropped before F1 (policy.answer.distinct)
    assert answer_reward(msg({"relevant": [], "answer": "Paris, Rome, Paris, Paris, Paris"}), "Paris, Rome", 1) == 1.0


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


def banker_bank(tmp_path):
    store = MemoryStore(tmp_path / "r.db", "b")
    ids = [store.add("Jon lost his job as a banker", at="2023-01-19").memory_id,
           store.add("Gina has a dog", at="2023-01-20").memory_id]
    return store, ids


def test_ops_apply_to_a_branch_of_the_fork_only(tmp_path):
    store, (m1, m2) = banker_bank(tmp_path)
    before = dump(tmp_path / "r.db")
    base = Fork(store, "2023-01-25")
    texts = lambda f: sorted(m.text for m in f.replay())  # noqa: E731
    assert texts(apply_op(base, Op("ADD"), "Jon likes jazz", [m1], "2023-02-01")) == \
        ["Gina has a dog", "Jon likes jazz", "Jon lost his job as a banker"]
    assert texts(apply_op(base, Op("UPDATE", 1, "Jon lost his bank job"), "f", [m1, m2], "2023-02-01")) == \
        ["Gina has a dog", "Jon lost his bank job"]
    # serving's rule (content_kept): a DELETE keeps the fact that ended the memory, and a NOOP
    # stands only where a memory states the fact
    assert texts(apply_op(base, Op("DELETE", 2), "f", [m1, m2], "2023-02-01")) == ["Jon lost his job as a banker", "f"]
    assert texts(apply_op(base, Op("NOOP"), "f", [m1], "2023-02-01")) == texts(base)
    assert texts(apply_op(base, Op("NOOP"), "f", [m1], "2023-02-01", closest=0.4)) == sorted(texts(base) + ["f"])
    assert texts(base) == ["Gina has a dog", "Jon lost his job as a banker"]
    assert dump(tmp_path / "r.db") == before


class MemoryReader(LLM):
    """Answers the banker question only when a memory shown says it (stand-in for the answerer)."""

    def __init__(self):
        super().__init__(identity="fake:reader")

    def _complete(self, system, user, schema, max_tokens, temperature, seed, prefix=""):
        answer = "19 January, 2023" if "banker" in user.split("Question")[0] else "I do not know"
        return json.dumps({"relevant": [], "answer": answer}), 1, 1


def test_deleting_the_needed_fact_scores_lower(tmp_path):
    store, ids = banker_bank(tmp_path)
    questions = [["When did Jon lose his job as a banker?", "19 January, 2023", 2, "2023-08-01T00:00:00.000000Z"]]
    answerer = ForkAnswerer(AnswerAgent(MemoryReader(), k=1))  # the serving agent and its retrieval
    common = dict(fact="Jon opened a dance studio", day="2023-01-25", bank=Fork(store, "2023-01-25"),
                  candidate_ids=ids, questions=questions, answerer=answerer)
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


def test_a_group_is_scored_together_and_not_at_all_when_no_op_changes_what_is_shown(tmp_path):
    store, ids = banker_bank(tmp_path)
    questions = [["When did Jon lose his job as a banker?", "19 January, 2023", 2, "2023-08-01T00:00:00.000000Z"]]
    answerer = ForkAnswerer(AnswerAgent(MemoryReader(), k=1))
    common = dict(fact="Jon opened a dance studio", day="2023-01-25", bank=Fork(store, "2023-01-25"),
                  candidate_ids=ids, questions=questions, answerer=answerer)
    # NOOP and DELETE of the dog memory leave the banker memory the one shown: equal rewards, no call
    same = [msg({"op": "NOOP"}), msg({"op": "DELETE", "target": 2}), msg({"op": "NOOP"})]
    assert manager_rewards(same, **common) == [None, None, None] and answerer.calls == 0
    # scored anyway when asked: the reward each would get alone
    assert manager_rewards(same, skip_equal=False, **common) == [1.0, 1.0, 1.0] and answerer.calls == 1
    # an op serving would refuse scores 0, so that group is scored; so is one that changes what is shown
    assert manager_rewards(same + [msg({"op": "DELETE", "target": 7})], **common) == [1.0, 1.0, 1.0, 0.0]
    mixed = [msg({"op": "DELETE", "target": 1}), msg({"op": "NOOP"}), msg({"op": "DELETE", "target": 1})]
    assert manager_rewards(mixed, **common) == [manager_reward(c, **common) for c in mixed] == [0.0, 1.0, 0.0]
    assert answerer.calls == 2  # the view without the banker memory: one more answer, cached after


def test_length_penalty_hand_worked():
    assert length_penalty(100, 0) == 0.0                       # no reference: no penalty
    assert length_penalty(50, 100) == length_penalty(130, 100) == 0.0
    assert length_penalty(165, 100) == pytest.approx(0.5)     # half way from 1.3x to 2x
    assert length_penalty(300, 100) == 1.0
    assert length_penalty(35, 100) == pytest.approx(0.5)      # half way from 0.5x down to 0.2x
    assert length_penalty(0, 100) == 1.0


def test_parse_facts_keeps_what_serving_keeps():
    assert parse_facts(msg({"facts": ["My job as a banker ended", "Thanks!", "Gina"]}), "Jon", {"Gina"}) == \
        ["Jon's job as a banker ended"]
    assert parse_facts(msg({"facts": []}), "Jon") == []
    assert parse_facts(msg({"facts": "Jon lost his job"}), "Jon") is None   # not serving's schema
    assert parse_facts(msg({"facts": [3]}), "Jon") is None
    assert parse_facts(msg('{"facts": ["Jon lo'), "Jon") is None           # cut off


def test_extraction_reward_adds_the_facts_to_the_fork_and_weighs_their_length(tmp_path):
    store = MemoryStore(tmp_path / "x.db", "b")
    store.add("Gina has a dog", at="2023-01-20")
    before = [(e.seq, e.text) for e in store.events()]
    questions = [["When did Jon lose his job as a banker?", "19 January, 2023", 2, "2023-08-01T00:00:00.000000Z"]]
    answerer = ForkAnswerer(AnswerAgent(MemoryReader(), k=1))
    needed = "Jon lost his job as a banker on 19 January, 2023"
    common = dict(speaker="Jon", names=["Gina"], at="2023-01-19T10:00:00.000000Z",
                  bank=Fork(store, "2023-01-19T09:59:59.999999Z"), questions=questions, answerer=answerer,
                  reference_chars=len(needed))
    got = extract_rewards([msg({"facts": [needed]}), msg({"facts": ["Jon likes jazz"]}), msg({"facts": "x"}),
                           msg({"facts": [needed, "Jon has been in banking for years and liked the work a lot"]})],
                          **common)
    padded = 1 - 0.8 * length_penalty(len(needed) + 58, len(needed))
    assert got == [1.0, 0.0, 0.0, pytest.approx(padded)] and 0 < padded < 1
    # every sample keeps the same facts: no signal, nothing answered
    calls = answerer.calls
    assert extract_rewards([msg({"facts": [needed]})] * 3, **common) == [None] * 3 and answerer.calls == calls
    # with what the turn said, an invented fact is dropped as serving drops it: no length to pay for
    said = dict(common, said="I lost my job as a banker yesterday.")
    assert extract_rewards([msg({"facts": [needed, "Jon likes jazz"]}), msg({"facts": []})], **said) == [1.0, 0.0]
    assert [(e.seq, e.text) for e in store.events()] == before  # the log is never written


def test_an_uncited_turn_is_rewarded_by_keeping_the_starting_facts(tmp_path):
    """An anchor example (no question cites the turn): the share of the starting adapter's facts
    the sample still states, by the `bench facts` matcher, times the length penalty against them."""
    from memstore.embed import default_embedder

    store = MemoryStore(tmp_path / "x.db", "b")
    start = "Jon lost his job as a banker on 19 January, 2023"
    common = dict(speaker="Jon", names=["Gina"], at="2023-01-19T10:00:00.000000Z",
                  bank=Fork(store, "2023-01-19T09:59:59.999999Z"), questions=[],
                  answerer=ForkAnswerer(AnswerAgent(MemoryReader(), k=1)), embed=default_embedder().embed)
    extra = "Jon has been in banking for years and liked the work a lot"
    got = extract_rewards([msg({"facts": [start]}), msg({"facts": ["Jon likes jazz"]}), msg({"facts": []}),
                           msg({"facts": [start, extra]}), msg({"facts": "x"})],
                          reference=[start], reference_chars=len(start), **common)
    padded = 1 - 0.8 * length_penalty(len(start) + len(extra), len(start))
    assert got == [1.0, 0.0, 0.0, pytest.approx(padded), 0.0] and 0 < padded < 1
    # where the start wrote nothing, writing nothing keeps it
    assert extract_rewards([msg({"facts": []}), msg({"facts": ["Jon likes jazz"]})], reference=[], reference_chars=0,
                           **common) == [1.0, 0.0]
    with pytest.raises(ValueError, match="reference facts"):
        extract_rewards([msg({"facts": []}), msg({"facts": [start]})], reference_chars=0,
                        **{**common, "embed": None})


def test_extraction_examples_are_the_serving_call_for_evidence_turns(tmp_path):
    from policy import prompts
    from policy.turns import QA, Turn
    from trainer.history import History
    from trainer.rollouts import extract_examples

    turns = [Turn("c:D1:1", "Gina", "How is work?", "2023-01-19T10:00:00.000000Z", "s1"),
             Turn("c:D1:2", "Jon", "I lost it yesterday.", "2023-01-19T10:00:01.000000Z", "s1"),
             Turn("c:D1:3", "Gina", "Oh no!", "2023-01-19T10:00:02.000000Z", "s1")]
    qa = QA("When did Jon lose his job?", "18 January, 2023", 2, ("D1:2",), "2023-08-01T00:00:00.000000Z")
    history = History("c", MemoryStore(tmp_path / "h.db", "b"), turns, [qa], "c:",
                      {"c:D1:2": ["Jon lost his job as a banker."]})
    rows = extract_examples(history, window=1)
    assert len(rows) == 1  # only the evidence turn
    row = rows[0]
    call = prompts.extract_call("Jon", "I lost it yesterday.", "2023-01-19", (("Gina", "How is work?"),))
    assert row["messages"][1]["content"] == call.user and row["messages"][0]["content"] == call.system
    assert row["schema"] == call.schema and row["prefix"] == call.prefix
    assert json.loads(row["names"]) == ["Gina"] and row["reference_chars"] == len("Jon lost his job as a banker.")
    assert row["said"] == "I lost it yesterday. How is work?"  # what a sampled fact must be grounded in
    assert row["turn_time"] < row["at"] == turns[1].time
    assert json.loads(row["questions"])[0][:2] == ["When did Jon lose his job?", "18 January, 2023"]
    # anchored: as many uncited turns as cited ones join, without questions (their reward keeps the start's facts)
    rows = extract_examples(history, window=1, anchors=1.0)
    assert [r["turn"] for r in rows][0] == "c:D1:2" and len(rows) == 2
    assert rows[1]["turn"] in ("c:D1:1", "c:D1:3") and json.loads(rows[1]["questions"]) == []
    assert len(extract_examples(history, window=1, anchors=5.0)) == 3  # no more than there are
