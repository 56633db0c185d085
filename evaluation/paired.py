"""Paired comparisons of policies answered on the same questions.

With 20-80 questions a conversation, two policies' mean F1 differ by several points by chance;
what tells them apart is the per-question difference. `paired_bootstrap` resamples the questions
(the same draw for both policies) and gives the mean difference with a percentile interval;
`compare_run` does it for each policy of a harness run against the best baseline, overall and per
LoCoMo category, from the per-question scores in `answers/*.jsonl`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evaluation.publish import question_id

BASELINES = ("append", "heuristic", "stack", "llm")
METRICS = ("f1", "judge")


def paired_bootstrap(a, b, *, n_boot: int = 10_000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean of b - a over paired items, with the (alpha/2, 1 - alpha/2) percentile interval of that
    mean over `n_boot` resamples of the items."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired_bootstrap needs two equally long, non-empty lists of scores")
    diff = b - a
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {"n": int(len(diff)), "diff": float(diff.mean()), "lo": float(lo), "hi": float(hi)}


def _rows(out: Path) -> dict[str, dict[tuple, dict]]:
    """policy -> {(task, position, question): answer row}, from the run's answers files."""
    by_policy: dict[str, dict[tuple, dict]] = {}
    for path in sorted((out / "answers").glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for i, r in enumerate(rows):  # each row names its task and policy (a reread's name may hold a dot)
            by_policy.setdefault(r["policy"], {})[(r["task"], i, r["question"])] = r
    return by_policy


def common_and_best(by_policy: dict[str, dict[tuple, dict]], what: str = "the policies") -> tuple[list, str]:
    """The questions every policy answered, and the baseline with the highest mean F1 on them:
    what every paired comparison is made against."""
    common = sorted(set.intersection(*(set(r) for r in by_policy.values())), key=str)
    if not common:
        raise ValueError(f"{what} answered no question in common")
    baselines = [p for p in BASELINES if p in by_policy]
    if not baselines:
        raise ValueError(f"no baseline ({', '.join(BASELINES)}) among {what}")
    return common, max(baselines, key=lambda p: np.mean([float(by_policy[p][k]["f1"]) for k in common]))


def compare_run(out: Path, *, categories: dict | None = None, n_boot: int = 10_000) -> dict:
    """Each policy against the best baseline (the baseline with the highest mean F1 on the
    questions every policy answered), per metric, overall and per category, in points (x100)."""
    by_policy = _rows(out)
    if not by_policy:
        raise ValueError(f"no answers in {out / 'answers'}")
    common, best = common_and_best(by_policy, f"the policies of {out}")
    score = lambda p, m, keys: [float(by_policy[p][k][m]) * 100 for k in keys]
    groups = {"overall": common}
    for key in common:
        cat = by_policy[best][key]["category"]
        groups.setdefault((categories or {}).get(cat, str(cat)), []).append(key)
    rows = []
    for policy in sorted(by_policy):
        if policy == best:
            continue
        for group, keys in groups.items():
            for metric in METRICS:
                stats = paired_bootstrap(score(best, metric, keys), score(policy, metric, keys), n_boot=n_boot)
                rows.append({"policy": policy, "group": group, "metric": metric, **stats,
                             "best_mean": float(np.mean(score(best, metric, keys))),
                             "policy_mean": float(np.mean(score(policy, metric, keys)))})
    return {"run": str(out), "best_baseline": best, "questions": len(common), "rows": rows}


def _meta(out: Path) -> dict:
    path = out / "results.json"
    return json.loads(path.read_text()).get("meta", {}) if path.exists() else {}


def compare_folders(new: Path, old: Path, *, n_boot: int = 10_000,
                    pairs: list[tuple[str, str]] | None = None) -> dict:
    """Each policy answered in both folders (two runs that differ in something outside the
    policy: the extraction model, a prompt), new minus old on the questions both answered, paired
    by conversation, position and question id (a published folder pairs with a raw run); or each
    (new policy, old policy) of `pairs` (a policy against baselines measured in another run). The
    judge is compared only where both runs were judged by the same model."""
    rekey = lambda rows: {(k[0], k[1], question_id(k[2])): r for k, r in rows.items()}
    a, b = _rows(old), _rows(new)
    judge = _meta(new).get("judge")
    same_judge = judge is not None and judge == _meta(old).get("judge")
    rows = []
    for policy, was in pairs or [(p, p) for p in sorted(set(a) & set(b))]:
        if policy not in b or was not in a:
            raise ValueError(f"no answers of {policy!r} in {new}" if policy not in b else f"no answers of {was!r} in {old}")
        olds, news = rekey(a[was]), rekey(b[policy])
        keys = sorted(set(olds) & set(news), key=str)
        if not keys:
            continue
        for metric in METRICS if same_judge else ("f1",):
            x = [float(olds[k][metric]) * 100 for k in keys]
            y = [float(news[k][metric]) * 100 for k in keys]
            rows.append({"policy": policy if was == policy else f"{policy} - {was}", "metric": metric,
                         **paired_bootstrap(x, y, n_boot=n_boot),
                         "old_mean": float(np.mean(x)), "new_mean": float(np.mean(y))})
    if not rows:
        raise ValueError(f"{new} and {old} share no policy answered on the same questions")
    return {"new": str(new), "old": str(old), "judge_compared": same_judge, "rows": rows}


def chart(result: dict, path: Path, metric: str = "f1") -> None:
    """Forest plot: each policy's difference to the best baseline, overall and per category."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["metric"] == metric]
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.32 * len(rows)))
    for y, r in enumerate(rows):
        ax.plot([r["lo"], r["hi"]], [y, y], color="#1f77b4")
        ax.plot([r["diff"]], [y], "o", color="#1f77b4")
    ax.axvline(0, color="#888888", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [f"{r['policy']} · {r['group']} (n={r['n']})" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} difference to {result['best_baseline']} (points), paired bootstrap 95% interval")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
