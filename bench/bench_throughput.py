"""One LoCoMo conversation through a policy's ingest (facts not cached) and answers, as serving
runs them: where the time goes.

    python bench/bench_throughput.py                          # conv-30 whole, policy llm
    python bench/bench_throughput.py --policy learned         # the trained adapters
    python bench/bench_throughput.py --turns 40 --questions 8 # a cut, for a quick look
    python bench/bench_throughput.py --memories 20 --second-model qwen1.5b

Per phase (extraction, decisions, answers): wall, model calls, prompt tokens, how many of them
the model evaluated (the rest reused from the KV cache), generated tokens, and tokens/s; beside
them the baseline, the raw runtime on a fixed prompt measured in the same run, so each figure
also reads as a ratio to the machine's own speed. Serving extracts in batches a window ahead,
makes no model call where the decision schema leaves no choice, shows `--memories` to the Answer
Agent and answers 16 questions at a time.

A long run resumes: each finished phase is kept in `--out`/state.json and skipped by a rerun of
the same command; an unfinished one starts over."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from memstore import MemoryStore  # noqa: E402
from memstore.cpu import threads  # noqa: E402
from memstore.ingest import ingest  # noqa: E402
from policy.agent import make_answerer, make_policy  # noqa: E402
from policy.answer import AnswerAgent  # noqa: E402
from policy.manager import LLMPolicy  # noqa: E402
from policy.runtime import load  # noqa: E402
from policy.inputs import load_turns  # noqa: E402
from evaluation.datasets import locomo_qa  # noqa: E402
from evaluation.judge import CHUNK  # noqa: E402
from evaluation.metrics import score_official  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "locomo_dev.json"
console = Console(width=150)


def reference(model: str | None) -> dict:
    """Raw llama.cpp speed on fixed text: 512 prompt tokens in one batch, 64 greedy tokens."""
    llama = load(model, batch=1)._context("")
    tokens = llama.tokenize(("The committee met on Tuesday to review the budget, the hiring plan and the "
                             "schedule for the spring release. " * 40).encode())[:512]
    llama.reset()
    t = time.perf_counter()
    llama.eval(tokens)
    prompt = len(tokens) / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(64):
        llama.eval([llama.sample(temp=0.0)])
    return {"prompt_tok_s": round(prompt, 1), "gen_tok_s": round(64 / (time.perf_counter() - t), 1)}


def usage_row(llm, wall: float | None = None) -> dict:
    u = llm.usage
    return {"wall_s": round(wall if wall is not None else u.seconds, 1), "model_s": round(u.seconds, 1),
            "calls": u.calls, "prompt_tokens": u.prompt_tokens, "evaluated": u.prompt_evaluated,
            "reused": u.prompt_tokens - u.prompt_evaluated, "generated": u.completion_tokens,
            "gen_tok_s": round(u.completion_tokens / u.seconds, 1) if u.seconds else 0.0}


def fresh(db: Path) -> None:
    for f in db.parent.glob(db.name + "*"):
        f.unlink()


def run_ingest(path: str, model, turns, db: Path, policy_name: str = "llm") -> dict:
    """Serving's policy; `llm` gets separate extractor (batched) and decider runtimes so each
    phase's usage is its own (`learned` has them already: one per adapter)."""
    fresh(db)
    if policy_name == "llm":
        policy = LLMPolicy(load(model, batch=16), decider=load(model, batch=1))
    else:
        policy = make_policy(policy_name, load(model, batch=16))
    extractor, decider = policy.llm, policy.decider
    if extractor is decider:
        raise SystemExit(f"policy {policy_name}: extraction and decisions share one runtime, phases not separable")
    for llm in (extractor, decider):  # the shipped adapters' runtimes are shared: count this run only
        llm.usage.__init__()
    store = MemoryStore(db, "bench")
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"{path}: ingest", total=len(turns))
        t = time.perf_counter()
        report = ingest(store, policy, turns, progress=lambda n, total, _id: bar.update(task, completed=n))
        wall = time.perf_counter() - t
    store.close()
    model_s = extractor.usage.seconds + decider.usage.seconds
    return {"wall_s": round(wall, 1), "extraction": usage_row(extractor), "decisions": usage_row(decider),
            "other_s": round(wall - model_s, 1), "ops": report.ops}


