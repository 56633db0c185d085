"""Paired bootstrap on hand-worked cases, and `bench compare` on a run folder written here."""

from __future__ import annotations

import json

import pytest

from conftest import memstore_cli
from evaluation.paired import compare_run, paired_bootstrap


def test_paired_bootstrap_hand_worked():
    # differences [0, 1]: a resample of 2 has mean 0 (1/4), 0.5 (1/2) or 1 (1/4)
    assert paired_bootstrap([0, 0], [0, 1], n_boot=20_000) == {"n": 2, "diff": 0.5, "lo": 0.0, "hi": 1.0}
    # differences [0, 0, 3]: resample means 0, 1, 2, 3 with probabilities 8/27, 12/27, 6/27, 1/27;
    # P(mean <= 2) = 26/27 < 0.975, so the upper end is 3 and the lower end 0
    out = paired_bootstrap([1, 1, 1], [1, 1, 4], n_boot=20_000)
    assert (out["diff"], out["lo"], out["hi"]) == (1.0, 0.0, 3.0)
    assert paired_bootstrap([2, 5, 7], [5, 8, 10]) == {"n": 3, "diff": 3.0, "lo": 3.0, "hi": 3.0}
    assert paired_bootstrap([0.2, 0.4], [0.2, 0.4])["hi"] == 0.0
    for a, b in (([1, 2], [1]), ([], [])):
        with pytest.raises(ValueError):
            paired_bootstrap(a, b)


def write_run(out, scores):
    """A harness run folder: answers per task and policy (the harness's own row shape)."""
    from evaluation.harness import results
    (out / "answers").mkdir(parents=True)
    for policy, per_task in scores.items():
        for task, rows in per_task.items():
            with open(out / "answers" / f"{task}.{policy}.jsonl", "w") as f:
                for i, (cat, f1, judge) in enumerate(rows):
                    f.write(json.dumps({"task": task, "policy": policy, "question": f"q{i}", "gold": "g",
                                        "category": cat, "answer": "a", "f1": f1, "f1_set": f1, "bleu1": f1,
                                        "judge": judge}) + "\n")
    tasks = sorted({t for per_task in scores.values() for t in per_task})
    (out / "results.json").write_text(json.dumps(results(out, tasks, sorted(scores), {"data": "test"})))


