"""`memstore train extract`: supervised fine-tuning of fact extraction, the serving extraction call
(prompts.extract_call: the turn, its date and its window) in, the turn's facts out. The facts come
from one of two teachers:
- LoCoMo's annotated observations of the turn (a turn without observations teaches the empty
  list, sampled at `empty_share`); the student reads the two earlier messages, as the annotators
  read the whole conversation;
- a larger backbone's facts (`teacher`, e.g. qwen1.5b: distillation), extracted with its served
  call and parsed by the one parser (policy.facts.clean_facts) so the student learns the kept
  facts; every turn is an example (an empty list is the teacher's own judgement that the turn holds
  nothing durable), and the student reads what the teacher read: the turn alone. The teacher's
  facts are cached in OUT/teacher.db (copy a `bench facts` facts.db there to reuse its extraction).

Observations carry no dates, so a target is dated where its turn speaks of time: "yesterday" in a
message of 8 May, 2023 gives "... on 7 May, 2023" (`dated_target`); otherwise the trained model
would unlearn the dates the prompt asks for and temporal answers would worsen.

LoRA on the serving GGUF in torch (trainer.grpo's Learner), the loss on the completion's tokens
only, checkpointed every `save_every` steps and resumed by the same command; the adapter is
exported to GGUF for llama.cpp with its provenance."""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Callable

from policy.inputs import locomo_conversations, locomo_turns

from evaluation.datasets import locomo_observations
from memstore.errors import BadInput
from policy import prompts
from policy.models import resolve, sha256_file
from policy.times import HAS_DATE, when_said
from policy.turns import windows


@dataclass
class ExtractConfig:
    data: str
    conversations: list[str]
    out: str = "runs/extract-sft"
    model: str | None = None
    epochs: float = 1.0
    learning_rate: float = 1e-4
    lora_r: int = 16
    lora_layers: int = 8
    accumulate: int = 4          # examples per optimizer step
    empty_share: float = 0.3     # turns without observations kept, as a share of those with
    save_every: int = 20
    seed: int = 0
    teacher: str | None = None   # a backbone whose facts are the targets; None: the observations

    @property
    def window(self) -> int:
        """Earlier messages the student reads: what its teacher read."""
        return 0 if self.teacher else prompts.EXTRACT_WINDOW


def dated_target(observation: str, turn_text: str, day: date) -> str:
    """The observation with the turn's resolved time appended, unless it states a date already."""
    when = when_said(turn_text, day)
    if when is None or HAS_DATE.search(observation):
        return observation
    return observation.rstrip(" .") + f" {when}."


def examples(data: str | Path, conversations: list[str], empty_share: float, seed: int,
             taught: dict[str, list[str]] | None = None) -> list[dict]:
    """(messages, completion) of the serving extraction call per turn. With the observations as
    targets: each turn with observations and a sample of `empty_share` as many turns without, which
    teach {"facts": []}; with a teacher's facts (`taught`, by turn id): every turn."""
    rng = random.Random(seed)
    full, empty = [], []
    window = 0 if taught is not None else prompts.EXTRACT_WINDOW
    most = prompts.extract_schema()["properties"]["facts"]["maxItems"]
    for sample in locomo_conversations(data, conversations):
        turns = locomo_turns(sample)
        obs = locomo_observations(sample, turns) if taught is None else {}
        context = windows(turns, window)
        for t in turns:
            day = date.fromisoformat(t.time[:10])
            call = prompts.extract_call(t.speaker, t.text, t.time[:10], context[t.input_id])
            if taught is None:
                facts = [dated_target(o, t.text, day) for o in obs.get(t.input_id, [])]
            else:
                facts = taught[t.input_id]
            row = {"turn": t.input_id, "messages": [{"role": "system", "content": call.system},
                                                    {"role": "user", "content": call.user}],
                   "completion": json.dumps({"facts": facts[:most]})}
            (full if facts else empty).append(row)
    rng.shuffle(empty)
    rows = full + (empty if taught is not None else empty[:int(len(full) * empty_share)])
    rng.shuffle(rows)
    if not rows:
        raise BadInput("no turns with observations in " + ", ".join(conversations))
    return rows