def run_answers(path: str, model, qas, db: Path, k: int | None, chunk: int = CHUNK, lookup: int = 0,
                policy_name: str = "llm") -> dict:
    """Answers `chunk` questions at a time, decoded together (the harness's CHUNK), by the policy's
    Answer Agent (`k` None: the policy's own number of memories)."""
    agent = make_answerer(policy_name, load(model, batch=chunk, lookup=lookup), k=k)
    llm = agent.llm
    llm.usage.__init__()
    store = MemoryStore(db, "bench")
    rows = []
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"{path}: answers (k={k})", total=len(qas))
        t = time.perf_counter()
        for start in range(0, len(qas), chunk):
            some = qas[start:start + chunk]
            answers = agent.answer_many([agent.ask(store, qa.question, qa.asked_at, qa.asked_at) for qa in some])
            for qa, a in zip(some, answers):
                rows.append({"question": qa.question, "gold": qa.answer, "category": qa.category, "answer": a.answer,
                             "f1": score_official(a.answer, qa.answer, qa.category)})
            bar.advance(task, len(some))
        wall = time.perf_counter() - t
    store.close()
    return {**usage_row(llm, wall), "k": agent.k, "f1": round(sum(r["f1"] for r in rows) / max(len(rows), 1), 4),
            "rows": rows}


def second_model(models: list[str | None], turns, qas, db: Path, k: int) -> dict:
    """Extraction (one by one and batched) and answers on a sample, per backbone."""
    out = {}
    for model in models:
        llm = load(model, batch=16)
        one = LLMPolicy(load(model, batch=1))
        fresh(db)
        store = MemoryStore(db, "sample")
        t = time.perf_counter()
        for turn in turns:
            one.facts(store, turn)
        seq = (time.perf_counter() - t) / len(turns)
        fresh(db)
        store = MemoryStore(db, "sample")
        many = LLMPolicy(llm)
        t = time.perf_counter()
        many.prefetch(store, turns)
        batched = (time.perf_counter() - t) / len(turns)
        store.add(" ".join(turn.text for turn in turns[:3]), at=turns[0].time)
        agent = AnswerAgent(llm, k=k)
        t = time.perf_counter()
        for qa in qas:
            agent.answer(store, qa.question, as_of=qa.asked_at, asked_at=qa.asked_at)
        out[model or "qwen"] = {"extract_s_per_turn": round(seq, 2), "batched_s_per_turn": round(batched, 2),
                                "answer_s": round((time.perf_counter() - t) / max(len(qas), 1), 2),
                                "reference": reference(model)}
        store.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--conversation", default="conv-30")
    ap.add_argument("--turns", type=int, default=0, help="first N turns (0: all)")
    ap.add_argument("--questions", type=int, default=0, help="first M questions (0: all)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--policy", choices=["llm", "learned"], default="llm",
                    help="learned: the shipped extraction, manager and answer adapters")
    ap.add_argument("--memories", type=int, default=None,
                    help="memories shown to the Answer Agent (default: the policy's own)")
    ap.add_argument("--second-model", default=None, help="e.g. qwen1.5b: its speed beside the default's on a sample")
    ap.add_argument("--sweep", default="", help="e.g. 10,20,30: answer again on the same bank with that many "
                                                  "memories shown, for F1 against the number of memories")
    ap.add_argument("--lookup", type=int, default=0, help="also answer the first 20 questions on the same bank "
                                                          "with prompt lookup decoding of N draft tokens, and without")
    ap.add_argument("--out", type=Path, default=Path("bench/out/throughput"))
    args = ap.parse_args()
    if not args.data.exists():
        console.print(f"no LoCoMo data at {args.data}: pass --data")
        return 1
    if args.lookup and args.policy != "llm":
        console.print("--lookup measures the plain backbone's answers: use it with --policy llm")
        return 1
    turns, sample = load_turns(args.data, args.conversation)
    turns = turns[:args.turns or None]
    qas = locomo_qa(sample, turns)[:args.questions or None]
    args.out.mkdir(parents=True, exist_ok=True)
    config = {"conversation": args.conversation, "turns": len(turns), "questions": len(qas), "model": args.model,
              "policy": args.policy, "memories": args.memories, "threads": threads()}
    state_file = args.out / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    if state.get("config") != config:
        state = {"config": config}

    def phase(key, fn):
        if key not in state:
            state[key] = fn()
            tmp = state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=1))
            os.replace(tmp, state_file)
        return state[key]

    console.print(f"{args.conversation}: {len(turns)} turns, {len(qas)} questions, model {args.model or 'qwen'}, "
                  f"{threads()} threads")
    phase("reference", lambda: reference(args.model))
    name = args.policy
    paths = [name]  # the state keys of the serving path
    db = args.out / f"{name}.db"
    phase(f"{name}:ingest", lambda: run_ingest(name, args.model, turns, db, name))
    phase(f"{name}:answers", lambda: run_answers(name, args.model, qas, db, args.memories, policy_name=name))
    for k in [int(k) for k in args.sweep.split(",") if k.strip()]:
        phase(f"sweep:{k}", lambda: run_answers(f"sweep k={k}", args.model, qas, db, k, policy_name=name))
    if args.lookup:
        phase("lookup:off", lambda: run_answers("lookup off", args.model, qas[:20], db, args.memories))
        phase(f"lookup:{args.lookup}", lambda: run_answers(f"lookup {args.lookup}", args.model, qas[:20], db,
                                                            args.memories, lookup=args.lookup))
    if args.second_model:
        phase("models", lambda: second_model([args.model, args.second_model], turns[:16], qas[:3],
                                             args.out / "sample.db", args.memories))
    report(state, paths)
    return 0