def test_compare_against_the_best_baseline(tmp_path):
    out = tmp_path / "run"
    write_run(out, {
        "append": {"c1": [(1, 0.0, False), (2, 0.5, True)], "c2": [(2, 0.0, False)]},
        "heuristic": {"c1": [(1, 0.2, False), (2, 0.6, True)], "c2": [(2, 0.4, True)]},
        "learned": {"c1": [(1, 0.5, True), (2, 0.6, True)], "c2": [(2, 1.0, True)]},
        "learned.llm-reader": {"c1": [(1, 0.3, True), (2, 0.6, True)], "c2": [(2, 0.4, True)]},  # `bench reread`
    })
    res = compare_run(out, categories={1: "multi-hop", 2: "temporal"}, n_boot=2000)
    assert res["best_baseline"] == "heuristic" and res["questions"] == 3
    learned = {(r["group"], r["metric"]): r for r in res["rows"] if r["policy"] == "learned"}
    assert learned[("overall", "f1")]["diff"] == pytest.approx((30 + 0 + 60) / 3)
    assert learned[("overall", "judge")]["diff"] == pytest.approx(100 / 3)
    assert learned[("multi-hop", "f1")]["n"] == 1 and learned[("temporal", "f1")]["n"] == 2
    assert learned[("overall", "f1")]["lo"] <= learned[("overall", "f1")]["diff"] <= learned[("overall", "f1")]["hi"]
    reader = {(r["group"], r["metric"]): r for r in res["rows"] if r["policy"] == "learned.llm-reader"}
    assert reader[("overall", "f1")]["diff"] == pytest.approx(10 / 3)
    assert {r["policy"] for r in res["rows"]} == {"append", "learned", "learned.llm-reader"}

    chart = tmp_path / "paired.png"
    proc = memstore_cli("bench", "compare", str(out), "--chart", str(chart), "--bootstrap", "500", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "heuristic" in proc.stdout and "learned" in proc.stdout and chart.stat().st_size > 5000
    bad = memstore_cli("bench", "compare", str(out), str(out), "--chart", str(chart))
    assert bad.returncode == 1 and "--chart" in bad.stderr


def test_publish_pools_runs_without_locomo_text(tmp_path):
    """`bench publish`: questions become sha256 ids, gold answers and judge reasons go, two
    conversations' runs pool into one table; a run folder, unequal runs or a policy missing
    from one run are refused in one line with nothing written."""
    import hashlib
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, {"append": {"c1": [(1, 0.0, False), (2, 0.5, True)]},
                  "learned": {"c1": [(1, 0.5, True), (2, 0.5, True)]}, "llm": {"c1": [(1, 0.1, False), (2, 0.1, False)]}})
    write_run(b, {"append": {"c2": [(2, 0.2, False)]}, "learned": {"c2": [(2, 1.0, True)]}})
    for run in (a, b):  # the harness also keeps the judge's reasoning, which quotes the gold answer
        for path in (run / "answers").glob("*.jsonl"):
            rows = [{**json.loads(line), "judge_reason": "gold says g"} for line in path.read_text().splitlines()]
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "pooled"
    proc = memstore_cli("bench", "publish", str(a), str(b), "--out", str(out), "--bootstrap", "500",
                        env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "left out (not answered on every conversation): llm" in proc.stdout
    rows = [json.loads(line) for p in sorted((out / "answers").glob("*.jsonl")) for line in p.read_text().splitlines()]
    assert len(rows) == 6 and all("gold" not in r and "judge_reason" not in r for r in rows)
    assert {r["question"] for r in rows} == {"sha256:" + hashlib.sha256(q.encode()).hexdigest()[:16] for q in ("q0", "q1")}
    table = json.loads((out / "results.json").read_text())
    assert table["meta"]["conversations"] == ["c1", "c2"] and set(table["policies"]) == {"append", "learned"}
    assert table["policies"]["learned"]["overall"]["n"] == 3
    assert table["policies"]["learned"]["overall"]["f1"] == pytest.approx(100 * 2 / 3)
    paired = json.loads((out / "paired.json").read_text())
    assert paired["best_baseline"] == "append" and paired["questions"] == 3
    assert (out / "paired_f1.png").stat().st_size > 5000 and (out / "f1.png").exists()
    again = memstore_cli("bench", "publish", str(out), "--out", str(tmp_path / "again"))  # ids stay ids
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "answers" / "c1.learned.jsonl").read_text() == (out / "answers" / "c1.learned.jsonl").read_text()

    peer = tmp_path / "peer"  # another policy on c1 and c2, run on its own (as mem0 is): one more row
    write_run(peer, {"mem0": {"c1": [(1, 0.0, False), (2, 0.0, False)], "c2": [(2, 0.0, False)]}})
    both = memstore_cli("bench", "publish", str(a), str(b), str(peer), "--out", str(tmp_path / "with-peer"))
    assert both.returncode == 0, both.stderr
    assert set(json.loads((tmp_path / "with-peer" / "results.json").read_text())["policies"]) == {"append", "learned", "mem0"}

    before = sorted(p.name for p in (a / "answers").iterdir())
    (tmp_path / "other").mkdir()
    other = json.loads((b / "results.json").read_text())
    other["meta"]["model"] = "another"
    (tmp_path / "other" / "answers").mkdir()
    for p in (b / "answers").iterdir():
        (tmp_path / "other" / "answers" / p.name).write_text(p.read_text())
    (tmp_path / "other" / "results.json").write_text(json.dumps(other))
    broken = tmp_path / "broken"  # an answers file cut off mid-line
    (broken / "answers").mkdir(parents=True)
    (broken / "results.json").write_text((a / "results.json").read_text())
    (broken / "answers" / "c3.llm.jsonl").write_text('{"task": "c3", "poli')
    for argv, says in (([str(a), "--out", str(a)], "one of the runs"),
                       ([str(broken), "--out", str(tmp_path / "x")], "not the harness's JSON lines"),
                       ([str(a), "--out", str(b)], "holds a run"),
                       ([str(a), str(tmp_path / "other"), "--out", str(tmp_path / "x")], "differ in model"),
                       ([str(a), str(b), "--policy", "llm", "--out", str(tmp_path / "x")], "not answered on every conversation"),
                       ([str(a), str(a), "--out", str(tmp_path / "x")], "answered in two runs"),
                       ([str(a), str(a / "answers"), "--out", str(tmp_path / "x")], "no results.json"),
                       ([str(tmp_path / "nope"), "--out", str(tmp_path / "x")], "no run folder"),
                       ([str(a), "--out", str(a / "results.json")], "is a file")):
        bad = memstore_cli("bench", "publish", *argv)
        assert bad.returncode == 1 and says in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "x").exists() and sorted(p.name for p in (a / "answers").iterdir()) == before
    assert "gold" in (b / "answers" / "c2.learned.jsonl").read_text()


