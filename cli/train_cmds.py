"""`memstore train manager|answer`: the training side of Memory-R1 (`memstore export RUN --gguf` converts)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .main import app
from .render import console, emit_json, phase_progress, table


@app.command()
def train(policy: str = typer.Argument(..., help="manager | answer"),
          algo: str = typer.Option("grpo", "--algo", help="grpo | sft (ppo: not in TRL 1.16, refused)"),
          data: Path = typer.Option(..., "--data", help="LoCoMo JSON"),
          conversations: str = typer.Option("conv-26", "--conversations", help="Training conversations, comma-separated."),
          val: Optional[str] = typer.Option(None, "--val", help="Validation conversation, e.g. conv-30."),
          max_steps: int = typer.Option(20, "--max-steps", min=1),
          generations: int = typer.Option(4, "--generations", min=2, help="Completions per prompt (GRPO group / SFT candidates)."),
          memories: int = typer.Option(8, "--memories", min=1, help="Memories the Answer Agent sees while training."),
          learning_rate: float = typer.Option(5e-5, "--lr"),
          lora_layers: int = typer.Option(8, "--lora-layers", min=1, help="LoRA on the top N blocks."),
          val_examples: int = typer.Option(12, "--val-examples", min=1),
          model: Optional[str] = typer.Option(None, "--model", help="Base GGUF: qwen (default) | PATH.gguf"),
          out: Path = typer.Option(..., "--out", help="Run folder (resumable)."),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """Train the Memory Manager or the Answer Agent (LoRA) from answer correctness alone, on
    replayed histories of the training conversations; a rerun with the same --out resumes."""
    from trainer.train import TrainConfig, run

    cfg = TrainConfig(kind=policy, algo=algo, data=str(data), conversations=conversations.split(","), val=val,
                      max_steps=max_steps, out=str(out), model=model, generations=generations, memories=memories,
                      learning_rate=learning_rate, lora_layers=lora_layers, val_examples=val_examples)
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
    v = result.get("validation")
    if v:
        console.print(f"validation on {v['conversation']} ({v['n']} examples): base {v['base']:.3f} -> trained {v['trained']:.3f}")
    console.print(f"adapter: {out / 'adapter'}   curve: {out / 'reward_curve.png'}   export: memstore export {out} --gguf PATH")
