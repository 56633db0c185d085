"""GRPO that fits a 2-core CPU: samples from the serving runtime, the update in torch.

TRL's GRPOTrainer samples with transformers on the dequantized fp32 model, the prompt once per
sample, and back-propagates groups whose rewards are all equal (no advantage, no gradient): 63-235
s a step here. This loop spends the CPU where there is signal:

1. rollouts: `generations` samples per prompt from llama.cpp with the adapter being trained, through
   `LLM.complete` - the serving call (prompt, JSON-schema grammar, chat template), at temperature
   1 with one seed per sample; the prompt's KV is evaluated once and reused by every sample;
2. reward: the task's (official F1 of the answer; for the manager, the frozen Answer Agent on a
   fork with the sampled op applied);
3. dynamic sampling: a group whose rewards are all equal is dropped before any backward pass and
   counted (`dropped` in the log: the share of groups without signal); a manager group whose ops
   all leave the frozen answerer the same memories is dropped before its reward is even computed
   (`unscored`: those rewards are equal whatever they are, so no answer is generated for them);
4. update: group-normalised advantages, the clipped-ratio objective (GRPO, no KL term) on the LoRA
   model in torch; the prompt's forward pass runs once per group, its KV (with gradients) repeated
   for the group's completions. Samples are on-policy: the adapter llama.cpp samples with is
   re-exported after every update (`sync_every`), so the ratio is 1 at the update; with
   `sync_every` > 1 the samples lag by up to that many updates and no importance correction is
   applied (the old log-probabilities are the learner's own at the update);
5. export: the LoRA to GGUF (trainer.export, llama.cpp's own converter) and llama.cpp reloads it.

What is custom and why: rollouts (TRL samples with transformers; here they must be llama.cpp's
to be serving's) and the shared-prompt update (TRL repeats the prompt per completion). peft gives
the LoRA, trainer.export the GGUF.

The run folder: config.json, log.jsonl (a row per step: reward, spread, dropped groups, loss,
time split), grpo_state/ (adapter + optimizer + step: a rerun of the same command resumes from
it, however the previous run ended), adapter/ (peft), rollout.gguf (the adapter being sampled),
result.json + reward_curve.png."""

from __future__ import annotations

import json
import math
import random
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from evaluation.paired import paired_bootstrap
from policy.models import ModelFile
from policy.runtime import LlamaCppLLM

from . import export as exporting
from .curves import curve, plot
from .lora import lora

STATE = "grpo_state"


@dataclass
class Sample:
    text: str
    reward: float
    cut: bool = False


def group_advantages(rewards: list[float], eps: float = 1e-4) -> list[float] | None:
    """Group-normalised advantages; None when the rewards are all equal (no signal)."""
    mean, std = statistics.fmean(rewards), statistics.pstdev(rewards)
    if std <= eps:
        return None
    return [(r - mean) / (std + eps) for r in rewards]


def schedule(n_examples: int, step: int, per_step: int, seed: int) -> list[int]:
    """The examples of a (0-based) step: epochs in a seeded order, so a resumed run continues it."""
    out = []
    for i in range(step * per_step, (step + 1) * per_step):
        epoch, pos = divmod(i, n_examples)
        order = list(range(n_examples))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        out.append(order[pos])
    return out


