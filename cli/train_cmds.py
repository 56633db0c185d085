"""`memstore train manager|answer|extract`: the training side of Memory-R1 (`memstore export RUN --gguf` converts)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from memstore.errors import BadInput

from .app import JsonOpt, app
from .render import console, emit_json, phase_progress, table


@app.command()
def train(policy: str = typer.Argument(..., help="manager | answer | extract"),
          algo: Optional[str] = typer.Option(None, "--algo", help="grpo (llama.cpp rollouts, torch update; the default) | "
                                             "grpo-trl (TRL's GRPOTrainer) | sft (extract's default: supervised; "
                                             "ppo: not in TRL 1.16, refused)"),
          data: Optional[Path] = typer.Option(None, "--data", help="LoCoMo JSON (or train on your own bank: --from-bank)"),
          from_bank: Optional[str] = typer.Option(None, "--from-bank", help="Train on this bank's recorded inputs "
                                                  "(with --db and --qa); the bank is never written."),
          db: Optional[Path] = typer.Option(None, "--db", help="--from-bank: the bank's database file."),
          qa: Optional[Path] = typer.Option(None, "--qa", help="--from-bank: your questions (JSONL: question, answer, "
                                            "asked_at, optional evidence, category)."),
          val_fraction: float = typer.Option(0.2, "--val-fraction", help="--from-bank: share of the questions held "
                                             "out for validation, never trained on."),
          conversations: str = typer.Option("conv-26", "--conversations", help="Training conversations, comma-separated."),
          val: Optional[str] = typer.Option(None, "--val", help="Validation conversation, e.g. conv-30."),
          max_steps: int = typer.Option(20, "--max-steps", min=1, help="Steps, unless --epochs is given."),
          epochs: float = typer.Option(0.0, "--epochs", help="grpo: passes over the training examples (overrides --max-steps)."),
          prompts_per_step: int = typer.Option(1, "--prompts-per-step", min=1, help="grpo: groups per optimizer step."),
          sync_every: int = typer.Option(1, "--sync-every", min=1, help="grpo: updates between adapter exports to llama.cpp."),
          save_every: int = typer.Option(5, "--save-every", min=1, help="grpo: steps between checkpoints."),
          generations: int = typer.Option(8, "--generations", min=2, help="Completions per prompt (GRPO group / SFT candidates)."),
          memories: Optional[int] = typer.Option(None, "--memories", min=1, help="Memories the Answer Agent sees while training (default: serving's, 10)."),
          learning_rate: float = typer.Option(5e-5, "--lr"),
          lora_layers: int = typer.Option(8, "--lora-layers", min=1, help="LoRA on the top N blocks."),
          val_examples: Optional[int] = typer.Option(None, "--val-examples", min=1, help="Validation questions "
                                                     "(default: 12 of --val; every held-out one with --from-bank)."),
          model: Optional[str] = typer.Option(None, "--model", help="Base GGUF: qwen (default) | PATH.gguf"),
          empty_share: float = typer.Option(0.3, "--empty-share", min=0.0, max=10.0, help="extract from observations: turns without "
                                            "observations trained on (target: no facts), as a share of those with."),
          teacher: Optional[str] = typer.Option(None, "--teacher", help="extract: learn a larger backbone's facts "
                                                "(e.g. qwen1.5b) instead of the observations: distillation."),
          init_adapter: Optional[Path] = typer.Option(None, "--init-adapter", help="grpo: start from this GGUF LoRA "
                                                      "(extract: its SFT adapter, e.g. policy/adapters/extract.gguf)."),
          window: Optional[int] = typer.Option(None, "--window", min=0, help="extract: earlier messages of the session "
                                               "read (default: the --init-adapter's, else serving's)."),
          anchor: float = typer.Option(0.0, "--anchor", help="extract --algo grpo: also train on this many uncited "
                                       "turns per cited one, rewarded by keeping the --init-adapter's own facts, which "
                                       "also set the length reference (default 0: the observations do)."),
          out: Path = typer.Option(..., "--out", help="Run folder (resumable)."),
          as_json: bool = JsonOpt) -> None:
    """Train the Memory Manager or the Answer Agent (LoRA) from answer correctness alone, on
    replayed histories of LoCoMo conversations or on your own bank and questions (--from-bank);
    or fact extraction (`extract`): by supervised fine-tuning on the annotated observations of
    the --conversations (or on a --teacher backbone's facts of them), then with --algo grpo from
    that adapter (--init-adapter), rewarded by the answers its facts give. A rerun with the same --out resumes."""
    algo = algo or ("sft" if policy == "extract" else "grpo")
    if policy == "extract" and algo == "sft":
        if data is None or from_bank:
            raise BadInput("train extract learns from LoCoMo observations: give --data (and --conversations)")
        _train_extract(data, conversations, epochs or 1.0, learning_rate if learning_rate != 5e-5 else 1e-4,
                       lora_layers, empty_share, model, teacher, out, as_json)
        return
    from trainer.train import TrainConfig, run

    from policy.answer import AnswerAgent
    memories = AnswerAgent.DEFAULT_K if memories is None else memories
    cfg = TrainConfig(kind=policy, algo=algo, data=str(data) if data else None,
                      conversations=[] if from_bank else conversations.split(","), val=val,
                      db=str(db) if db else None, from_bank=from_bank, qa=str(qa) if qa else None, val_fraction=val_fraction,
                      max_steps=max_steps, epochs=epochs, prompts_per_step=prompts_per_step, sync_every=sync_every,
                      save_every=save_every, out=str(out), model=model, generations=generations, memories=memories,
                      learning_rate=learning_rate, lora_layers=lora_layers,
                      val_examples=val_examples or (1_000_000 if from_bank else 12),
                      init_adapter=str(init_adapter) if init_adapter else None, window=window, anchors=anchor)
    cfg.check()
    with phase_progress(disable=as_json) as progress:
        bars: dict[str, int] = {}

        def tick(phase: str, done: int, total: int | None) -> None:
            if phase not in bars:
                bars[phase] = progress.add_task(phase, total=total)
            progress.update(bars[phase], completed=done, total=total)
        result = run(cfg, progress=tick)
    if as_json:
        emit_json(result)
        return
    rows = [(p["step"], f"{p.get('reward', float('nan')):.3f}", f"{p.get('reward_std', float('nan')):.3f}",
             f"{p.get('loss', float('nan')):.4f}") for p in result["curve"]]
    table(f"{policy} {algo}: {len(rows)} steps in {result['train_s'] / 60:.1f} min", ["step", "reward", "reward std", "loss"], rows)
    if result.get("dropped_share") is not None:
        console.print(f"epochs {result['epochs']:.2f}; groups dropped for equal rewards (no signal): {result['dropped_share']:.0%}")
    v = result.get("validation")
    if v:
        ci = v.get("paired_95")
        gap = f" (difference {ci['diff']:+.3f}, paired 95% CI [{ci['lo']:+.3f}, {ci['hi']:+.3f}])" if ci else ""
        console.print(f"validation on {v['conversation']} ({v['n']} examples): base {v['base']:.3f} -> trained {v['trained']:.3f}{gap}")
    console.print(f"adapter: {out / 'adapter'}   curve: {out / 'reward_curve.png'}   export: memstore export {out} --gguf PATH")


def _train_extract(data: Path, conversations: str, epochs: float, lr: float, lora_layers: int, empty_share: float,
                   model: Optional[str], teacher: Optional[str], out: Path, as_json: bool) -> None:
    from trainer.extraction import ExtractConfig, run

    cfg = ExtractConfig(data=str(data), conversations=[c for c in conversations.split(",") if c], out=str(out),
                        model=model, epochs=epochs, learning_rate=lr, lora_layers=lora_layers, empty_share=empty_share,
                        teacher=teacher)
    with phase_progress(disable=as_json) as progress:
        extracting = progress.add_task(f"{teacher} facts", total=None) if teacher else None
        bar = progress.add_task("extract sft", total=None)
        result = run(cfg, progress=lambda n, total, loss: progress.update(
            bar, completed=n, total=total, description=f"extract sft (loss {loss:.3f})"),
            extracting=lambda n, total: progress.update(extracting, completed=n, total=total))
    if as_json:
        emit_json(result)
        return
    console.print(f"extraction SFT on {result['examples']} examples: loss {result['first_loss']:.3f} -> "
                  f"{result['last_loss']:.3f}; adapter: {result['gguf']}")