def _with_prompts(run, manager, answer="a2"):
    table = json.loads((run / "results.json").read_text())
    table["meta"]["prompts"] = {"manager": manager, "answer": answer}
    (run / "results.json").write_text(json.dumps(table))


def test_publish_replaces_a_policy_rerun_on_its_own_only_when_asked(tmp_path):
    """`llm` rerun with a new decision prompt joins the table it was rerun for: refused as a
    duplicate without --replace; with it, the rerun's answers take the earlier ones' place and the
    meta says which, and which decision prompts the answers came from. Runs read with another
    answer prompt still cannot pool."""
    a, b, rerun = tmp_path / "a", tmp_path / "b", tmp_path / "rerun"
    write_run(a, {"append": {"c1": [(1, 0.0, False), (2, 0.5, True)]}, "llm": {"c1": [(1, 0.5, True), (2, 0.5, True)]}})
    write_run(b, {"append": {"c2": [(2, 0.2, False)]}, "llm": {"c2": [(2, 1.0, True)]}})
    write_run(rerun, {"llm": {"c1": [(1, 1.0, True), (2, 1.0, True)], "c2": [(2, 0.0, False)]}})
    for run, manager in ((a, "v2"), (b, "v2"), (rerun, "v3")):
        _with_prompts(run, manager)
    out = tmp_path / "pooled"
    bad = memstore_cli("bench", "publish", str(a), str(b), str(rerun), "--out", str(out))
    assert bad.returncode == 1 and "answered in two runs" in bad.stderr and "--replace" in bad.stderr, bad.stderr
    assert not out.exists()

    ok = memstore_cli("bench", "publish", str(a), str(b), str(rerun), "--replace", "--out", str(out), "--bootstrap", "500",
                      env={"COLUMNS": "200"})
    assert ok.returncode == 0, ok.stderr
    assert f"replaced: c1 llm: {a} replaced by {rerun}" in ok.stdout.replace("\n", "")
    table = json.loads((out / "results.json").read_text())
    assert table["policies"]["llm"]["overall"]["f1"] == pytest.approx(100 * 2 / 3)  # the rerun's 1, 1, 0
    assert table["meta"]["prompts"] == {"manager": ["v2", "v3"], "answer": "a2"}
    assert len(table["meta"]["replaced"]) == 2
    assert [json.loads(line)["f1"] for line in (out / "answers" / "c1.llm.jsonl").read_text().splitlines()] == [1.0, 1.0]
    again = memstore_cli("bench", "publish", str(out), "--out", str(tmp_path / "again"))  # a pooled folder pools again
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again" / "results.json").read_text())["meta"]["prompts"]["manager"] == ["v2", "v3"]

    only_llm = memstore_cli("bench", "publish", str(a), str(b), str(rerun), "--replace", "--policy", "llm",
                            "--out", str(tmp_path / "llm-only"))
    assert only_llm.returncode == 0, only_llm.stderr  # every llm answer is the rerun's: one decision prompt
    assert json.loads((tmp_path / "llm-only" / "results.json").read_text())["meta"]["prompts"]["manager"] == "v3"

    _with_prompts(rerun, "v3", answer="a3")
    other = memstore_cli("bench", "publish", str(a), str(b), str(rerun), "--replace", "--out", str(tmp_path / "x"))
    assert other.returncode == 1 and "differ in answer prompt" in other.stderr, other.stderr
    assert not (tmp_path / "x").exists()


