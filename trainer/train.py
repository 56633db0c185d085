"""`memstore train manager|answer|extract --algo grpo|grpo-trl|sft`: LoRA (peft) on the serving GGUF
loaded into transformers, rewarded by answer correctness only, against replayed histories.
(`train extract`'s supervised fine-tuning, the start of its GRPO, is trainer.extraction.)

- grpo: trainer.grpo: rollouts from llama.cpp (the serving call), dynamic sampling, the update in
        torch with the prompt evaluated once per group; epochs, resumable (`--epochs`).
- grpo-trl: TRL's GRPOTrainer (samples with transformers, after a JSON-opening prefix): the
        path bench/bench_train.py measures the new loop against.
- sft:  the baseline: sample several outputs per prompt from the frozen model (llama.cpp, with
        the serving grammar), score them with the same reward, and clone the best one (TRL's
        SFTTrainer) where it scores above 0.
- ppo:  TRL 1.16 no longer ships PPOTrainer; refused with a clear message.

Everything a run needs to be judged goes to OUT: config.json (arguments, data sha256, base model
sha256, library versions), log.jsonl (every logged step), result.json (reward curve, validation
base vs trained on the validation conversation) + reward_curve.png, adapter/ (peft),
checkpoints/ (resumable). On GPUs the same code
runs under `accelerate launch -m cli.main train ...` (see README)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from memstore.errors import BadInput
from memstore.fork import Fork
from policy.answer import AnswerAgent
from policy.manager import LLMPolicy
from policy.models import resolve, sha256_file
from policy.prompts import ANSWER_PROMPT_VERSION, EXTRACT_VERSION, EXTRACT_WINDOW, PROMPT_VERSION
from policy.runtime import LlamaCppLLM

from . import base_model, history as histories, rewards, rollouts
from .curves import curve, plot
from .lora import lora

KINDS = ("manager", "answer", "extract")
ALGOS = ("grpo", "grpo-trl", "sft", "ppo")


@dataclass
class TrainConfig:
    kind: str
    algo: str
    data: str | None
    conversations: list[str]
    val: str | None = None
    db: str | None = None          # --from-bank: a user's own bank (its file and name) and QA file
    from_bank: str | None = None
    qa: str | None = None
    val_fraction: float = 0.2      # --from-bank: the share of the QA held out (never trained on)
    max_steps: int = 20
    epochs: float = 0.0           # grpo: passes over the examples (0: --max-steps decides)
    prompts_per_step: int = 1     # grpo: groups per optimizer step
    sync_every: int = 1           # grpo: updates between adapter exports to llama.cpp
    save_every: int = 5           # grpo: steps between checkpoints
    out: str = "runs/train"
    model: str | None = None
    generations: int = 8          # completions per prompt (GRPO group, SFT candidates)
    memories: int = AnswerAgent.DEFAULT_K  # memories shown to the Answer Agent: serving's default
    max_completion: int = 40
    learning_rate: float = 5e-5
    lora_r: int = 16
    lora_layers: int = 8          # LoRA on the top N transformer blocks: backward stops there (CPU)
    val_examples: int = 12
    seed: int = 0
    bank_policy: str = "heuristic"  # the manager that built the replayed histories
    init_adapter: str | None = None  # grpo: a GGUF LoRA the trained one starts from (extract: its SFT adapter)
    window: int | None = None       # extract: earlier messages read (None: the init adapter's, else serving's)
    anchors: float = 0.0            # extract: uncited turns per cited one, anchored to the init adapter's facts

    def extract_window(self) -> int:
        """The window extraction examples are built with: what the adapter is served with."""
        if self.window is not None:
            return self.window
        if self.init_adapter:
            from policy.agent import adapter_contract
            return int(adapter_contract(Path(self.init_adapter)).get("window", EXTRACT_WINDOW))
        return EXTRACT_WINDOW

    def check(self) -> None:
        if self.from_bank is not None:
            if not (self.db and self.qa) or self.data or self.val:
                raise BadInput("--from-bank needs --db and --qa, and no --data or --val (the bank's own inputs are the "
                               "history; --val-fraction holds questions out)")
            if self.algo != "grpo":
                raise BadInput("--from-bank trains with --algo grpo")
            if not 0 <= self.val_fraction < 1:
                raise BadInput(f"--val-fraction must be in [0, 1), not {self.val_fraction}")
        elif not self.data:
            raise BadInput("give --data (LoCoMo JSON) or --from-bank BANK --db FILE --qa FILE")
        if self.kind not in KINDS:
            raise BadInput(f"unknown policy to train {self.kind!r}: choose manager, answer or extract")
        if self.anchors:
            if self.kind != "extract" or not self.init_adapter:
                raise BadInput("--anchor applies to train extract --algo grpo --init-adapter A.gguf: the anchor is "
                               "what that adapter writes")
            if not 0 < self.anchors <= 10:
                raise BadInput(f"--anchor must be between 0 and 10 uncited turns per cited one, not {self.anchors}")
        if self.init_adapter is not None:
            if self.algo != "grpo":
                raise BadInput("--init-adapter starts a --algo grpo run")
            if not Path(self.init_adapter).is_file():
                raise BadInput(f"--init-adapter {self.init_adapter}: no such GGUF file")
        if self.algo == "ppo":
            raise BadInput("--algo ppo: TRL 1.16 (the version pinned here) no longer ships PPOTrainer; "
                           "use --algo grpo (the clipped PPO objective with group baselines) or sft")
        if self.algo not in ALGOS:
            raise BadInput(f"unknown --algo {self.algo!r}: choose grpo, grpo-trl or sft")
        if self.max_steps < 1 or self.generations < 2:
            raise BadInput("--max-steps must be >= 1 and --generations >= 2")
        if not (0 <= self.epochs <= 1000) or self.prompts_per_step < 1 or self.sync_every < 1 or self.save_every < 1:
            raise BadInput("--epochs must be between 0 and 1000; prompts per step, sync and save intervals >= 1")


# ---- data ------------------------------------------------------------------------------------

class TrainingTask:
    """Examples + the reward of one policy over some replayed histories."""

    def __init__(self, cfg: TrainConfig, hist: list[histories.History], llm: LlamaCppLLM):
        self.cfg, self.llm, self.histories = cfg, llm, hist
        self.name = ",".join(h.conversation for h in hist)
        self._banks: dict[tuple[int, str], Fork] = {}
        self.examples: list[dict] = []
        agent = AnswerAgent(llm, k=cfg.memories)  # the serving reader: answer prompts, and the manager's answerer
        manager = LLMPolicy(llm)  # the serving manager; its fact cache lives in each store
        for i, h in enumerate(self.histories):
            rows = (rollouts.answer_examples(h, agent) if cfg.kind == "answer"
                    else rollouts.extract_examples(h, cfg.extract_window(), anchors=cfg.anchors, seed=cfg.seed)
                    if cfg.kind == "extract"
                    else rollouts.manager_examples(h, manager))
            self.examples += [{**r, "history": i} for r in rows]
        if not self.examples:
            raise BadInput(f"no {cfg.kind} examples in {self.name}"
                           + (" (its examples come from questions with evidence)" if cfg.kind != "answer" else ""))
        if cfg.kind != "answer":
            self.answerer = rewards.ForkAnswerer(agent)
        self.embed = None
        if cfg.anchors:
            self._anchor(llm)

    def _anchor(self, llm: LlamaCppLLM) -> None:
        """Each example's reference: the facts the starting adapter writes for its turn (greedy,
        serving's call and parser), kept in OUT/reference_facts.json for a resumed run."""
        from memstore.embed import default_embedder
        self.embed = default_embedder().embed
        path = Path(self.cfg.out) / "reference_facts.json"
        adapter = sha256_file(Path(self.cfg.init_adapter))
        saved = json.loads(path.read_text()) if path.exists() else {}
        facts = saved.get("facts", {}) if saved.get("adapter") == adapter else {}
        todo = [r for r in self.examples if r["turn"] not in facts]
        if todo:
            start = LlamaCppLLM(llm.model, self.cfg.init_adapter, reuse_prefix=llm.reuse_prefix)
            one = todo[0]
            outs = start.json_many(one["messages"][0]["content"], [r["messages"][1]["content"] for r in todo],
                                   one["schema"], max_tokens=one["max_tokens"])
            start.close()
            for r, out in zip(todo, outs):  # a cut-off output (None) wrote no facts
                kept = rewards.parse_facts(json.dumps(out), r["speaker"], set(json.loads(r["names"])), r["at"][:10],
                                           r.get("said")) \
                    if out is not None else None
                facts[r["turn"]] = kept or []
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"adapter": adapter, "facts": facts}))
        for r in self.examples:
            r["reference"] = json.dumps(facts[r["turn"]])
            r["reference_chars"] = sum(len(f) for f in facts[r["turn"]])

    def bank(self, i: int, stamp: str) -> Fork:
        """The history's bank as of just before a turn, replayed once and branched per sample."""
        if (i, stamp) not in self._banks:
            self._banks[(i, stamp)] = Fork(self.histories[i].store, stamp)
        return self._banks[(i, stamp)]

    def score(self, completion, row: dict) -> float:
        return self.score_group([completion], row, skip_equal=False)[0]

    def score_group(self, completions: list, row: dict, skip_equal: bool = True) -> list[float | None]:
        """The rewards of a group of samples of one prompt. For the manager, the answers the group
        needs are computed together, and with `skip_equal` a group whose ops all leave the answerer
        the same memories is not scored at all: None for every sample (equal rewards, no signal)."""
        if self.cfg.kind == "answer":
            return [rewards.answer_reward(c, row["gold"], row["category"]) for c in completions]
        if self.cfg.kind == "extract":
            return rewards.extract_rewards(
                completions, speaker=row["speaker"], names=json.loads(row["names"]), at=row["at"],
                bank=self.bank(row["history"], row["turn_time"]), questions=json.loads(row["questions"]),
                reference_chars=int(row["reference_chars"]), answerer=self.answerer, skip_equal=skip_equal,
                reference=json.loads(row["reference"]) if "reference" in row else None, embed=self.embed,
                said=row.get("said"))
        return rewards.manager_rewards(
            completions, fact=row["fact"], day=row["day"], bank=self.bank(row["history"], row["turn_time"]),
            candidate_ids=json.loads(row["candidate_ids"]), questions=json.loads(row["questions"]),
            answerer=self.answerer, skip_equal=skip_equal, closest=float(row.get("closest", 1.0)))

    def render(self, tokenizer) -> None:
        """Each example's prompt as text: the chat template + the JSON opening serving's grammar forces."""
        for row in self.examples:
            row["prompt"] = tokenizer.apply_chat_template(row["messages"], tokenize=False,
                                                          add_generation_prompt=True) + row["prefix"]

    def reward_func(self):
        def reward(prompts, completions, **columns):
            rows = [{k: v[j] for k, v in columns.items() if isinstance(v, list)} for j in range(len(completions))]
            return [self.score(r["prefix"] + c, r) for c, r in zip(completions, rows)]
        reward.__name__ = f"{self.cfg.kind}_reward"
        return reward


