"""Harness runs made fit to commit: LoCoMo is CC BY-NC and stays out of the repository.

A run folder holds each question, its gold answer and the judge's reasoning (which quotes both).
`publish` copies one or more runs' answers into a folder where each question is `sha256:` + 16 hex
digits of its text (still unique, still pairs the same question across policies and runs) and the
gold answer and judge reason are gone; the scores, the model's own answers, the kept memory ids and
the timings stay. Several runs (split by conversation, or a peer policy run on its own) make one
pooled folder, so a comparison over conversations is a command, not a hand-made copy; `restore`
gives a published folder its questions and gold back from the LoCoMo file, to judge it again. The folder gets results.json, the per-metric
charts and, from `evaluation.paired`, paired.json and paired_f1.png.

A policy rerun on its own (`llm` with a new decision prompt) joins the table it was rerun for with
`replace`: its answers take the place of the earlier run's for the same conversation and policy,
and the table's meta says which were replaced. Runs may differ in the decision prompt (it is part
of each answer set's manager identity) but not in the answer prompt every policy is read with."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from memstore.errors import BadInput

PRIVATE = ("gold", "judge_reason")
PREFIX = "sha256:"
SAME = ("model", "judge", "path", "memories", "sessions", "limit")  # what pooled runs must share (+ the answer prompt)


def question_id(question: str) -> str:
    """The published stand-in for a question (idempotent: an id stays itself)."""
    if question.startswith(PREFIX):
        return question
    return PREFIX + hashlib.sha256(question.encode()).hexdigest()[:16]


def scrub(row: dict) -> dict:
    return {k: (question_id(v) if k == "question" else v) for k, v in row.items() if k not in PRIVATE}


def restore(rows: list[dict], data: Path) -> list[dict]:
    """Published rows given back their question and gold answer from the LoCoMo file they came
    from, matched by task and question id, so a published folder can be judged again by anyone
    who has the data. A row already holding its gold is left as it is."""
    from policy.inputs import locomo_conversations

    todo = sorted({str(r.get("task")) for r in rows if "gold" not in r})
    if not todo:
        return rows
    known: dict[tuple[str, str], tuple[str, str]] = {}
    for sample in locomo_conversations(data, todo):
        for q in sample.get("qa", []):
            if q.get("category") != 5 and "answer" in q:
                known[(sample["sample_id"], question_id(str(q["question"])))] = (str(q["question"]), str(q["answer"]))
    out = []
    for r in rows:
        if "gold" not in r:
            hit = known.get((str(r.get("task")), question_id(str(r["question"]))))
            if hit is None:
                raise BadInput(f"question {r['question']} of {r.get('task')} is not in {data}")
            r = {**r, "question": hit[0], "gold": hit[1]}
        out.append(r)
    return out


def _answers(run: Path) -> dict[tuple[str, str], Path]:
    """(task, policy) -> answers file of a run, named by the rows themselves."""
    found = {}
    for path in sorted((run / "answers").glob("*.jsonl")):
        first = next((line for line in path.read_text().splitlines() if line.strip()), None)
        if first is not None:
            row = json.loads(first)
            found[(row["task"], row["policy"])] = path
    return found


def _meta(runs: list[Path]) -> list[dict]:
    metas = []
    for run in runs:
        path = run / "results.json"
        if not path.exists():
            raise BadInput(f"no results.json in {run}: not a finished `memstore bench` run")
        metas.append(json.loads(path.read_text())["meta"])
    for key in SAME:
        _same(key, [m.get(key) for m in metas])
    _same("answer prompt", [(m.get("prompts") or {}).get("answer") for m in metas])
    return metas


def _same(key: str, values: list) -> None:
    """Refuse to pool runs that differ in `key` (their scores would not be comparable)."""
    seen = {json.dumps(v, sort_keys=True) for v in values}
    if len(seen) > 1:
        raise BadInput(f"the runs differ in {key} ({' vs '.join(sorted(seen))}): they cannot be pooled")


def _prompts(metas: list[dict]) -> dict | None:
    """The prompts of the runs that gave answers: one decision prompt, or the list when they differ."""
    if not any(m.get("prompts") for m in metas):
        return None
    managers = []
    for m in metas:  # a pooled folder published again already holds a list
        got = (m.get("prompts") or {}).get("manager")
        managers += [v for v in (got if isinstance(got, list) else [got]) if v not in managers]
    return {"manager": managers[0] if len(managers) == 1 else managers, "answer": (metas[0].get("prompts") or {}).get("answer")}


def _guard(dest: Path, runs: list[Path]) -> None:
    """Refuse to write into a run folder (its answers hold the gold answers a publish drops)."""
    if any(dest.resolve() == r.resolve() for r in runs):
        raise BadInput(f"{dest} is one of the runs: publish into another folder")
    if dest.exists() and not dest.is_dir():
        raise BadInput(f"{dest} is a file: --out takes a folder")

    def holds_gold(path: Path) -> bool:
        first = next((line for line in path.read_text().splitlines() if line.strip()), "{}")
        return any(k in json.loads(first) for k in PRIVATE)

    if dest.exists() and (any(dest.glob("*.db")) or any(holds_gold(p) for p in (dest / "answers").glob("*.jsonl"))):
        raise BadInput(f"{dest} holds a run (a database or gold answers): publish into another folder")


def publish(runs: list[Path], dest: Path, policies: list[str] | None = None, replace: bool = False) -> dict:
    """Copy the runs' answers for `policies` (default: those answered on every conversation the
    runs hold) into `dest`, scrubbed, and rebuild its results.json. Runs may split by conversation
    or by policy (a peer run beside the main one); the same conversation and policy twice is
    refused, or with `replace` taken from the later run. Returns the table, with the policies left
    out (and the answer sets replaced) in its meta."""
    from .harness import plot, results

    metas = _meta(runs)
    found: dict[tuple[str, str], Path] = {}
    replaced: list[tuple[tuple[str, str], str]] = []
    for run in runs:
        for key, path in _answers(run).items():
            if key in found:
                if not replace:
                    raise BadInput(f"{key[0]} {key[1]} is answered in two runs ({found[key].parent.parent} and {run}):"
                                   " --replace takes the later one")
                replaced.append((key, f"{key[0]} {key[1]}: {found[key].parent.parent} replaced by {run}"))
            found[key] = path
    tasks = list(dict.fromkeys(task for task, _ in found))
    everywhere = sorted({p for _, p in found if all((t, p) in found for t in tasks)})
    if policies is None:
        policies = everywhere
    missing = [p for p in policies if p not in everywhere]
    if missing or not policies:
        raise BadInput(f"policy {', '.join(missing) or '(none)'} is not answered on every conversation "
                       f"({', '.join(tasks) or 'none'}); all of them have: {', '.join(everywhere) or 'none'}")
    _guard(dest, runs)
    answers = dest / "answers"
    answers.mkdir(parents=True, exist_ok=True)
    for old in [*answers.glob("*.jsonl"), *answers.glob("*.timing.json")]:
        old.unlink()  # a published folder is derived: rebuilt whole
    for (task, policy), path in found.items():
        if policy not in policies:
            continue
        rows = [scrub(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
        (answers / path.name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        timing = path.with_name(path.name[:-len(".jsonl")] + ".timing.json")
        if timing.exists():
            (answers / timing.name).write_text(timing.read_text())
    left_out = sorted({p for _, p in found} - set(policies))
    used = {path.parent.parent for (_, policy), path in found.items() if policy in policies}
    said = [line for (_, policy), line in replaced if policy in policies]
    data = list(dict.fromkeys(str(m.get("data")) for m in metas))
    extra = {k: v for m in reversed(metas) for k, v in m.items()
             if k not in (*SAME, "data", "conversations", "policies", "prompts")}
    meta = {"data": data[0] if len(data) == 1 else data, **{k: metas[0].get(k) for k in SAME}, **extra,
            "prompts": _prompts([m for r, m in zip(runs, metas) if r in used]),
            "conversations": tasks, "policies": policies, "published_from": [str(r) for r in runs], "left_out": left_out,
            **({"replaced": said} if said else {})}
    table = results(dest, tasks, policies, meta)
    plot(table, dest)
    return table
