"""Training examples built from a replayed history, in the serving prompt format (same system
prompt, same user message, same JSON output) so that what is trained is what llama.cpp serves.

- Answer Agent: one example per QA pair: the question + the memories retrieved from the bank
  replayed as of the question's time.
- Memory Manager: one example per (evidence turn, extracted fact) of the QA pairs: the fact + the
  related memories retrieved from the bank as of just *before* that turn (the temporal memory
  bank), with what the reward needs to fork that bank and ask the QA pairs that depend on it."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from memstore.clock import STAMP_FORMAT, format_stamp
from policy.answer import AnswerAgent
from policy import prompts
from policy.manager import LLMPolicy
from policy.turns import read_text, windows

from .history import History


def just_before(stamp: str) -> str:
    return format_stamp(datetime.strptime(stamp, STAMP_FORMAT) - timedelta(microseconds=1))



def messages(system: str, user: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def answer_examples(history: History, agent: AnswerAgent) -> list[dict]:
    """The serving `agent`'s retrieval and call for each question, as of when it is asked."""
    out = []
    for qa in history.questions:
        ask = agent.ask(history.store, qa.question, as_of=qa.asked_at, asked_at=qa.asked_at)
        call = agent.call(ask)
        out.append({"messages": messages(call.system, call.user), "schema": call.schema, "max_tokens": call.max_tokens,
                    "prefix": call.prefix, "gold": qa.answer, "category": qa.category, "n_memories": len(ask.hits)})
    return out


def _needs(history: History) -> dict[str, list[int]]:
    """Turn id -> the QA pairs whose evidence is that turn."""
    needs: dict[str, list[int]] = {}
    for i, qa in enumerate(history.questions):
        for dia in qa.evidence:
            needs.setdefault(history.evidence_input(dia), []).append(i)
    return needs


def _questions(history: History, qas: list[int]) -> str:
    return json.dumps([[history.questions[i].question, history.questions[i].answer,
                        history.questions[i].category, history.questions[i].asked_at] for i in qas])


def extract_examples(history: History, window: int, max_questions: int = 2, anchors: float = 0.0,
                     seed: int = 0) -> list[dict]:
    """Serving's extraction call for each turn some question's evidence cites; with `anchors`, also
    that share (of their number) of the other turns, drawn with `seed`, without questions: their
    reward is how much of the starting adapter's facts a sample keeps (rewards.extract_rewards)."""
    needs, context = _needs(history), windows(history.turns, window)
    cited, others = [], []
    for turn in history.turns:
        before = just_before(turn.time)
        qas = [i for i in needs.get(turn.input_id, []) if history.questions[i].asked_at > before][:max_questions]
        if not qas and not anchors:
            continue
        seen = context[turn.input_id]
        call = prompts.extract_call(turn.speaker, turn.text, turn.time[:10], seen)
        row = {"messages": messages(call.system, call.user), "schema": call.schema, "max_tokens": call.max_tokens,
               "prefix": call.prefix, "turn": turn.input_id, "speaker": turn.speaker,
               "names": json.dumps(sorted({w for w, _ in seen})), "said": read_text(turn.text, seen),
               "turn_time": before, "at": turn.time,
               "questions": _questions(history, qas),
               "reference_chars": sum(len(o) for o in history.observations.get(turn.input_id, []))}
        (cited if qas else others).append(row)
    picked = {r["turn"] for r in random.Random(seed).sample(others, min(len(others), round(len(cited) * anchors)))}
    return cited + [r for r in others if r["turn"] in picked]


def manager_examples(history: History, policy: LLMPolicy, max_questions: int = 2) -> list[dict]:
    """`policy` supplies fact extraction (cached in the history's store), the retrieval rule
    (k, similarity floor) and the decision prompt the serving manager uses."""
    store = history.store
    source_turn = {}  # memory id -> the turn it came from, for "this op removes a needed memory"
    for ev in store.events():
        if ev.source and ev.memory_id:
            source_turn.setdefault(ev.memory_id, ev.source[0])
    needs = _needs(history)
    out, seen = [], set()
    for turn in history.turns:
        if turn.input_id not in needs:
            continue
        before = just_before(turn.time)
        for fact in policy.facts(store, turn):
            if (turn.input_id, fact) in seen:
                continue
            seen.add((turn.input_id, fact))
            hits = [h for h in store.search(fact, k=policy.k, as_of=before) if h.score >= policy.min_score]
            if policy.shortcut(fact, hits):
                continue  # serving decides this one without the model: nothing for the model to learn
            qas = list(needs[turn.input_id])
            for h in hits:  # the QA pairs a candidate memory answers: an op on it must keep them right
                qas += needs.get(source_turn.get(h.id, ""), [])
            # an op at this turn cannot change an answer given before it (a user's as-of questions
            # may be asked mid-history, about a candidate's older turn)
            qas = [i for i in dict.fromkeys(qas) if history.questions[i].asked_at > before][:max_questions]
            if not qas:
                continue
            call = policy.decision_call(fact, hits)  # serving's own call
            out.append({"messages": messages(call.system, call.user), "schema": call.schema,
                        "max_tokens": call.max_tokens, "prefix": call.prefix,
                        "fact": fact, "turn_time": before, "day": turn.time[:10],
                        "candidate_ids": json.dumps([h.id for h in hits]),
                        "closest": hits[0].score if hits else 0.0,
                        "questions": _questions(history, qas)})
    return out