# ---- training --------------------------------------------------------------------------------



def _callback(out: Path, on_step: Callable[[int, dict], None] | None):
    from transformers import TrainerCallback

    class Log(TrainerCallback):
        """Every logged step into OUT/log.jsonl (appended: a resumed run continues the curve)."""
        def on_log(self, args, state, control, logs=None, **kw):
            row = {"step": state.global_step, "time": time.time(), **(logs or {})}
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            if on_step:
                on_step(state.global_step, row)
    return Log()


def _common_args(cfg: TrainConfig, out: Path) -> dict:
    import torch
    return dict(output_dir=str(out / "checkpoints"), max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
                logging_steps=1, save_steps=max(1, min(10, cfg.max_steps)), save_total_limit=2, report_to="none",
                seed=cfg.seed, use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available(),
                per_device_train_batch_size=cfg.generations, gradient_accumulation_steps=1,
                dataloader_num_workers=0, lr_scheduler_type="constant",
                gradient_checkpointing=torch.cuda.is_available())  # TRL turns it on; on CPU memory is not the limit, time is


def _dataset(examples: list[dict]):
    """Text prompts only: a `messages` column would make TRL apply the chat template again."""
    from datasets import Dataset
    return Dataset.from_list([{k: v for k, v in r.items() if k not in ("messages", "schema")} for r in examples])


