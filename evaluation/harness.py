"""The LoCoMo (and LongMemEval-format) evaluation harness behind `memstore bench`.

One run evaluates several manager policies on the same backbone, side by side. Each
conversation gets one SQLite file under the output folder, with one bank per policy (so the
fact-extraction cache is shared: facts are extracted once per turn, whatever the policy).
Everything is resumable: ingest skips applied turns, and answers/verdicts are appended to
`answers/CONV.POLICY.jsonl` as they come, so an interrupted run continues where it stopped."""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from memstore import MemoryStore
from memstore.errors import BadInput

from policy.agent import make_answerer, make_policy
from memstore.ingest import ingest
from policy.prompts import ANSWER_MAX_CHARS, ANSWER_PROMPT_VERSION
from policy.runtime import LLM
from policy.turns import QA, Turn

from .facts import facts_lost
from .judge import CHUNK, judge_many
from .metrics import bleu1, f1_set, score_official
from .observations import ObservationsPolicy

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


@dataclass
class Task:
    """One bank to build and question: a LoCoMo conversation or a LongMemEval record."""
    name: str
    turns: list[Turn]
    questions: list[QA]
    observations: dict | None = None  # LoCoMo's annotations per turn, for --policy observations
    scope: str = ""                   # how the data was cut (e.g. "sessions=3"): a bank is never resumed under another


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pss_mb() -> float:
    """The process's proportional memory now (Linux; 0 elsewhere). RSS counts a memory-mapped model
    once per context that maps it, so with several llama.cpp contexts it overstates what the
    process takes from the machine; PSS counts each shared page once."""
    try:
        text = Path("/proc/self/smaps_rollup").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _record_memory(timing: dict) -> None:
    timing["peak_rss_mb"] = max(timing.get("peak_rss_mb", 0.0), peak_rss_mb())
    timing["pss_mb"] = max(timing.get("pss_mb", 0.0), pss_mb())


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill: drop it, it is answered again
    return rows


def _check_same_models(timing: dict, store: MemoryStore, answered: bool, **models: str) -> None:
    """A resumed run must use the models (backbone, adapters, prompts, judge) that made what it
    resumes: otherwise one bank or one answers file would silently mix two systems. `models`:
    manager and extractor, then those that write the answers file. Records them where they are new."""
    ingested = store.conn.execute("SELECT 1 FROM inputs WHERE bank = ? LIMIT 1", (store.bank,)).fetchone() is not None
    for key, now in models.items():
        started = ingested if key in ("manager", "extractor") else answered
        before = timing.get(key)
        if before and started and before != now:
            raise BadInput(f"bank {store.bank!r} in {store.path} was built with {key} {before}, "
                           f"this run would use {now}: use another --out")
        timing[key] = now


def _answerer_id(answerer) -> str:
    """What writes an answers file: the reader's model (adapter included), prompt, memory count,
    retrieval (the embedding's order, its tail filled by a word match) and the answer's bound in
    characters (`prompts.ANSWER_MAX_CHARS`)."""
    return f"{answerer.llm.identity}/prompt:{ANSWER_PROMPT_VERSION}/k={answerer.k}/hybrid/chars<={ANSWER_MAX_CHARS}"