def total_steps(cfg, n_examples: int) -> int:
    if cfg.epochs:
        return max(1, math.ceil(cfg.epochs * n_examples / cfg.prompts_per_step))
    return cfg.max_steps


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The prompt's tokens on the torch side: the GGUF's chat template through transformers (a
    test checks them against the tokens llama.cpp evaluates for the same messages)."""
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


class Learner:
    """The LoRA model in torch: completion log-probabilities with the prompt evaluated once per
    group, the clipped GRPO step, and its own state on disk."""

    def __init__(self, net, tokenizer, cfg):
        import peft
        import torch

        self.torch, self.tokenizer, self.cfg = torch, tokenizer, cfg
        self.model = peft.get_peft_model(net, lora(net, cfg))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.learning_rate, weight_decay=0.0)
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.end_id = end if isinstance(end, int) and end >= 0 else tokenizer.eos_token_id

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return prompt_ids(self.tokenizer, messages)

    def completion_ids(self, text: str, cut: bool) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids if cut else ids + [self.end_id]  # a finished sample also learned to stop

    def logprobs(self, prompt: list[int], completions: list[list[int]]):
        """Per completion, the log-probability of each of its tokens (padded, with a mask): the
        prompt but its last token runs once, its KV repeated for the group."""
        torch = self.torch
        g, width = len(completions), max(len(c) for c in completions)
        head = torch.tensor([prompt[:-1]])
        out = self.model(input_ids=head, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(g)
        rows = [[prompt[-1]] + c[:-1] + [0] * (width - len(c)) for c in completions]
        logits = self.model(input_ids=torch.tensor(rows), past_key_values=cache, use_cache=True).logits
        targets = torch.tensor([c + [0] * (width - len(c)) for c in completions])
        mask = torch.tensor([[1.0] * len(c) + [0.0] * (width - len(c)) for c in completions])
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return logp * mask, mask

    def group_loss(self, prompt: list[int], completions: list[list[int]], advantages: list[float], clip: float = 0.2):
        """GRPO's clipped objective for one group (no KL: beta 0, as in DAPO/Dr. GRPO); the old
        log-probabilities are this model's own before the update (on-policy sampling)."""
        torch = self.torch
        logp, mask = self.logprobs(prompt, completions)
        ratio = torch.exp(logp - logp.detach())
        adv = torch.tensor(advantages).unsqueeze(-1)
        per_token = -torch.min(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
        return ((per_token * mask).sum(-1) / mask.sum(-1)).mean()

    def save(self, folder: Path, step: int, extra: dict) -> None:
        """Adapter, optimizer and step, replaced whole (a kill mid-save keeps the previous one)."""
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp / "adapter")
        self.torch.save(self.opt.state_dict(), tmp / "optimizer.pt")
        (tmp / "progress.json").write_text(json.dumps({"step": step, **extra}))
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    def load(self, folder: Path) -> dict:
        import peft
        from safetensors.torch import load_file
        weights = load_file(str(folder / "adapter" / "adapter_model.safetensors"))
        peft.set_peft_model_state_dict(self.model, weights)
        self.opt.load_state_dict(self.torch.load(folder / "optimizer.pt"))
        return json.loads((folder / "progress.json").read_text())


class Rollouts:
    """llama.cpp with the adapter under training: serving's call, sampled."""

    def __init__(self, model_file: ModelFile, gguf: Path | None):
        self.model_file = model_file
        self.llm = LlamaCppLLM(model_file, gguf, batch=1)

    def reload(self, gguf: Path) -> None:
        self.llm.close()
        self.llm = LlamaCppLLM(self.model_file, gguf, batch=1)

    def sample(self, row: dict, n: int, max_tokens: int, seed: int) -> list[tuple[str, bool]]:
        system, user = row["messages"][0]["content"], row["messages"][1]["content"]
        out = []
        for s in range(n):
            text, _ = self.llm.complete(system, user, row["schema"], max_tokens=max_tokens,
                                        temperature=1.0, seed=seed + s)
            try:
                json.loads(text)
                out.append((text, False))
            except json.JSONDecodeError:
                out.append((text, True))  # cut off: reward 0, and still learned from
        return out

    def greedy(self, row: dict, max_tokens: int) -> str:
        system, user = row["messages"][0]["content"], row["messages"][1]["content"]
        return self.llm.complete(system, user, row["schema"], max_tokens=max_tokens)[0]