def teacher_facts(data: str | Path, conversations: list[str], teacher: str, db: Path,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, list[str]]:
    """The facts `teacher` keeps for every turn, by turn id, through its served extraction call
    (the plain backbone's: no window) and the one parser; cached in `db`, so a rerun extracts
    nothing again."""
    from evaluation.facts import extract_turns
    from memstore import MemoryStore
    from policy.manager import AppendPolicy
    from policy.runtime import load

    samples = locomo_conversations(data, conversations)
    llm = load(teacher)
    try:
        facts: dict[str, list[str]] = {}
        for sample in samples:
            turns = locomo_turns(sample)
            with MemoryStore(db, f"teacher.{sample.get('sample_id', 'conv')}"[:64]) as store:
                got, _ = extract_turns(store, AppendPolicy(llm), turns, progress)
            facts.update(got)
        return facts
    finally:
        llm.close()


def run(cfg: ExtractConfig, progress: Callable[[int, int, float], None] | None = None,
        extracting: Callable[[int, int], None] | None = None) -> dict:
    """Train (resuming from OUT/state), export OUT/extract.gguf, write OUT/result.json.
    `extracting` reports the teacher's extraction, `progress` the training steps."""
    import torch

    from memstore.cpu import threads
    from . import base_model
    from .export import export
    from .grpo import Learner

    torch.set_num_threads(threads())
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model_file = resolve(cfg.model)
    taught = (teacher_facts(cfg.data, cfg.conversations, cfg.teacher, out / "teacher.db", extracting)
              if cfg.teacher else None)
    rows = examples(cfg.data, cfg.conversations, cfg.empty_share, cfg.seed, taught)
    config = {**asdict(cfg), "kind": "extract", "algo": "sft-teacher" if cfg.teacher else "sft-observations",
              "examples": len(rows), "base_model": model_file.name,
              "base_sha256": model_file.sha256 or sha256_file(model_file.path),
              "data_sha256": sha256_file(Path(cfg.data)), "prompt_version": prompts.EXTRACT_VERSION,
              "window": cfg.window}
    saved = out / "config.json"
    if saved.exists() and json.loads(saved.read_text()) != config:
        raise BadInput(f"{out} holds a run with another configuration: use another --out")
    saved.write_text(json.dumps(config, indent=2))
    net, tokenizer = base_model.load(model_file)
    base_model.config_dir(model_file, net, tokenizer)
    learner = Learner(net, tokenizer, cfg)
    total = max(1, int(len(rows) * cfg.epochs))
    state = out / "state"
    done = learner.load(state)["step"] if (state / "progress.json").exists() else 0
    log = out / "log.jsonl"
    learner.model.train()
    window_loss, t0 = [], time.perf_counter()
    completions = [learner.completion_ids(r["completion"], cut=False) for r in rows]
    for i in range(done, total):
        row, completion = rows[i % len(rows)], completions[i % len(rows)]
        if i % cfg.accumulate == 0 or i == done:
            # the loss is a mean over every completion token of the optimizer step, not a mean of
            # per-example means: with those, a 5-token {"facts": []} weighs ~8x a 40-token list and
            # the model learns to say nothing (measured: p(empty) 0.8 on turns whose target has facts)
            start = i - i % cfg.accumulate
            window_tokens = sum(len(completions[j % len(rows)])
                                for j in range(start, min(start + cfg.accumulate, total)))
        prompt = learner.prompt_ids(row["messages"])
        logp, mask = learner.logprobs(prompt, [completion])
        loss = -logp.sum() / window_tokens
        loss.backward()
        window_loss.append(loss.item() * window_tokens / mask.sum().item())  # this example's per-token loss
        if (i + 1) % cfg.accumulate == 0 or i + 1 == total:
            learner.opt.step()
            learner.opt.zero_grad()
            with open(log, "a") as f:
                f.write(json.dumps({"example": i + 1, "loss": sum(window_loss) / len(window_loss),
                                    "seconds": time.perf_counter() - t0}) + "\n")
            if progress:
                progress(i + 1, total, sum(window_loss) / len(window_loss))
            window_loss = []
        if (i + 1) % (cfg.save_every * cfg.accumulate) == 0:
            learner.save(state, i + 1, {})
    learner.save(state, total, {})
    learner.model.save_pretrained(out / "adapter")
    losses = [json.loads(line)["loss"] for line in log.read_text().splitlines()] if log.exists() else []
    result = {"examples": len(rows), "trained_examples": total, "first_loss": losses[0] if losses else None,
              "last_loss": losses[-1] if losses else None}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    gguf = export(out, out / "extract.gguf")
    result["gguf"] = str(gguf)
    return result