_KEY_ORDER = ("answer", "relevant", "op", "target", "text")  # the served grammar's order (policy/prompts.py)


def sft_examples(task: TrainingTask, llm: LlamaCppLLM, n: int, progress=None) -> list[dict]:
    """Behaviour cloning (best-of-n): the best-scoring sampled output of each prompt, where it
    scores above 0."""
    out = []
    for j, row in enumerate(task.examples):
        if len(out) >= n:
            break
        system, user = row["messages"][0]["content"], row["messages"][1]["content"]
        schema = row["schema"]
        scored = []
        for s in range(task.cfg.generations):
            try:
                sample = llm.json(system, user, schema, max_tokens=task.cfg.max_completion,
                                  temperature=1.0, seed=task.cfg.seed * 1000 + s)
                # parsed and written again in the served key order, to continue the prompt's opening
                text = json.dumps({k: sample[k] for k in _KEY_ORDER if k in sample})
            except Exception:  # a cut-off sample is just not a candidate
                continue
            scored.append((task.score(text, row), text))
        if progress:
            progress(j + 1, len(task.examples))
        best = max(scored, default=(0.0, ""))  # ties: the first sample of the best score
        if best[0] > 0 and best[1].startswith(row["prefix"]):
            out.append({"prompt": row["prompt"], "completion": best[1][len(row["prefix"]):]})
    return out


