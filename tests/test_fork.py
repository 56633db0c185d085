"""The fork (issue 13): a bank as of a moment with ops applied in memory. The serving agents'
own calls work on it, and it never writes the store."""

from __future__ import annotations

import pytest

from conftest import dump
from fake_llm import ScriptedLLM
from memstore import MemoryStore
from memstore.errors import BadInput
from memstore.fork import Fork
from policy.answer import AnswerAgent
from policy.manager import LLMPolicy
from policy.turns import Turn


def bank(tmp_path) -> tuple[MemoryStore, dict]:
    store = MemoryStore(tmp_path / "f.db", "b")
    ids = {"dog": store.add("Jon has a dog named Rex", at="2023-01-01").memory_id,
           "city": store.add("Jon lives in Paris", at="2023-01-02").memory_id,
           "tea": store.add("Ann likes green tea", at="2023-01-03").memory_id}
    store.add("Ann moved to Rome", at="2023-03-01")  # after the fork's moment: not in the fork
    store.search("warm the vector view", k=1)  # the store's own index is built before the dump
    return store, ids


def test_a_fork_changes_only_itself(tmp_path):
    store, ids = bank(tmp_path)
    before, bank_before = dump(tmp_path / "f.db"), store.replay()
    fork = Fork(store, "2023-02-01")
    assert sorted(m.text for m in fork.replay()) == ["Ann likes green tea", "Jon has a dog named Rex", "Jon lives in Paris"]
    assert fork.apply("UPDATE", ids["city"], "Jon lives in Berlin").outcome == "applied"
    assert fork.apply("DELETE", ids["dog"]).outcome == "applied"
    added = fork.apply("ADD", text="Jon has a cat named Tom")
    assert fork.apply("UPDATE", ids["dog"], "Jon has two dogs").outcome == "refused"  # deleted in the fork
    assert fork.apply("DELETE", "m-unknown").outcome == "refused"
    assert sorted(m.text for m in fork.replay()) == ["Ann likes green tea", "Jon has a cat named Tom", "Jon lives in Berlin"]
    top = fork.search("Which city does Jon live in?", k=1)[0]
    assert (top.id, top.text) == (ids["city"], "Jon lives in Berlin")
    pets = fork.search("Jon's pets", k=3)
    assert ids["dog"] not in [h.id for h in pets] and added.memory_id in [h.id for h in pets]
    assert [h.score for h in pets] == sorted((h.score for h in pets), reverse=True)
    with pytest.raises(BadInput, match="cannot be read as of"):
        fork.search("Jon", as_of="2023-01-15")
    assert dump(tmp_path / "f.db") == before and store.replay() == bank_before


def test_serving_agents_run_over_a_fork(tmp_path):
    store, ids = bank(tmp_path)
    before = dump(tmp_path / "f.db")
    fork = Fork(store, "2023-02-01")
    llm = ScriptedLLM()  # plumbing only: the scripted model ADDs every fact and answers "scripted"
    turn = Turn("t-new", "Jon", "Jon started learning the violin", "2023-02-01T00:00:00")
    events = LLMPolicy(llm).apply_turn(fork, turn, ["Jon started learning the violin"])
    assert [(e.op, e.outcome) for e in events] == [("ADD", "applied")]
    assert "Jon started learning the violin" in [m.text for m in fork.replay()]
    answer = AnswerAgent(llm, k=10).answer(fork, "What instrument does Jon play?")
    assert "Jon started learning the violin" in [h.text for h in answer.retrieved]
    assert "Ann moved to Rome" not in [h.text for h in answer.retrieved]  # the fork's moment, not now
    assert dump(tmp_path / "f.db") == before


def test_hybrid_search_over_a_fork(tmp_path):
    """A fork ranks its alive memories as the store does: unchanged, the same hits; its own
    versions in, what it deleted out."""
    store, ids = bank(tmp_path)
    fork = Fork(store, "2023-02-01")
    q = "Does Jon have a dog named Rex?"
    as_store = [(h.id, h.score) for h in store.search(q, k=3, as_of="2023-02-01", hybrid=True)]
    assert [(h.id, h.score) for h in fork.search(q, k=3, hybrid=True)] == as_store
    fork.apply("DELETE", ids["dog"])
    added = fork.apply("ADD", text="Jon adopted a parrot named Rex")
    hits = fork.search(q, k=3, hybrid=True)
    assert hits[0].id == added.memory_id and ids["dog"] not in [h.id for h in hits]
