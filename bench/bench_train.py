"""Training speed: memstore's GRPO loop (llama.cpp rollouts, torch update, prompt once per group,
dynamic sampling) against TRL's GRPOTrainer path, on the same training examples, in one run.

    python bench/bench_train.py                       # answer agent, conv-26, 4 steps vs 2 TRL steps
    python bench/bench_train.py --kind manager --steps 6 --trl-steps 2 --generations 8
    python bench/bench_train.py --kind manager --steps 8 --trl-steps 0 --reward-before

Both runs train the same LoRA (same layers, rank, learning rate, group size, one prompt a step)
on conv-26's examples from the shared dev data, each in its own run folder under --out, started
fresh. Printed per path: s/step, samples/s, and the time split the loop logs (rollouts, reward,
update, export; TRL's trainer does not split its step, so it shows the total only), and the
projected wall of one epoch over the examples at that rate. Model loading and replayed histories
are outside the step times (they are built once and cached).

`--reward-before` adds the manager's reward computed sample by sample, as it first was, on the
same loop and steps: every group scored, one sample at a time, each answer its own model call (the
answer cache by memories shown kept). The run patches the two methods that changed, in this
process only, for that path."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from trainer.train import TrainConfig, run  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "locomo_dev.json"
console = Console(width=150)


@contextlib.contextmanager
def reward_before():
    """The manager's reward sample by sample: no group-level scoring, no batched answers."""
    from policy.answer import AnswerAgent
    from trainer.train import TrainingTask
    saved = TrainingTask.score_group, AnswerAgent.answer_many
    TrainingTask.score_group = lambda self, completions, row, skip_equal=True: [  # noqa: E731
        saved[0](self, [c], row, skip_equal=False)[0] for c in completions]
    AnswerAgent.answer_many = lambda self, asks: [a for ask in asks for a in saved[1](self, [ask])]  # noqa: E731
    try:
        yield
    finally:
        TrainingTask.score_group, AnswerAgent.answer_many = saved


def measure(cfg: TrainConfig) -> dict:
    out = Path(cfg.out)
    shutil.rmtree(out, ignore_errors=True)
    t = time.time()
    run(cfg, progress=lambda phase, n, total: console.log(f"{cfg.algo}: {phase} {n}/{total or '?'}")
        if phase == "train" else None)
    rows = {}
    for line in (out / "log.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows[r["step"]] = {**rows.get(r["step"], {}), **r}
    steps = [rows[k] for k in sorted(rows)]
    if "step_s" in steps[0]:  # memstore's loop times each step itself
        per_step = [r["step_s"] for r in steps]
        split = {k: statistics.mean(r[k] for r in steps) for k in ("rollout_s", "reward_s", "update_s", "export_s")}
        dropped = sum(r["dropped"] for r in steps) / sum(r["groups"] for r in steps)
        unscored = sum(r.get("unscored", 0) for r in steps) / sum(r["groups"] for r in steps)
    else:  # TRL: the time between consecutive logged steps (the first includes its setup: left out)
        times = [r["time"] for r in steps]
        per_step = [b - a for a, b in zip(times, times[1:])] or [time.time() - t]
        split, dropped, unscored = {}, None, None
    examples = json.loads((out / "config.json").read_text())["examples"]
    s = statistics.mean(per_step)
    return {"algo": cfg.algo, "steps": len(steps), "s_per_step": s, "samples_per_s": cfg.generations / s,
            "split": split, "dropped_share": dropped, "unscored_share": unscored, "examples": examples,
            "epoch_h": s * examples / cfg.prompts_per_step / 3600, "wall_s": time.time() - t}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", default="answer", choices=("answer", "manager"))
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--conversation", default="conv-26")
    ap.add_argument("--steps", type=int, default=4, help="steps of memstore's loop")
    ap.add_argument("--trl-steps", type=int, default=2, help="steps of TRL's GRPOTrainer (0: skip it)")
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--memories", type=int, default=None, help="default: serving's (AnswerAgent.DEFAULT_K)")
    ap.add_argument("--reward-before", action="store_true",
                    help="manager: also the loop with the reward computed one sample at a time")
    ap.add_argument("--out", default="bench/out/train")
    args = ap.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"no LoCoMo data at {args.data} (pass --data)")
    from policy.answer import AnswerAgent
    args.memories = args.memories or AnswerAgent.DEFAULT_K
    common = dict(kind=args.kind, data=args.data, conversations=[args.conversation], generations=args.generations,
                  memories=args.memories, save_every=1000)
    results = [measure(TrainConfig(algo="grpo", max_steps=args.steps, out=f"{args.out}/grpo", **common))]
    if args.reward_before:
        with reward_before():
            results.append({**measure(TrainConfig(algo="grpo", max_steps=args.steps, out=f"{args.out}/grpo-before",
                                                  **common)), "algo": "grpo-before"})
    if args.trl_steps:
        # one more step than reported: the first TRL step carries the trainer's setup
        results.append(measure(TrainConfig(algo="grpo-trl", max_steps=args.trl_steps + 1, out=f"{args.out}/trl",
                                           **common)))
    table = Table(title=f"{args.kind} GRPO on {args.conversation}: {args.generations} samples a prompt, one prompt a step (one run)")
    for col in ("path", "steps", "s/step", "samples/s", "rollouts", "reward", "update", "export",
                "groups dropped", "1 epoch (h)", "ratio"):
        table.add_column(col, justify="right")
    base = results[-1]["s_per_step"]
    for r in results:
        sp = r["split"]
        name = {"grpo": "memstore grpo", "grpo-before": "grpo, reward as before", "grpo-trl": "TRL GRPOTrainer"}
        table.add_row(name[r["algo"]], str(r["steps"]),
                      f"{r['s_per_step']:.1f}", f"{r['samples_per_s']:.2f}",
                      *(f"{sp[k]:.1f}" if k in sp else "-" for k in ("rollout_s", "reward_s", "update_s", "export_s")),
                      "-" if r["dropped_share"] is None else f"{r['dropped_share']:.0%}"
                      + (f" ({r['unscored_share']:.0%} unscored)" if r.get("unscored_share") else ""),
                      f"{r['epoch_h']:.2f} ({r['examples']} ex.)", f"{base / r['s_per_step']:.2f}x")
    console.print(table)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "bench_train.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