def run(cfg, task, val, model_file: ModelFile, net, tokenizer, out: Path,
        say: Callable[[str, int, int | None], None]) -> dict:
    """Train with this loop; returns result.json's content (also written, with the curve plot)."""
    import torch

    torch.manual_seed(cfg.seed)
    learner = Learner(net, tokenizer, cfg)
    steps = total_steps(cfg, len(task.examples))
    state, start, wall = out / STATE, 0, 0.0
    if (state / "progress.json").exists():
        progress = learner.load(state)
        start, wall = progress["step"], progress.get("train_s", 0.0)
        say(f"resumed at step {start}", start, steps)
    elif cfg.init_adapter:
        exporting.load_gguf_lora(learner.model, cfg.init_adapter)
    gguf = out / "rollout.gguf"
    _export(learner, out, gguf)
    rollouts = Rollouts(model_file, gguf)
    prompts: dict[int, list[int]] = {}
    for step in range(start, steps):
        t0 = time.time()
        split = {"rollout_s": 0.0, "reward_s": 0.0, "update_s": 0.0, "export_s": 0.0}
        rewards_seen, dropped, unscored, losses, samples = [], 0, 0, [], 0
        learner.opt.zero_grad(set_to_none=True)
        groups = []
        for j, idx in enumerate(schedule(len(task.examples), step, cfg.prompts_per_step, cfg.seed)):
            row = task.examples[idx]
            t = time.time()
            drawn = rollouts.sample(row, cfg.generations, row["max_tokens"], seed=(cfg.seed * 1_000_003 + step) * 97 + j * 16)
            split["rollout_s"] += time.time() - t
            t = time.time()
            valid = [i for i, (_, cut) in enumerate(drawn) if not cut]
            got = dict(zip(valid, task.score_group([drawn[i][0] for i in valid], row,
                                                   skip_equal=len(valid) == len(drawn)))) if valid else {}
            split["reward_s"] += time.time() - t
            samples += len(drawn)
            if any(r is None for r in got.values()):
                unscored += 1  # every op leaves the answerer the same memories: equal rewards, never computed
                dropped += 1
                continue
            scored = [Sample(text, got.get(i) or 0.0, cut) for i, (text, cut) in enumerate(drawn)]
            rewards = [s.reward for s in scored]
            rewards_seen += rewards
            adv = group_advantages(rewards)
            if adv is None:
                dropped += 1
                continue
            groups.append((idx, row, scored, adv))
        t = time.time()
        for idx, row, scored, adv in groups:
            if idx not in prompts:
                prompts[idx] = learner.prompt_ids(row["messages"])
            completions = [learner.completion_ids(s.text, s.cut) for s in scored]
            loss = learner.group_loss(prompts[idx], completions, adv) / len(groups)
            loss.backward()
            losses.append(loss.item() * len(groups))
        if groups:
            torch.nn.utils.clip_grad_norm_(learner.params, 1.0)
            learner.opt.step()
        split["update_s"] = time.time() - t
        if groups and ((step + 1) % cfg.sync_every == 0 or step + 1 == steps):
            t = time.time()
            _export(learner, out, gguf)
            rollouts.reload(gguf)
            split["export_s"] = time.time() - t
        elapsed = time.time() - t0
        wall += elapsed
        n_groups = len(groups) + dropped
        row = {"step": step + 1, "time": time.time(), "epoch": (step + 1) * cfg.prompts_per_step / len(task.examples),
               # the mean over scored samples; a step whose groups were all unscored has none
               "reward": statistics.fmean(rewards_seen) if rewards_seen else None,
               "reward_std": statistics.pstdev(rewards_seen) if rewards_seen else None,
               "groups": n_groups, "dropped": dropped, "unscored": unscored,
               "dropped_share": dropped / n_groups, "samples": samples,
               "loss": sum(losses) / len(losses) if losses else None, "step_s": elapsed, **split}
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        say("train", step + 1, steps)
        if (step + 1) % cfg.save_every == 0 or step + 1 == steps:
            learner.save(state, step + 1, {"train_s": wall})
    learner.model.save_pretrained(out / "adapter")

    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()] if (out / "log.jsonl").exists() else []
    last = {r["step"]: r for r in rows}
    timing = {k: sum(last[s].get(k, 0.0) for s in last) for k in ("rollout_s", "reward_s", "update_s", "export_s", "step_s")}
    groups_total = sum(last[s].get("groups", 0) for s in last)
    result = {"train_s": wall, "steps": steps, "epochs": steps * cfg.prompts_per_step / len(task.examples),
              "examples": len(task.examples), "curve": curve(out), "timing": timing,
              "dropped_share": (sum(last[s].get("dropped", 0) for s in last) / groups_total) if groups_total else None,
              "unscored_share": (sum(last[s].get("unscored", 0) for s in last) / groups_total) if groups_total else None}
    if val is not None:
        say("validation", 0, None)
        base = Rollouts(model_file, Path(cfg.init_adapter) if cfg.init_adapter else None)  # where training started
        rows_val = val.examples[:cfg.val_examples]
        trained = [val.score(rollouts.greedy(r, r["max_tokens"]), r) for r in rows_val]
        before = [val.score(base.greedy(r, r["max_tokens"]), r) for r in rows_val]
        result["validation"] = {"conversation": val.name, "n": len(rows_val), "base": statistics.fmean(before),
                                "base_is": cfg.init_adapter or "the base model",
                                "trained": statistics.fmean(trained), "base_scores": before, "trained_scores": trained,
                                "paired_95": paired_bootstrap(before, trained) if rows_val else None,
                                "served_by": "llama.cpp (serving call, greedy)"}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    plot(out, result)
    return result


def _export(learner: Learner, out: Path, gguf: Path) -> None:
    learner.model.save_pretrained(out / "adapter")
    exporting.export(out, gguf)

