"""Judge agreement (issue 14): kappa on a hand-worked case, and a rejudge that resumes."""

import json

import pytest

from evaluation.agreement import agreement, answer_rows, judge_file, kappa, rejudge, report
from policy.runtime import LLM


def test_kappa_hand_worked():
    a, b = [True, True, False, False], [True, False, False, False]
    # observed 3/4; chance = 0.5*0.25 + 0.5*0.75 = 0.5; kappa = (0.75 - 0.5) / 0.5
    assert agreement(a, b) == {"n": 4, "agree": 0.75, "kappa": 0.5}
    assert kappa([True, False], [False, True]) == -1.0
    assert kappa([True, True], [True, True]) is None  # undefined: no room for chance
    with pytest.raises(ValueError):
        kappa([True], [True, False])


class CountingJudge(LLM):
    """Says CORRECT when the answer contains the gold; counts its calls (plumbing only)."""

    def __init__(self):
        super().__init__(identity="fake:judge")
        self.calls = 0

    def _complete(self, system, user, schema, max_tokens, temperature, seed, prefix=""):
        self.calls += 1
        gold = user.split("Gold answer: ")[1].split("\n")[0]
        answer = user.split("Generated answer: ")[1]
        label = "CORRECT" if gold in answer else "WRONG"
        return json.dumps({"reason": "r", "label": label}), 10, 5


def _run(tmp_path, answers):
    (tmp_path / "answers").mkdir(exist_ok=True)
    (tmp_path / "answers" / "t.observations.jsonl").write_text(
        "".join(json.dumps({"policy": "observations", "question": f"q{i}", "gold": g, "answer": a, "f1": f, "judge": j}) + "\n"
                for i, (g, a, f, j) in enumerate(answers)))
    return answer_rows(tmp_path)


def test_rejudge_resumes_and_rejudges_changed_answers(tmp_path):
    rows = _run(tmp_path, [("Paris", "in Paris", 0.67, True), ("May", "June", 0.0, True), ("7", "", 0.0, False)])
    path, llm = judge_file(tmp_path, "http://x/v1"), CountingJudge()
    assert path.name == "verdicts.http_x_v1.jsonl"
    assert rejudge(rows[:1], llm, path) == [True]
    assert llm.calls == 1
    assert rejudge(rows, llm, path) == [True, False, False]
    assert llm.calls == 2  # the first verdict was reused; an empty answer needs no call
    rows = _run(tmp_path, [("Paris", "in Paris", 0.67, True), ("May", "May", 1.0, True), ("7", "", 0.0, False)])
    assert rejudge(rows, llm, path) == [True, True, False]
    assert llm.calls == 3  # the changed answer was judged anew
    result = report(rows, {"saved": [r["judge"] for r in rows], "fake": [True, True, False]})
    assert result["accepted"] == {"saved": 2 / 3, "fake": 2 / 3, "F1 >= 0.5": 2 / 3}
    assert all(p["agree"] == 1.0 and p["kappa"] == 1.0 for p in result["pairs"])
    assert result["accepted_by_policy"] == {"observations": {"n": 3, "saved": 2 / 3, "fake": 2 / 3, "F1 >= 0.5": 2 / 3}}
    assert result["paired"] == []  # no baseline among the rows
    assert answer_rows(tmp_path, ["observations"]) == rows
    with pytest.raises(ValueError, match="no answers of llm"):
        answer_rows(tmp_path, ["llm"])


def test_no_answers_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no answers"):
        answer_rows(tmp_path)


def test_cli_refuses_a_folder_without_answers(tmp_path):
    from conftest import memstore_cli
    proc = memstore_cli("bench", "judges", str(tmp_path), "--judge", "qwen")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"memstore: error: no answers in {tmp_path / 'answers'} "
                                                "(a folder written by `memstore bench`)"]


def test_published_answers_get_their_question_and_gold_back_from_the_data(tmp_path):
    """A `bench publish` folder keeps no LoCoMo text; `bench judges --data` restores it by id."""
    from evaluation.publish import scrub
    from memstore.errors import BadInput
    data = tmp_path / "locomo.json"
    data.write_text(json.dumps([{"sample_id": "c1", "conversation": {}, "qa": [
        {"question": "Where?", "answer": "Paris", "category": 1},
        {"question": "Trick?", "adversarial_answer": "x", "category": 5}]}]))
    run = tmp_path / "published"
    (run / "answers").mkdir(parents=True)
    row = {"task": "c1", "policy": "llm", "question": "Where?", "gold": "Paris", "answer": "in Paris",
           "f1": 0.67, "judge": True, "judge_reason": "gold is Paris"}
    (run / "answers" / "c1.llm.jsonl").write_text(json.dumps(scrub(row)) + "\n")
    with pytest.raises(ValueError, match="pass --data"):
        answer_rows(run)
    [back] = answer_rows(run, data=data)
    assert (back["question"], back["gold"], back["answer"]) == ("Where?", "Paris", "in Paris")
    (run / "answers" / "c1.llm.jsonl").write_text(json.dumps(scrub({**row, "question": "Elsewhere?"})) + "\n")
    with pytest.raises(BadInput, match="is not in"):
        answer_rows(run, data=data)


def test_each_judge_compares_policies_with_the_best_baseline():
    """Two policies on the same two questions: the judge's acceptance difference, paired."""
    from evaluation.agreement import paired_by_rater
    rows = [{"task": "t", "policy": p, "question": q, "_key": f"t.{p}.jsonl:{i}", "f1": f1}
            for p, f1s in (("append", (0.0, 0.0)), ("heuristic", (0.2, 0.0)), ("learned", (1.0, 1.0)))
            for i, (q, f1) in enumerate(zip(("q0", "q1"), f1s))]
    judge = [False, False, False, True, True, True]  # append, heuristic, learned x (q0, q1)
    out = paired_by_rater(rows, {"judge": judge})
    assert {(r["policy"], r["baseline"]) for r in out} == {("append", "heuristic"), ("learned", "heuristic")}
    learned = next(r for r in out if r["policy"] == "learned")
    assert (learned["n"], learned["diff"]) == (2, 50.0)  # heuristic accepted q1 only, learned both