def run_task(task: Task, policy_name: str, llm: LLM, judge_llm: LLM, out: Path,
             progress: Callable[[str, int, int], None] | None = None,
             adapters: tuple[str | None, str | None] = (None, None),
             memories: int | None = None, expire_after: tuple[str, ...] = (), endpoint: str | None = None,
             extractor: LLM | None = None, extract_adapter: str | None = None) -> list[dict]:
    """Ingest the task's turns into bank `policy_name`, then answer and grade its questions.
    `adapters` (manager, answer) apply to the learned policy (default: the shipped ones);
    `memories` shown per answer (default: 10, or for `learned` the count its answer adapter was
    trained with); `expire_after`: the rules of the `stack` policy; `endpoint`: mem0's LLM
    (default: the backbone served on loopback); `extractor`: another backbone extracting the facts;
    `extract_adapter`: an extraction adapter on the backbone (for learned, default: the shipped one)."""
    learned = policy_name == "learned"
    if policy_name == "observations":
        if task.observations is None:
            raise BadInput(f"{task.name} has no annotated observations: --policy observations is for LoCoMo data")
        policy = ObservationsPolicy(task.observations)
    elif policy_name == "mem0":
        from .mem0_peer import Mem0Policy
        policy = Mem0Policy(llm, out / "mem0" / task.name, task.name, endpoint)
    else:
        policy = make_policy(policy_name, llm, adapters[0] if learned else None, expire_after=expire_after,
                             extractor=extractor, extract_adapter=extract_adapter)
    answerer = make_answerer(policy_name, llm, adapters[1] if learned else None, k=memories)
    answers_path = out / "answers" / f"{task.name}.{policy_name}.jsonl"
    timing_path = out / "answers" / f"{task.name}.{policy_name}.timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {"ingest_s": 0.0, "answer_s": 0.0}
    done = _read_jsonl(answers_path)
    answered_before = len(done)
    store = MemoryStore(out / f"{task.name}.db", policy_name)
    try:
        _check_same_models(timing, store, answered_before > 0,
                           manager=policy.actor + (f"/{task.scope}" if task.scope else ""),
                           extractor=getattr(getattr(policy, "llm", None), "identity", "none"),
                           answerer=_answerer_id(answerer), judge=judge_llm.identity)
    except BadInput:
        store.close()
        raise
    timing_path.parent.mkdir(parents=True, exist_ok=True)

    def on_turn(n: int, total: int, _input_id: str) -> None:
        # written as it goes, so a killed ingest keeps the time it spent
        timing["ingest_s"] = ingest_before + time.perf_counter() - t
        if n % 10 == 0 or n == total:
            timing_path.write_text(json.dumps(timing))
        if progress:
            progress("ingest", n, total)

    ingest_before, t = timing["ingest_s"], time.perf_counter()
    try:
        report = ingest(store, policy, task.turns, progress=on_turn)
    finally:
        if hasattr(policy, "close"):  # mem0's server
            policy.close()
    if report.applied or "facts_lost" not in timing:
        timing["facts_lost"] = facts_lost(store)
    if hasattr(policy, "expire") and task.questions:  # scheduled expiry, due by the last question's time
        with store.transaction():
            policy.expire(store, max(qa.asked_at for qa in task.questions))
    timing_path.write_text(json.dumps(timing))

    done = answer_task(task, policy_name, store, answerer, judge_llm, answers_path, done, timing, timing_path,
                       CHUNK, progress)
    store.close()
    # Keep the highest peak of the processes that did work on this task; a rerun that only reads
    # the results (its process may hold other policies' models by now) leaves it alone.
    if report.applied or len(done) > answered_before or "peak_rss_mb" not in timing:
        _record_memory(timing)
    timing_path.write_text(json.dumps(timing))
    return done


def answer_task(task: Task, name: str, store: MemoryStore, answerer, judge_llm: LLM, answers_path: Path,
                done: list[dict], timing: dict, timing_path: Path, chunk: int = CHUNK,
                progress: Callable[[str, int, int], None] | None = None) -> list[dict]:
    """Answer and grade the task's questions not in `done` from `store`, appending each row to
    `answers_path` as it comes, a chunk of questions at a time, decoded together (a row's
    answer_s is then its share of the chunk's time); chunk=1 answers one by one."""
    # Rewrite the whole lines kept (a kill may have cut the last one) into a temporary file that
    # replaces the answers file at once, then append: a kill at any point keeps every answer.
    tmp = answers_path.with_suffix(".jsonl.tmp")
    with open(tmp, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in done)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, answers_path)
    with open(answers_path, "a") as f:
        for start in range(len(done), len(task.questions), chunk):
            qas = task.questions[start:start + chunk]
            t = time.perf_counter()
            answers = answerer.answer_many([answerer.ask(store, qa.question, qa.asked_at, qa.asked_at) for qa in qas])
            elapsed = (time.perf_counter() - t) / len(qas)
            verdicts = judge_many(judge_llm, [(qa.question, qa.answer, a.answer) for qa, a in zip(qas, answers)])
            for qa, answer, verdict in zip(qas, answers, verdicts):
                row = {"task": task.name, "policy": name, "question": qa.question, "gold": qa.answer,
                       "category": qa.category, "answer": answer.answer, "kept": [h.id for h in answer.kept],
                       "f1": score_official(answer.answer, qa.answer, qa.category),
                       "f1_set": f1_set(answer.answer, qa.answer), "bleu1": bleu1(answer.answer, qa.answer),
                       "judge": verdict.correct, "judge_reason": verdict.reason, "answer_s": elapsed}
                f.write(json.dumps(row) + "\n")
                done.append(row)
            f.flush()
            timing["answer_s"] += elapsed * len(qas)
            timing_path.write_text(json.dumps(timing))
            if progress:
                progress("answer", len(done), len(task.questions))
    return done


