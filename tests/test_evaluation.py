"""evaluation/: --sessions keeps exactly the questions whose evidence lies in the kept sessions,
and --policy observations builds the reference bank from LoCoMo's annotations without a model.
(A synthetic LoCoMo-format sample: no dataset needed; scripted LLM for the answer plumbing.)"""

from __future__ import annotations

import json

from conftest import memstore_cli
from policy.inputs import locomo_turns
from evaluation.datasets import evidence_sessions, locomo_observations, locomo_qa
from evaluation.harness import Task, run_task
from fake_llm import ScriptedLLM
from memstore import MemoryStore


def sample() -> dict:
    conv = {"speaker_a": "Ann", "speaker_b": "Bob"}
    for n in (1, 2, 3):
        conv[f"session_{n}_date_time"] = f"1:00 pm on {n} May, 2023"
        conv[f"session_{n}"] = [{"speaker": "Ann", "dia_id": f"D{n}:{i}", "text": f"Ann says thing {n}.{i}"}
                                for i in (1, 2)]
    qa = [{"question": "q1", "answer": "a", "evidence": ["D1:1"], "category": 1},
          {"question": "q2", "answer": "a", "evidence": ["D2:2", "D1:2"], "category": 2},
          {"question": "q3", "answer": "a", "evidence": ["D3:1"], "category": 4},
          {"question": "q13", "answer": "a", "evidence": ["D1:1; D3:2"], "category": 1},
          {"question": "q-none", "answer": "a", "evidence": [], "category": 3},
          {"question": "q-adv", "adversarial_answer": "x", "evidence": ["D1:1"], "category": 5}]
    observation = {f"session_{n}_observation": {"Ann": [[f"Ann did thing {n}", f"D{n}:1"]]} for n in (1, 2, 3)}
    observation["session_1_observation"]["Ann"].append(["Ann cites nothing we have", "D9:9"])
    return {"sample_id": "syn-1", "conversation": conv, "qa": qa, "observation": observation}


def test_sessions_keep_exactly_the_questions_whose_evidence_lies_in_them():
    s = sample()
    assert [q.question for q in locomo_qa(s, locomo_turns(s))] == ["q1", "q2", "q3", "q13", "q-none"]
    for n, want in [(1, ["q1"]), (2, ["q1", "q2"]), (3, ["q1", "q2", "q3", "q13"])]:
        turns = locomo_turns(s, n)
        assert {t.session for t in turns} == {f"syn-1:session_{i}" for i in range(1, n + 1)}
        qas = locomo_qa(s, turns, n)
        assert [q.question for q in qas] == want
        assert all(q.asked_at == turns[-1].time for q in qas)
    assert evidence_sessions(["D1:1; D3:2"]) == {1, 3} and evidence_sessions(["x"]) is None


def test_a_question_cites_each_turn_of_a_cell_that_holds_several():
    """'D1:1; D3:2' is two evidence turns: what training's rewards and the recall bench look up."""
    s = sample()
    by_question = {q.question: q.evidence for q in locomo_qa(s, locomo_turns(s))}
    assert by_question["q13"] == ("D1:1", "D3:2") and by_question["q2"] == ("D2:2", "D1:2")
    assert by_question["q-none"] == ()


def test_observations_policy_builds_the_annotated_bank_without_a_model(tmp_path):
    s = sample()
    turns = locomo_turns(s, 2)
    obs = locomo_observations(s, turns)
    assert obs == {"syn-1:D1:1": ["Ann did thing 1"], "syn-1:D2:1": ["Ann did thing 2"]}
    llm = ScriptedLLM()
    rows = run_task(Task("syn-1", turns, locomo_qa(s, turns, 2), obs), "observations", llm, llm, tmp_path)
    store = MemoryStore(tmp_path / "syn-1.db", "observations")
    assert sorted(m.text for m in store.replay()) == ["Ann did thing 1", "Ann did thing 2"]
    assert {e.actor for e in store.events()} == {"policy:observations/locomo-annotations"}
    assert [r["question"] for r in rows] == ["q1", "q2"]
    assert llm.usage.calls == 2 * len(rows)  # one answer and one verdict per question, no extraction


def test_bench_options_fail_in_one_line_before_any_work(tmp_path):
    data = tmp_path / "syn.json"
    data.write_text(json.dumps([sample()]))
    out = tmp_path / "out"
    bad = memstore_cli("bench", "locomo", "--data", str(data), "--sessions", "0", "--out", str(out))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    bad = memstore_cli("bench", "locomo", "--data", str(data), "--policy", "append,nope", "--out", str(out))
    assert bad.returncode == 1 and "unknown policy 'nope'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not out.exists()