def validate(net, tokenizer, task: TrainingTask, n: int, max_new_tokens: int) -> list[float]:
    """Greedy outputs of `net` on the first n examples, scored by the task's reward."""
    import torch
    scores = []
    for row in task.examples[:n]:
        ids = {k: v.to(net.device) for k, v in tokenizer(row["prompt"], return_tensors="pt").items()}
        with torch.no_grad():
            gen = net.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                               pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        scores.append(task.score(row["prefix"] + text, row))
    return scores


def run(cfg: TrainConfig, progress: Callable[[str, int, int | None], None] | None = None) -> dict:
    """Train, save the adapter and the curves; resumable from OUT/checkpoints."""
    import peft
    import transformers
    import trl
    from transformers.trainer_utils import get_last_checkpoint

    import torch
    from memstore.cpu import threads

    cfg.check()
    torch.set_num_threads(threads())
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model_file = resolve(cfg.model)
    if model_file.sha256 is None:
        model_file = replace(model_file, sha256=sha256_file(model_file.path))
    say = progress or (lambda *a: None)
    llm = LlamaCppLLM(model_file)
    task, val, source = _tasks(cfg, llm, out, say)
    config = {**asdict(cfg), **source, "base_model": model_file.name,
              "base_sha256": model_file.sha256, "examples": len(task.examples),
              # what serving checks before it loads the adapter (policy/agent.py: adapter_contract)
              "prompt_version": {"answer": ANSWER_PROMPT_VERSION, "extract": EXTRACT_VERSION}.get(cfg.kind, PROMPT_VERSION),
              **({"window": cfg.extract_window()} if cfg.kind == "extract" else {}),
              **({"init_sha256": sha256_file(Path(cfg.init_adapter))} if cfg.init_adapter else {}),
              "versions": {"trl": trl.__version__, "peft": peft.__version__, "transformers": transformers.__version__}}
    _check_resumable(out, config)
    (out / "config.json").write_text(json.dumps(config, indent=2))

    say("loading base model", 0, None)
    net, tokenizer = base_model.load(model_file)
    base_model.config_dir(model_file, net, tokenizer)
    for t in (task, val):
        if t is not None:
            t.render(tokenizer)
    if cfg.algo == "grpo":
        from . import grpo
        return grpo.run(cfg, task, val, model_file, net, tokenizer, out, say)
    common = _common_args(cfg, out)
    callback = _callback(out, lambda step, row: say("train", step, cfg.max_steps))
    t0 = time.time()
    if cfg.algo == "grpo-trl":
        args = trl.GRPOConfig(**common, num_generations=cfg.generations, max_completion_length=cfg.max_completion,
                              temperature=1.0, beta=0.0, log_completions=False)
        trainer = trl.GRPOTrainer(model=net, reward_funcs=task.reward_func(), args=args,
                                  train_dataset=_dataset(task.examples), processing_class=tokenizer,
                                  peft_config=lora(net, cfg), callbacks=[callback])
    else:  # sft
        n = cfg.max_steps * cfg.generations
        chosen_path = out / "sft_data.jsonl"
        if chosen_path.exists():
            chosen = [json.loads(line) for line in chosen_path.read_text().splitlines()]
        else:
            chosen = sft_examples(task, llm, n, progress=lambda i, t: say("sampling", i, t))
            chosen_path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
        if not chosen:
            raise BadInput("no sampled output scored above 0: nothing to clone")
        args = trl.SFTConfig(**common)
        trainer = trl.SFTTrainer(model=net, args=args, train_dataset=_dataset(chosen), processing_class=tokenizer,
                                 peft_config=lora(net, cfg), callbacks=[callback])
    last = get_last_checkpoint(str(out / "checkpoints")) if (out / "checkpoints").exists() else None
    trainer.train(resume_from_checkpoint=last)
    train_s = time.time() - t0
    trainer.model.save_pretrained(out / "adapter")

    result = {"train_s": train_s, "steps": cfg.max_steps, "curve": curve(out)}
    if val is not None:
        model = trainer.model
        model.eval()
        say("validation (trained)", 0, None)
        trained = validate(model, tokenizer, val, cfg.val_examples, cfg.max_completion)
        say("validation (base)", 0, None)
        with model.disable_adapter():
            base = validate(model, tokenizer, val, cfg.val_examples, cfg.max_completion)
        result["validation"] = {"conversation": val.name, "n": len(trained), "base": _mean(base),
                                "trained": _mean(trained), "base_scores": base, "trained_scores": trained}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    plot(out, result)
    return result