def test_compare_against_pairs_the_same_policy_across_two_runs(tmp_path):
    """`bench compare NEW --against OLD`: each policy in both, new minus old on the questions both
    answered (a published folder's ids pair with a raw run's texts); the judge only where one
    model judged both."""
    old, new = tmp_path / "old", tmp_path / "new"
    write_run(old, {"append": {"c1": [(1, 0.2, False), (2, 0.4, True)]}, "llm": {"c1": [(1, 0.1, False), (2, 0.1, False)]}})
    write_run(new, {"append": {"c1": [(1, 0.5, True), (2, 0.4, True)]}, "learned": {"c1": [(1, 0.9, True), (2, 0.9, True)]}})
    published = tmp_path / "published"
    assert memstore_cli("bench", "publish", str(old), "--out", str(published), "--bootstrap", "200").returncode == 0
    from evaluation.paired import compare_folders
    res = compare_folders(new, published, n_boot=2000)
    assert [(r["policy"], r["metric"], r["n"]) for r in res["rows"]] == [("append", "f1", 2)]
    assert res["rows"][0]["diff"] == pytest.approx(15.0) and not res["judge_compared"]
    for run in (new, published):
        table = json.loads((run / "results.json").read_text())
        table["meta"]["judge"] = "the same judge"
        (run / "results.json").write_text(json.dumps(table))
    judged = {r["metric"]: r for r in compare_folders(new, published, n_boot=2000)["rows"]}
    assert judged["judge"]["diff"] == pytest.approx(50.0)
    proc = memstore_cli("bench", "compare", str(new), "--against", str(published), "--bootstrap", "500",
                        env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "+15.0" in proc.stdout and json.loads((new / "paired_against.json").read_text())["rows"]
    alone = tmp_path / "alone"
    write_run(alone, {"mem0": {"c1": [(1, 0.0, False)]}})
    bad = memstore_cli("bench", "compare", str(new), "--against", str(alone))
    assert bad.returncode == 1 and "share no policy" in bad.stderr and "Traceback" not in bad.stderr


def test_compare_against_pairs_a_policy_with_another_runs_baselines(tmp_path):
    """`--pair learned:llm`: this run's learned against the llm answers of another run, on the same
    questions; a policy missing on either side is a one-line error."""
    old, new = tmp_path / "old", tmp_path / "new"
    write_run(old, {"llm": {"c1": [(1, 0.1, False), (2, 0.3, False)]}, "append": {"c1": [(1, 0.2, False), (2, 0.2, False)]}})
    write_run(new, {"learned": {"c1": [(1, 0.9, True), (2, 0.5, True)]}})
    proc = memstore_cli("bench", "compare", str(new), "--against", str(old), "--pair", "learned:llm",
                        "--pair", "learned:append", "--bootstrap", "500", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((new / "paired_against.old.json").read_text())["rows"]
    assert [(r["policy"], r["metric"]) for r in rows] == [("learned - llm", "f1"), ("learned - append", "f1")]
    assert rows[0]["diff"] == pytest.approx(50.0) and rows[1]["diff"] == pytest.approx(50.0)
    for args, message in ((["--pair", "learned:mem0"], "no answers of 'mem0'"), (["--pair", "learned"], "NEW:OLD")):
        bad = memstore_cli("bench", "compare", str(new), "--against", str(old), *args)
        assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    bad = memstore_cli("bench", "compare", str(new), "--pair", "learned:llm")
    assert bad.returncode == 1 and "--against" in bad.stderr