def reread_task(task: Task, bank: str, reader: str, name: str, llm: LLM, judge_llm: LLM, out: Path,
                answer_adapter: str | None = None, memories: int | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> list[dict]:
    """Answer the task's questions from bank `bank` of a finished run with the Answer Agent of
    policy `reader` (e.g. the learned manager's bank read by the untrained agent), saved as the
    run's policy `name`: separates what a manager's bank is worth from what its reader adds.
    The bank is only read."""
    db = out / f"{task.name}.db"
    bank_timing = out / "answers" / f"{task.name}.{bank}.timing.json"
    if not db.exists() or not bank_timing.exists():
        raise BadInput(f"no bank {bank!r} of {task.name} in {out}: run `memstore bench` with --policy {bank} first")
    built = json.loads(bank_timing.read_text())
    if "reader" in built:  # opening it as a bank would create an empty one
        raise BadInput(f"{bank!r} is a reread row, not a bank: --bank {built['bank']}")
    answerer = make_answerer(reader, llm, answer_adapter, k=memories)
    answers_path = out / "answers" / f"{task.name}.{name}.jsonl"
    timing_path = out / "answers" / f"{task.name}.{name}.timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else \
        {"ingest_s": built["ingest_s"], "answer_s": 0.0, "bank": bank, "reader": reader}
    if (timing.get("bank"), timing.get("reader")) != (bank, reader):
        raise BadInput(f"{answers_path.name} holds answers from bank {timing.get('bank')!r} read by "
                       f"{timing.get('reader')!r}: choose another --as")
    done = _read_jsonl(answers_path)
    store = MemoryStore(db, bank)
    try:
        _check_same_models(timing, store, bool(done), manager=built.get("manager", ""),
                           answerer=_answerer_id(answerer), judge=judge_llm.identity)
        timing_path.parent.mkdir(parents=True, exist_ok=True)
        before = len(done)
        done = answer_task(task, name, store, answerer, judge_llm, answers_path, done, timing, timing_path,
                           progress=progress)
    finally:
        store.close()
    if len(done) > before or "peak_rss_mb" not in timing:
        _record_memory(timing)
    timing_path.write_text(json.dumps(timing))
    return done


def summarize(rows: list[dict]) -> dict:
    """Overall and per-category means (in %): LoCoMo categories by name, LongMemEval by type."""
    def agg(rs):
        n = len(rs)
        return {"n": n, **{m: 100 * sum(float(r[m]) for r in rs) / n if n else 0.0
                           for m in ("f1", "f1_set", "bleu1", "judge")}}
    out = {"overall": agg(rows)}
    for cat in sorted({r["category"] for r in rows}, key=str):
        out[CATEGORIES.get(cat, str(cat))] = agg([r for r in rows if r["category"] == cat])
    return out


def results(out: Path, tasks: list[str], policies: list[str], meta: dict) -> dict:
    table = {"meta": meta, "policies": {}}
    for policy in policies:
        rows, ingest_s, answer_s, rss, pss, lost = [], 0.0, 0.0, 0.0, 0.0, {"decided": 0, "lost": 0}
        for task in tasks:
            rows += _read_jsonl(out / "answers" / f"{task}.{policy}.jsonl")
            tp = out / "answers" / f"{task}.{policy}.timing.json"
            if tp.exists():
                t = json.loads(tp.read_text())
                ingest_s += t["ingest_s"]
                answer_s += t["answer_s"]
                rss = max(rss, t.get("peak_rss_mb", 0.0))
                pss = max(pss, t.get("pss_mb", 0.0))
                for k in lost:
                    lost[k] += t.get("facts_lost", {}).get(k, 0)
        table["policies"][policy] = {**summarize(rows), "ingest_s": ingest_s, "answer_s": answer_s,
                                     "peak_rss_mb": rss, "pss_mb": pss,  # scalars: a dict here is read as a category
                                     "facts_lost": lost["lost"], "facts_decided": lost["decided"]}
    (out / "results.json").write_text(json.dumps(table, indent=2))
    return table


def plot(table: dict, out: Path) -> list[Path]:
    """One PNG bar chart per metric: policies side by side, per category and overall."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(table["policies"])
    groups = list(dict.fromkeys(g for p in policies for g in table["policies"][p]
                                if isinstance(table["policies"][p][g], dict)))
    paths = []
    for metric, label in (("f1", "F1 (official LoCoMo)"), ("f1_set", "F1 (set-based, mem0)"),
                          ("bleu1", "BLEU-1"), ("judge", "LLM judge accuracy")):
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.8 / max(len(policies), 1)
        for i, p in enumerate(policies):
            vals = [table["policies"][p].get(g, {}).get(metric, 0.0) for g in groups]
            ax.bar([x + i * width for x in range(len(groups))], vals, width, label=p)
        ax.set_xticks([x + width * (len(policies) - 1) / 2 for x in range(len(groups))])
        ax.set_xticklabels(groups)
        ax.set_ylabel(label + " (%)")
        ax.set_title(f"{label} - {table['meta'].get('model', '')}")
        ax.legend()
        fig.tight_layout()
        path = out / f"{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
