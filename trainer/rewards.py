"""Outcome rewards (Memory-R1): only answer correctness, no labels for which memory to keep or
which op to choose.

- Answer Agent: the official LoCoMo F1 of the final answer against gold (0 when the output is
  not the serving JSON: at serving time the grammar guarantees it, so training must learn it).
- Memory Manager: the sampled op is applied to a *fork* of the bank replayed as of the turn (a
  plain dict, never the real store); a frozen Answer Agent answers the turn's QA pairs from that
  fork; the reward is their mean F1. An op that deletes a needed fact scores lower than keeping it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from policy import prompts
from policy.runtime import LLM, LLMError
from evaluation.metrics import score_official

_JSON = re.compile(r"\{.*\}", re.S)
_ANSWER = re.compile(r'"answer"\s*:\s*"((?:[^"\\]|\\.)*)"')


def parse_json(completion) -> dict | None:
    """The JSON object of a completion (TRL passes a list of messages for chat prompts)."""
    text = completion[0]["content"] if isinstance(completion, list) else str(completion)
    m = _JSON.search(text)
    if not m:
        return None
    try:
        out = json.loads(m.group(0))
    except json.JSONDecodeError:
        return None
    return out if isinstance(out, dict) else None


def answer_reward(completion, gold: str, category: int) -> float:
    """F1 of the "answer" field. A JSON object that is broken elsewhere (say a date among the
    "relevant" numbers) still counts by its answer string: serving's grammar would have forced
    that part into shape, and the answer is what is rewarded."""
    out = parse_json(completion)
    if out is not None:
        answer = out.get("answer")
    else:
        text = completion[0]["content"] if isinstance(completion, list) else str(completion)
        m = _ANSWER.search(text)
        try:
            answer = json.loads(f'"{m.group(1)}"') if m else None
        except json.JSONDecodeError:
            answer = None
    if not isinstance(answer, str):
        return 0.0
    return score_official(answer, gold, category)


# ---- the manager: ops on a forked bank -----------------------------------------------------

@dataclass(frozen=True)
class Op:
    op: str
    target: int | None = None   # 1-based number among the candidates shown
    text: str | None = None


def parse_op(completion, n_candidates: int) -> Op | None:
    """The serving format (prompts.decide_schema); None where serving's grammar would not allow it."""
    out = parse_json(completion)
    if out is None:
        return None
    op = out.get("op")
    if op in ("ADD", "NOOP"):
        return Op(op)
    target = out.get("target")
    if op in ("UPDATE", "DELETE") and isinstance(target, int) and 1 <= target <= n_candidates:
        text = out.get("text")
        if op == "UPDATE" and not (isinstance(text, str) and text.strip()):
            return None
        return Op(op, target, text.strip() if op == "UPDATE" else None)
    return None


def fork(bank: dict[str, tuple[str, str]], op: Op, fact: str, candidate_ids: Sequence[str],
         day: str) -> dict[str, tuple[str, str]]:
    """A copy of the bank ({id: (text, day)}) with one op applied; the input is left as it was."""
    out = dict(bank)
    if op.op == "ADD":
        out["new"] = (fact, day)
    elif op.op == "UPDATE":
        out[candidate_ids[op.target - 1]] = (op.text, day)
    elif op.op == "DELETE":
        out.pop(candidate_ids[op.target - 1], None)
    return out


class FrozenAnswerer:
    """The Answer Agent with frozen weights, over a bank given as a dict: top-k memories by cosine
    similarity (MiniLM), then the serving answer prompt. Answers are cached by (question, memories
    shown): sampled ops that leave the retrieved memories alike cost one model call."""

    def __init__(self, llm: LLM, embed: Callable[[list[str]], np.ndarray], k: int = 10):
        self.llm, self._embed, self.k = llm, embed, k
        self._vectors: dict[str, np.ndarray] = {}
        self._answers: dict[tuple, str] = {}
        self.calls = 0

    def vectors(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            for t, v in zip(missing, self._embed(missing)):
                self._vectors[t] = v
        return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, 1))

    def answer(self, question: str, asked_at: str, bank: dict[str, tuple[str, str]]) -> str:
        items = sorted(bank.values())
        if items:
            scores = self.vectors([t for t, _ in items]) @ self.vectors([question])[0]
            top = [items[i] for i in np.argsort(-scores, kind="stable")[: self.k]]
        else:
            top = []
        key = (question, tuple(top))
        if key not in self._answers:
            self.calls += 1
            try:
                out = self.llm.json(prompts.ANSWER_SYSTEM, prompts.answer_user(question, asked_at[:10], top),
                                    prompts.answer_schema(len(top)), max_tokens=64)
                self._answers[key] = str(out.get("answer", ""))
            except LLMError:
                self._answers[key] = ""
        return self._answers[key]


def manager_reward(completion, *, fact: str, day: str, bank: dict[str, tuple[str, str]],
                   candidate_ids: Sequence[str], questions: Sequence[tuple[str, str, int, str]],
                   answerer: FrozenAnswerer) -> float:
    """Mean F1 of the frozen answerer on `questions` ((question, gold, category, asked_at)) after
    the op; 0 for an output serving would not accept."""
    op = parse_op(completion, len(candidate_ids))
    if op is None:
        return 0.0
    after = fork(bank, op, fact, candidate_ids, day)
    scores = [score_official(answerer.answer(q, asked, after), gold, cat) for q, gold, cat, asked in questions]
    return float(np.mean(scores)) if scores else 0.0