def report(state: dict, paths: list[str]) -> None:
    from evaluation.paired import paired_bootstrap
    ref = state["reference"]
    console.print(f"raw runtime on a fixed prompt (same run): {ref['prompt_tok_s']} prompt tok/s, "
                  f"{ref['gen_tok_s']} generated tok/s")
    t = Table(title="where the time goes")
    for col in ("path", "phase", "wall s", "calls", "prompt tok", "evaluated", "reused", "generated", "gen tok/s"):
        t.add_column(col, justify="right" if col not in ("path", "phase") else "left")
    totals = {}
    for name in paths:
        ing, ans = state[f"{name}:ingest"], state[f"{name}:answers"]
        for label, row in (("extraction", ing["extraction"]), ("decisions", ing["decisions"]),
                           (f"answers (k={ans['k']})", ans)):
            t.add_row(name, label, f"{row['wall_s']:.0f}", str(row["calls"]), str(row["prompt_tokens"]),
                      str(row["evaluated"]), str(row["reused"]), str(row["generated"]), f"{row['gen_tok_s']:.1f}")
        t.add_row(name, "store, embeddings", f"{ing['other_s']:.0f}", "", "", "", "", "", "")
        totals[name] = ing["wall_s"] + ans["wall_s"]
    console.print(t)
    for name in paths:
        console.print(f"{name}: {totals[name] / 60:.1f} min (ingest {state[f'{name}:ingest']['wall_s'] / 60:.1f}, "
                      f"answers {state[f'{name}:answers']['wall_s'] / 60:.1f}); F1 {state[f'{name}:answers']['f1']:.3f}; "
                      f"ops {state[f'{name}:ingest']['ops']}")
    sweep = sorted((v["k"], v) for key, v in state.items() if key.startswith("sweep:") or key == f"{paths[0]}:answers")
    if len(sweep) > 1:
        top_k, top = sweep[-1]
        t = Table(title="answers on the same bank against the number of memories shown")
        for col in ("memories", "F1", f"F1 - F1(k={top_k}), paired 95% CI", "wall s", "s/question", "prompt tok/question"):
            t.add_column(col, justify="right")
        for k, v in sweep:
            n = max(len(v["rows"]), 1)
            gap = "-"
            if k != top_k and [r["question"] for r in v["rows"]] == [r["question"] for r in top["rows"]]:
                b = paired_bootstrap([r["f1"] for r in top["rows"]], [r["f1"] for r in v["rows"]])
                gap = f"{b['diff']:+.3f} [{b['lo']:+.3f}, {b['hi']:+.3f}]"
            t.add_row(str(k), f"{v['f1']:.3f}", gap, f"{v['wall_s']:.0f}", f"{v['wall_s'] / n:.1f}",
                      f"{v['prompt_tokens'] / n:.0f}")
        console.print(t)
    for key in [k for k in state if k.startswith("lookup:") and k != "lookup:off"]:
        off, on = state["lookup:off"], state[key]
        same = sum(a["answer"] == b["answer"] for a, b in zip(off["rows"], on["rows"]))
        console.print(f"prompt lookup decoding ({key[7:]} draft tokens), {len(on['rows'])} answers: {on['wall_s']:.0f} s "
                      f"vs {off['wall_s']:.0f} s without ({off['wall_s'] / on['wall_s']:.2f}x); {same} answers identical; "
                      f"F1 {on['f1']:.3f} vs {off['f1']:.3f}")
    if "models" in state:
        for model, m in state["models"].items():
            console.print(f"{model}: extraction {m['extract_s_per_turn']} s/turn one by one, {m['batched_s_per_turn']} "
                          f"batched; answer {m['answer_s']} s; raw {m['reference']['prompt_tok_s']} prompt tok/s, "
                          f"{m['reference']['gen_tok_s']} gen tok/s")


if __name__ == "__main__":
    sys.exit(main())
