"""The evaluation harness end to end on a tiny LoCoMo-format file and a tiny LongMemEval-format
file that the test writes itself, with the real default model (integration)."""

from __future__ import annotations

import json

import pytest

from conftest import memstore_cli

pytestmark = pytest.mark.integration

LOCOMO = [{
    "sample_id": "tiny-1",
    "conversation": {
        "speaker_a": "Gina", "speaker_b": "Jon",
        "session_1_date_time": "10:00 am on 2 January, 2023",
        "session_1": [{"speaker": "Gina", "dia_id": "D1:1", "text": "I have a goldfish named Bubbles."},
                      {"speaker": "Jon", "dia_id": "D1:2", "text": "I just opened a dance studio in Chicago!"}],
        "session_2_date_time": "4:00 pm on 5 March, 2023",
        "session_2": [{"speaker": "Gina", "dia_id": "D2:1", "text": "I started a new job as a florist."}],
    },
    "qa": [{"question": "What is the name of Gina's goldfish?", "answer": "Bubbles", "evidence": ["D1:1"], "category": 4},
           {"question": "Where did Jon open his dance studio?", "answer": "Chicago", "evidence": ["D1:2"], "category": 4},
           {"question": "What did Gina adopt?", "adversarial_answer": "a cat", "evidence": [], "category": 5}],
}]

LME = [{"question_id": "q1", "question_type": "single-session-user", "question": "What city did I move to?",
        "answer": "Denver", "question_date": "2023/06/01 (Thu) 10:00",
        "haystack_dates": ["2023/05/20 (Sat) 02:21"],
        "haystack_sessions": [[{"role": "user", "content": "I just moved to Denver for my new job."},
                               {"role": "assistant", "content": "Congratulations on the move!"}]]}]


def test_locomo_harness_end_to_end(tmp_path):
    data = tmp_path / "tiny.json"
    data.write_text(json.dumps(LOCOMO))
    out = tmp_path / "run"
    args = ["bench", "locomo", "--data", str(data), "--policy", "append,heuristic", "--out", str(out)]
    proc = memstore_cli(*args, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    for policy in ("append", "heuristic"):
        r = res["policies"][policy]
        assert r["overall"]["n"] == 2  # category 5 excluded
        assert set(r) >= {"overall", "single-hop", "ingest_s", "answer_s", "peak_rss_mb"}
        assert 0 <= r["overall"]["f1"] <= 100 and 0 <= r["overall"]["judge"] <= 100
    assert all((out / f"{m}.png").stat().st_size > 1000 for m in ("f1", "f1_set", "bleu1", "judge"))
    rows = [json.loads(line) for line in (out / "answers" / "tiny-1.append.jsonl").read_text().splitlines()]
    assert [r["gold"] for r in rows] == ["Bubbles", "Chicago"]
    assert max(r["f1"] for r in rows) > 0, rows  # the model finds at least one of two single-hop facts
    # resumable: a second run does no new work and gives the same table
    again = memstore_cli(*args, timeout=600)
    assert again.returncode == 0
    assert json.loads((out / "results.json").read_text())["policies"]["append"]["overall"] == res["policies"]["append"]["overall"]
    cmp = memstore_cli("bench", "compare", str(out), env={"COLUMNS": "200"})
    assert cmp.returncode == 0 and "append" in cmp.stdout
    # one policy's bank read by another's Answer Agent: a row of its own, the bank untouched
    import sqlite3
    events = lambda: sqlite3.connect(out / "tiny-1.db").execute(  # noqa: E731
        "SELECT (SELECT count(*) FROM events), (SELECT group_concat(name) FROM banks)").fetchone()
    before = events()
    reread = memstore_cli("bench", "reread", str(out), "--bank", "append", "--reader", "heuristic", timeout=600)
    assert reread.returncode == 0, reread.stderr[-2000:]
    res2 = json.loads((out / "results.json").read_text())
    assert list(res2["policies"]) == ["append", "heuristic", "append.heuristic-reader"]
    assert res2["policies"]["append.heuristic-reader"]["overall"]["n"] == 2 and events() == before
    rows2 = [json.loads(line) for line in (out / "answers" / "tiny-1.append.heuristic-reader.jsonl").read_text().splitlines()]
    assert [r["gold"] for r in rows2] == ["Bubbles", "Chicago"]
    for bad_args, says in ((["--bank", "llm", "--reader", "heuristic"], "no policy 'llm'"),
                           (["--bank", "append", "--reader", "heuristic", "--as", "append"], "own row"),
                           (["--bank", "append.heuristic-reader", "--reader", "heuristic"], "reread row")):
        bad = memstore_cli("bench", "reread", str(out), *bad_args)
        assert bad.returncode == 1 and says in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert events() == before
    # resuming with another backbone would mix two systems in one bank: refused, nothing written
    answers = (out / "answers" / "tiny-1.append.jsonl").read_text()
    other = memstore_cli(*args, "--model", "smollm2", timeout=600)
    assert other.returncode == 1 and "use another --out" in other.stderr, other.stderr[-2000:]
    assert len(other.stderr.strip().splitlines()) == 1
    assert (out / "answers" / "tiny-1.append.jsonl").read_text() == answers


def test_longmemeval_format(tmp_path):
    data = tmp_path / "lme.json"
    data.write_text(json.dumps(LME))
    out = tmp_path / "lme"
    proc = memstore_cli("bench", "longmemeval", "--data", str(data), "--policy", "append", "--out", str(out), timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["policies"]["append"]["overall"]["n"] == 1
    assert "single-session-user" in res["policies"]["append"]


def test_bad_harness_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    proc = memstore_cli("bench", "longmemeval", "--data", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    proc = memstore_cli("bench", "locomo", "--data", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 1 and "LoCoMo format" in proc.stderr
    good = tmp_path / "tiny.json"
    good.write_text(json.dumps(LOCOMO))
    proc = memstore_cli("bench", "locomo", "--data", str(good), "--conversations", "conv-99", "--out", str(tmp_path / "o"))
    assert proc.returncode == 1 and "conv-99" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "results.json").exists()
