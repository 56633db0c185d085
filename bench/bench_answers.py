"""Answering and judging a chunk of questions at a time (batched decoding) against one at a time,
on the same bank, questions and model, in one run (the harness answers in chunks).

    python bench/bench_answers.py                      # conv-26's replayed history, first 32 questions
    python bench/bench_answers.py --questions 81 --conversation conv-30

The bank is the conversation's replayed history (trainer/history.py: built once by the
`heuristic` manager and cached; building it takes a few minutes the first time). Printed: wall and
s/question of answers one by one and in chunks, answers identical, F1 both ways, and the same for
the judge's verdicts on the one-by-one answers."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from evaluation.judge import CHUNK, judge, judge_many  # noqa: E402
from evaluation.metrics import score_official  # noqa: E402
from evaluation.paired import paired_bootstrap  # noqa: E402
from policy.answer import AnswerAgent  # noqa: E402
from policy.runtime import load  # noqa: E402
from trainer import history  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "locomo_dev.json"
console = Console(width=150)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--conversation", default="conv-26")
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--model", default=None)
    ap.add_argument("--save", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_answers.json",
                    help="where the figures go as JSON")
    args = ap.parse_args()
    if not args.data.exists():
        console.print(f"no LoCoMo data at {args.data}: pass --data")
        return 1
    llm = load(args.model)
    hist = history.build(args.data, args.conversation, llm)
    agent = AnswerAgent(llm)
    qas = hist.questions[:args.questions]
    asks = [agent.ask(hist.store, qa.question, qa.asked_at, qa.asked_at) for qa in qas]
    t = time.perf_counter()
    one = [agent.answer_many([a])[0] for a in asks]
    one_s = time.perf_counter() - t
    t = time.perf_counter()
    many = [a for i in range(0, len(asks), CHUNK) for a in agent.answer_many(asks[i:i + CHUNK])]
    many_s = time.perf_counter() - t
    items = [(qa.question, qa.answer, a.answer) for qa, a in zip(qas, one)]
    t = time.perf_counter()
    v_one = [judge(llm, *i) for i in items]
    judge_one_s = time.perf_counter() - t
    t = time.perf_counter()
    v_many = [v for i in range(0, len(items), CHUNK) for v in judge_many(llm, items[i:i + CHUNK])]
    judge_many_s = time.perf_counter() - t

    f1 = lambda answers: [score_official(a.answer, qa.answer, qa.category) for a, qa in zip(answers, qas)]  # noqa: E731
    n = len(qas)
    same_answers = sum(a.answer == b.answer for a, b in zip(one, many))
    same_verdicts = sum(a.correct == b.correct for a, b in zip(v_one, v_many))
    table = Table(title=f"{args.conversation}: {n} questions, {agent.k} memories shown, chunks of {CHUNK} (one run)")
    for col in ("", "one by one s", "chunked s", "ratio", "identical", "one by one", "chunked"):
        table.add_column(col, justify="right")
    table.add_row("answers", f"{one_s:.0f} ({one_s / n:.1f}/q)", f"{many_s:.0f} ({many_s / n:.1f}/q)",
                  f"{one_s / many_s:.2f}x", f"{same_answers}/{n}",
                  f"F1 {statistics.fmean(f1(one)):.3f}", f"F1 {statistics.fmean(f1(many)):.3f}")
    table.add_row("judge verdicts", f"{judge_one_s:.0f}", f"{judge_many_s:.0f}", f"{judge_one_s / judge_many_s:.2f}x",
                  f"{same_verdicts}/{n}",
                  f"{sum(v.correct for v in v_one)} correct", f"{sum(v.correct for v in v_many)} correct")
    console.print(table)
    b = paired_bootstrap(f1(one), f1(many))
    console.print(f"F1 chunked - one by one: {b['diff']:+.3f} [{b['lo']:+.3f}, {b['hi']:+.3f}] (paired 95%)")
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps({
            "conversation": args.conversation, "questions": n, "memories": agent.k, "chunk": CHUNK,
            "answers_s": {"one_by_one": one_s, "chunked": many_s}, "judge_s": {"one_by_one": judge_one_s, "chunked": judge_many_s},
            "answers_identical": same_answers, "verdicts_identical": same_verdicts,
            "f1": {"one_by_one": statistics.fmean(f1(one)), "chunked": statistics.fmean(f1(many))}, "f1_diff": b}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
