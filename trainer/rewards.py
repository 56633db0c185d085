"""Outcome rewards (Memory-R1): only answer correctness, no labels for which memory to keep or
which op to choose.

- Answer Agent: the official LoCoMo F1 of the final answer against gold (0 when the output is
  not the serving JSON: at serving time the grammar guarantees it, so training must learn it).
- Memory Manager: the sampled op is applied to a fork of the bank as of the turn
  (`memstore.fork.Fork`: in memory, the store never written); the serving Answer Agent, frozen,
  answers the turn's QA pairs from that fork with serving's retrieval; the reward is their mean F1.
  An op that deletes a needed fact scores lower than keeping it.
- Extraction: the sampled facts (the one parser, `policy.facts.clean_facts`) are ADDed to a fork
  of the bank as of just before the turn, and the frozen Answer Agent answers the questions whose
  evidence is the turn: their mean F1, times (1 - 0.8 x a length penalty) against the turn's
  annotated observations (MemBuilder's form: no penalty from half to 1.3 times their length, full
  at twice or a fifth), so that listing every phrase of the turn is not the way to the answer;
  0 for an output serving's grammar would not allow. Anchored (`train extract --anchor`), the
  length reference is the starting adapter's own facts for the turn, and turns no question cites
  join the examples, rewarded by the share of the starting facts the sample still states: the
  answers alone reach a few turns, and left alone the others drift (a run without them learned to
  write fewer facts everywhere).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from evaluation.metrics import score_official
from memstore.fork import Fork
from policy import prompts
from policy.answer import AnswerAgent, Ask, distinct
from policy.facts import SAME_FACT, clean_facts
from policy.manager import content_kept, same_time

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
    """F1 of the "answer" field as serving returns it (`distinct`: without a loop's repeats). A JSON
    object that is broken elsewhere (say a date among the "relevant" numbers) still counts by its
    answer string: serving's grammar would have forced that part into shape, and the answer is
    what is rewarded."""
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
    return score_official(distinct(answer), gold, category)


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


def apply_op(bank: Fork, op: Op, fact: str, candidate_ids: Sequence[str], day: str, closest: float = 1.0) -> Fork:
    """A branch of the fork with the op carried out as serving does (`content_kept`; `closest`:
    the cosine of the closest candidate)."""
    out = bank.branch()
    target = candidate_ids[op.target - 1] if op.target else ""
    memory = bank.alive().get(target)
    fresh = memory is not None and same_time(memory.valid_at, bank.as_of)  # written by an earlier fact of the turn
    for name, memory_id, text, _ in content_kept(op.op, target, op.text, fact, closest, memory.text if memory else "", fresh):
        out.apply(name, memory_id, text, at=day)
    return out


def view_key(view: Ask) -> tuple:
    """What an answer depends on: the question, its day, the memories shown."""
    return view.question, view.when, tuple(prompts.dated(view.hits))


class ForkAnswerer:
    """The serving Answer Agent with frozen weights, over forks. Answers are cached by (question,
    day, memories shown): sampled ops that leave the retrieved memories alike cost one answer, and
    the answers a group of samples still needs are decoded together (`AnswerAgent.answer_many`)."""

    def __init__(self, agent: AnswerAgent):
        self.agent = agent
        self._answers: dict[tuple, str] = {}
        self.calls = 0

    def views(self, questions: Sequence[tuple[str, str]], bank: Fork) -> list[Ask]:
        """Each (question, asked_at) as the serving agent asks it on `bank`, as of when it is asked."""
        return [self.agent.ask(bank, q, at, at) for q, at in questions]

    def answers(self, views: Sequence[Ask]) -> list[str]:
        """The answer to each view; the ones not yet cached are computed in one batch."""
        keys = [view_key(v) for v in views]
        todo = {}
        for k, v in zip(keys, views):
            if k not in self._answers:
                todo.setdefault(k, v)
        if todo:
            self.calls += len(todo)
            for k, a in zip(todo, self.agent.answer_many(list(todo.values()))):
                self._answers[k] = a.answer
        return [self._answers[k] for k in keys]

    def answer(self, question: str, asked_at: str, bank: Fork) -> str:
        return self.answers(self.views([(question, asked_at)], bank))[0]


def mean_f1(views: dict, questions: Sequence[tuple[str, str, int, str]], answerer: ForkAnswerer) -> dict:
    """Per key of `views` (a sampled op, a sampled fact list), the frozen answerer's mean F1 on
    `questions` as that key's views show them; the answers of every key are decoded together."""
    answers = answerer.answers([v for vs in views.values() for v in vs])
    score, i = {}, 0
    for key, vs in views.items():
        got = answers[i:i + len(vs)]
        i += len(vs)
        score[key] = float(np.mean([score_official(a, gold, cat) for a, (_, gold, cat, _) in zip(got, questions)])) \
            if vs else 0.0
    return score


def manager_rewards(completions: Sequence, *, fact: str, day: str, bank: Fork,
                    candidate_ids: Sequence[str], questions: Sequence[tuple[str, str, int, str]],
                    answerer: ForkAnswerer, skip_equal: bool = True, closest: float = 1.0) -> list[float | None]:
    """One reward per sampled completion of a group: the mean F1 of the frozen answerer on
    `questions` ((question, gold, category, asked_at)) after the completion's op; 0 for an output
    serving would not accept. With `skip_equal`, when every completion is valid and leaves the
    answerer shown the same memories for every question, the rewards are equal whatever they are:
    None for all, and no answer is computed (the group carries no signal; the loop drops it, as
    dynamic sampling does)."""
    if not questions:
        return [0.0] * len(completions)
    ops = [parse_op(c, len(candidate_ids)) for c in completions]
    asked = [(q, at) for q, _, _, at in questions]
    views = {op: answerer.views(asked, apply_op(bank, op, fact, candidate_ids, day, closest)) for op in dict.fromkeys(ops) if op}
    shown = {tuple(view_key(v) for v in vs) for vs in views.values()}
    if skip_equal and None not in ops and len(shown) == 1:
        return [None] * len(completions)
    score = mean_f1(views, questions, answerer)
    return [score[op] if op else 0.0 for op in ops]


def manager_reward(completion, **kwargs) -> float:
    """The reward of one completion (`manager_rewards` of a group of one, always scored)."""
    return manager_rewards([completion], skip_equal=False, **kwargs)[0]


# ---- extraction: facts ADDed to a forked bank ----------------------------------------------

LENGTH_WEIGHT = 0.8               # MemBuilder's lambda
LENGTH_OK = (0.5, 1.3)            # no penalty between these ratios to the reference length
LENGTH_FULL = (0.2, 2.0)          # full penalty at or beyond these


def length_penalty(chars: int, reference: int) -> float:
    """0 to 1: how far the facts' length strays from the reference's (0 without a reference)."""
    if reference <= 0:
        return 0.0
    ratio = chars / reference
    if ratio > LENGTH_OK[1]:
        return min(1.0, (ratio - LENGTH_OK[1]) / (LENGTH_FULL[1] - LENGTH_OK[1]))
    if ratio < LENGTH_OK[0]:
        return min(1.0, (LENGTH_OK[0] - ratio) / (LENGTH_OK[0] - LENGTH_FULL[0]))
    return 0.0


def parse_facts(completion, speaker: str, names: set[str] = frozenset(), day: str | None = None,
                said: str | None = None) -> list[str] | None:
    """The kept facts of an extraction sample, as serving keeps them (`day`: the turn's date,
    `said`: the message and the window its extraction read);
    None where serving's grammar would not allow the output (no {"facts": [strings]})."""
    out = parse_json(completion)
    if out is None or not isinstance(out.get("facts"), list) or not all(isinstance(f, str) for f in out["facts"]):
        return None
    return clean_facts(out, speaker, names, day, said)


def kept_share(reference: Sequence[str], facts: Sequence[str], embed: Callable[[Sequence[str]], np.ndarray]) -> float:
    """The share of `reference` facts that some fact of `facts` states (cosine >= SAME_FACT, the
    matcher of `bench facts`); an empty reference is kept only by writing nothing."""
    if not reference:
        return 0.0 if facts else 1.0
    if not facts:
        return 0.0
    sims = embed(list(reference)) @ embed(list(facts)).T
    return float((sims.max(axis=1) >= SAME_FACT).mean())


def extract_rewards(completions: Sequence, *, speaker: str, names: Sequence[str], at: str, bank: Fork,
                    questions: Sequence[tuple[str, str, int, str]], reference_chars: int,
                    answerer: ForkAnswerer, skip_equal: bool = True, reference: Sequence[str] | None = None,
                    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
                    said: str | None = None) -> list[float | None]:
    """One reward per sampled extraction of a group: the frozen answerer's mean F1 on `questions`
    after the sample's facts are ADDed at `at` to `bank`, scaled by the length penalty; 0 for an
    invalid output. A turn no question cites (an anchor: `questions` empty, `reference` the
    starting adapter's own facts) is rewarded by the share of `reference` the sample still states
    (`kept_share`, with `embed`), scaled the same way: what keeps the recall of the turns the
    answers never see. With `skip_equal`, a group whose samples all keep the same facts carries
    no signal: None for all, no answer computed."""
    kept = [parse_facts(c, speaker, set(names), at[:10], said) for c in completions]
    keys = [tuple(f) if f is not None else None for f in kept]
    if skip_equal and None not in keys and len(set(keys)) == 1:
        return [None] * len(completions)
    if not questions:
        if reference is None or embed is None:
            raise ValueError("an extraction example without questions needs its reference facts and an embedder")
        score = {key: kept_share(reference, key, embed)
                 * (1 - LENGTH_WEIGHT * length_penalty(sum(len(f) for f in key), reference_chars))
                 for key in dict.fromkeys(k for k in keys if k is not None)}
        return [score[k] if k is not None else 0.0 for k in keys]
    asked = [(q, when) for q, _, _, when in questions]
    views = {}
    for key in dict.fromkeys(k for k in keys if k is not None):
        branch = bank.branch()
        for fact in key:
            branch.apply("ADD", text=fact, at=at)
        views[key] = answerer.views(asked, branch)
    f1 = mean_f1(views, questions, answerer)
    score = {key: f1[key] * (1 - LENGTH_WEIGHT * length_penalty(sum(len(f) for f in key), reference_chars))
             for key in views}
    return [score[k] if k is not None else 0.0 for k in keys]