def _tasks(cfg: TrainConfig, llm: LlamaCppLLM, out: Path, say) -> tuple[TrainingTask, TrainingTask | None, dict]:
    """The training and validation tasks, and what the run records of its data: LoCoMo
    conversations (replayed histories), or a user's bank and QA file with a held-out share."""
    if cfg.from_bank is None:
        build = lambda c, label: histories.build(cfg.data, c, llm, bank_policy=cfg.bank_policy,  # noqa: E731
                                                 progress=lambda n, t, _i: say(label, n, t))
        task = TrainingTask(cfg, [build(c, "history") for c in cfg.conversations], llm)
        val = TrainingTask(cfg, [build(cfg.val, "val history")], llm) if cfg.val else None
        return task, val, {"data_sha256": sha256_file(Path(cfg.data))}
    from evaluation import own
    train_q, val_q = own.split(own.load_qa(cfg.qa), cfg.val_fraction, cfg.seed)
    if not train_q:
        raise BadInput(f"--val-fraction {cfg.val_fraction} leaves no question of {cfg.qa} to train on")
    hist = histories.from_bank(cfg.db, cfg.from_bank, train_q + val_q, out / "source.db")
    task = TrainingTask(cfg, [replace(hist, questions=train_q)], llm)
    val = TrainingTask(cfg, [replace(hist, conversation=f"{hist.conversation} (held out)", questions=val_q)], llm) \
        if val_q else None
    return task, val, {"qa_sha256": sha256_file(Path(cfg.qa)), "bank_anchor": hist.store.head()["anchor"],
                       "questions": {"train": len(train_q), "held_out": len(val_q)}}


# what a resumed run must share with the checkpoints it continues (--max-steps may grow)
_SAME_RUN = ("kind", "algo", "conversations", "data_sha256", "db", "from_bank", "qa_sha256", "val_fraction",
             "base_sha256", "prompt_version", "generations", "memories", "max_completion", "learning_rate", "lora_r", "lora_layers", "seed", "bank_policy", "prompts_per_step",
             "init_sha256", "window")


def _check_resumable(out: Path, config: dict) -> None:
    old_path = out / "config.json"
    if not (old_path.exists() and ((out / "checkpoints").exists() or (out / "grpo_state").exists())):
        return
    old = json.loads(old_path.read_text())
    changed = [k for k in _SAME_RUN if old.get(k) != config.get(k)]
    if changed:
        raise BadInput(f"{out} holds a run with other settings ({', '.join(changed)}): use another --out")


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0



