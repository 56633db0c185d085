"""How far to trust a judge: its verdicts on saved answers beside another judge's and beside the
token-overlap call (F1 >= 0.5), as raw agreement and Cohen's kappa (agreement beyond what two
raters with the same acceptance rates would reach by chance).

A judge's verdicts are kept per answer in `verdicts.<judge>.jsonl`, so a run resumes where it
stopped and a second judge reuses nothing of the first."""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path
from typing import Callable, Sequence

from .judge import CHUNK, judge_many

F1_CALL = "F1 >= 0.5"


def kappa(a: Sequence[bool], b: Sequence[bool]) -> float | None:
    """Cohen's kappa of two yes/no raters on the same items; None where chance agreement is
    total (both raters always say the same one thing), as kappa is undefined there."""
    if len(a) != len(b) or not a:
        raise ValueError("kappa needs two equally long, non-empty lists of verdicts")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    chance = pa * pb + (1 - pa) * (1 - pb)
    return None if chance == 1 else (observed - chance) / (1 - chance)


def agreement(a: Sequence[bool], b: Sequence[bool]) -> dict:
    return {"n": len(a), "agree": sum(x == y for x, y in zip(a, b)) / len(a), "kappa": kappa(a, b)}


def answer_rows(run: Path, policies: Sequence[str] | None = None, data: Path | None = None) -> list[dict]:
    """Every answer of a harness run (`answers/*.jsonl`), each with where it came from; only
    `policies`' answers where given (each must have some). A published folder's rows (questions
    as ids, no gold) get their question and gold back from `data`, the LoCoMo file."""
    rows = []
    for path in sorted((run / "answers").glob("*.jsonl")):
        for i, line in enumerate(path.read_text().splitlines()):
            if line.strip():
                rows.append({**json.loads(line), "_key": f"{path.name}:{i}"})
    if not rows:
        raise ValueError(f"no answers in {run / 'answers'} (a folder written by `memstore bench`)")
    if policies:
        have = sorted({str(r.get("policy")) for r in rows})
        if missing := [p for p in policies if p not in have]:
            raise ValueError(f"no answers of {', '.join(missing)} in {run}: it has {', '.join(have)}")
        rows = [r for r in rows if r.get("policy") in policies]
    if any("gold" not in r for r in rows):
        if data is None:
            raise ValueError(f"{run} holds published answers (questions as sha256 ids, no gold answers): "
                             "pass --data with the LoCoMo file they came from")
        from .publish import restore
        rows = restore(rows, data)
    return rows


def judge_file(out: Path, name: str) -> Path:
    return out / f"verdicts.{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.jsonl"


def rejudge(rows: list[dict], llm, path: Path, on_row: Callable[[], None] = lambda: None) -> list[bool]:
    """The judge's verdict on each row, resuming from (and appending to) `path`; a saved verdict
    is reused only for the same question, gold and answer (a rerun run's answers are judged anew)."""
    def ident(row: dict) -> list:
        return [row["_key"], row["question"], str(row["gold"]), row.get("answer") or ""]

    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                done[json.dumps(rec["item"])] = rec["correct"]
    todo = [row for row in rows if json.dumps(ident(row)) not in done]
    for _ in range(len(rows) - len(todo)):
        on_row()
    with path.open("a") as f:
        for start in range(0, len(todo), CHUNK):  # judged a chunk at a time (batched decoding), saved as they come
            chunk = todo[start:start + CHUNK]
            verdicts = judge_many(llm, [(row["question"], str(row["gold"]), row.get("answer") or "") for row in chunk])
            for row, verdict in zip(chunk, verdicts):
                done[json.dumps(ident(row))] = verdict.correct
                f.write(json.dumps({"item": ident(row), "correct": verdict.correct, "reason": verdict.reason},
                                   ensure_ascii=False) + "\n")
                on_row()
            f.flush()
    return [done[json.dumps(ident(row))] for row in rows]


def report(rows: list[dict], verdicts: dict[str, list[bool]]) -> dict:
    """Each rater's acceptance rate, and agreement + kappa for every pair of raters (the judges
    and the F1 call)."""
    raters = {**verdicts, F1_CALL: [float(r["f1"]) >= 0.5 for r in rows]}
    by_policy: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_policy.setdefault(str(r.get("policy", "")), []).append(i)
    return {"n": len(rows),
            "paired": paired_by_rater(rows, raters),
            "accepted": {name: sum(v) / len(v) for name, v in raters.items()},
            "accepted_by_policy": {p: {"n": len(ix), **{name: sum(v[i] for i in ix) / len(ix) for name, v in raters.items()}}
                                   for p, ix in by_policy.items()},
            "pairs": [{"a": a, "b": b, **agreement(raters[a], raters[b])} for a, b in combinations(raters, 2)]}


def paired_by_rater(rows: list[dict], raters: dict[str, list[bool]]) -> list[dict]:
    """Each policy's acceptance minus the best baseline's (the baseline with the best mean F1, as
    `bench compare` picks it) by each rater, on the questions every policy answered, with a
    paired bootstrap 95% interval, in points; empty where the rows hold no baseline."""
    from .paired import common_and_best, paired_bootstrap

    by_policy: dict[str, dict[tuple, dict]] = {}  # keyed as `evaluation.paired` keys a run's rows
    for i, r in enumerate(rows):
        if "policy" in r:
            by_policy.setdefault(r["policy"], {})[(r.get("task"), int(r["_key"].rsplit(":", 1)[-1]), r["question"])] = \
                {"f1": r["f1"], "i": i}
    if len(by_policy) < 2:
        return []
    try:
        keys, best = common_and_best(by_policy)
    except ValueError:  # no baseline, or nothing answered by all: nothing to compare with
        return []
    at = lambda p: [by_policy[p][k]["i"] for k in keys]  # noqa: E731
    return [{"policy": p, "baseline": best, "rater": name,
             **paired_bootstrap([100.0 * v[i] for i in at(best)], [100.0 * v[i] for i in at(p)])}
            for p in by_policy if p != best for name, v in raters.items()]


def chart(result: dict, path: Path) -> None:
    """Heat map of pairwise agreement, kappa in each cell."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(result["accepted"])
    agree, text = np.eye(len(names)), [["" for _ in names] for _ in names]
    for p in result["pairs"]:
        i, j = names.index(p["a"]), names.index(p["b"])
        agree[i, j] = agree[j, i] = p["agree"]
        k = "n/a" if p["kappa"] is None else f"{p['kappa']:.2f}"
        text[i][j] = text[j][i] = f"{p['agree']:.0%}\nκ {k}"
    fig, ax = plt.subplots(figsize=(1.9 * len(names) + 1.5, 1.6 * len(names) + 1))
    ax.imshow(agree, vmin=0.5, vmax=1, cmap="Greens")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, text[i][j] or f"accepts\n{result['accepted'][names[i]]:.0%}", ha="center", va="center",
                    fontsize=9, color="white" if agree[i, j] > 0.85 else "black")
    labels = [n if len(n) < 28 else n[:25] + "..." for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), labels, fontsize=8)
    ax.set_title(f"judge agreement on {result['n']} answers")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
