"""Per-turn and per-question latency, tokens/s and peak RSS of the llm policy on the default
local model, with and without the two caches, in one run:
- llama.cpp KV-cache reuse of the shared prompt prefix (static instructions come first), and
- the fact-extraction cache (replaying another manager over the same history extracts nothing).

    python bench/bench_policy.py [--data LOCOMO.json --conversation conv-30 --turns 12 --questions 6]

Without --data it uses the demo dialogue that `memstore demo` writes, and questions about it."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from memstore import MemoryStore
from memstore.clock import to_stamp
from policy.agent import make_policy
from policy.answer import AnswerAgent
from evaluation.harness import peak_rss_mb
from memstore.ingest import ingest
from policy.runtime import LlamaCppLLM
from policy.models import resolve
from policy.inputs import load_turns
from evaluation.datasets import locomo_qa
from policy.turns import Turn

DEMO_QUESTIONS = ["Where does Caroline live?", "What are the names of Caroline's dogs?", "What does Melanie paint?",
                  "Is Caroline vegetarian?", "What did Melanie sell?", "What breed is Max?"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data")
    ap.add_argument("--conversation", default="conv-30")
    ap.add_argument("--turns", type=int, default=12)
    ap.add_argument("--questions", type=int, default=6)
    args = ap.parse_args()
    if args.data:
        turns, sample = load_turns(args.data, args.conversation)
        questions = [q.question for q in locomo_qa(sample, turns)][: args.questions]
        turns = turns[: args.turns]
    else:
        from cli.agent_cmds import DEMO_DIALOGUE
        turns = [Turn(f"demo:{i}", s, t, to_stamp(w)) for i, (s, t, w) in enumerate(DEMO_DIALOGUE, 1)]
        questions = DEMO_QUESTIONS[: args.questions]
    console = Console()
    model = resolve(None)
    path = Path(tempfile.mkdtemp(prefix="bench-policy-")) / "b.db"
    rows = []
    for label, reuse, bank in (("no caches", False, "cold"), ("KV prefix reuse", True, "kv"),
                               ("KV reuse + fact cache warm", True, "kv")):
        llm = LlamaCppLLM(model, reuse_prefix=reuse)
        store = MemoryStore(path, bank if label != "KV reuse + fact cache warm" else "warm")
        if label == "no caches":
            store.conn.execute("DELETE FROM fact_cache")
        policy = make_policy("llm", llm)
        t = time.perf_counter()
        report = ingest(store, policy, turns)
        ingest_s = time.perf_counter() - t
        agent = AnswerAgent(llm)
        q_times = []
        for q in questions:
            t = time.perf_counter()
            agent.answer(store, q)
            q_times.append(time.perf_counter() - t)
        gen_tps = llm.usage.tokens_per_second()
        prompt_tps = llm.usage.prompt_tokens / llm.usage.seconds if llm.usage.seconds else 0
        rows.append((label, statistics.median(report.turn_seconds), ingest_s / len(turns),
                     statistics.median(q_times), policy.extracted_fresh, llm.usage.calls, gen_tps, prompt_tps))
        store.close()
        if label == "no caches":  # the extraction cache was filled by this run; start the KV rows with it empty too
            MemoryStore(path, "kv").conn.execute("DELETE FROM fact_cache")
    table = Table(title=f"llm policy on {model.name}: {len(turns)} turns, {len(questions)} questions (one run)")
    for col in ("caches", "turn p50", "turn mean", "question p50", "fresh extractions", "LLM calls",
                "gen tok/s (incl. prompt eval)", "prompt tok/s (whole call)"):
        table.add_column(col, justify="right")
    base_turn, base_q = rows[0][1], rows[0][3]
    for label, turn_p50, turn_mean, q_p50, fresh, calls, gtps, ptps in rows:
        table.add_row(label, f"{turn_p50:.2f} s ({base_turn / turn_p50:.1f}x)", f"{turn_mean:.2f} s",
                      f"{q_p50:.2f} s ({base_q / q_p50:.1f}x)", str(fresh), str(calls), f"{gtps:.1f}", f"{ptps:.0f}")
    console.print(table)
    console.print(f"peak RSS of the process: {peak_rss_mb():.0f} MB (model file {model.path.stat().st_size / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
