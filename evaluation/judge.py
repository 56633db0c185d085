"""LLM-as-a-judge for free-form answers: CORRECT/WRONG with a one-sentence reason, generous on
paraphrase and on date formats (after the judge prompt of mem0's LoCoMo harness)."""

from __future__ import annotations

from dataclasses import dataclass

from policy.runtime import LLM, LLMError

JUDGE_SYSTEM = """You grade answers to questions about past conversations.
You get a question, the gold answer and a generated answer. Be generous: the generated answer is
CORRECT if it refers to the same thing as the gold answer, even if worded differently, longer or
shorter; a time period or date counts as correct if it means the same day, month or period as
the gold one, in any format ("May 7th" and "7 May 2023" match; "last Tuesday" resolved right
matches). It is WRONG if it names something else, is empty, or only says it does not know.
Reply with JSON: one short sentence of reason, then the label."""

JUDGE_SCHEMA = {"type": "object", "properties": {"reason": {"type": "string"},
                                                 "label": {"enum": ["CORRECT", "WRONG"]}},
                "required": ["reason", "label"]}


# Questions answered, or answers judged, together: a chunk is decoded in batches (policy/batched.py)
# and its results saved when it ends, so a killed run loses at most one chunk.
CHUNK = 16


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str


def judge(llm: LLM, question: str, gold: str, answer: str) -> Verdict:
    return judge_many(llm, [(question, gold, answer)])[0]


def judge_many(llm: LLM, items: list[tuple[str, str, str]]) -> list[Verdict]:
    """Verdicts for several (question, gold, answer): one greedy call each, decoded together where
    the runtime batches (a local model: policy/batched.py), one after another elsewhere."""
    out: list[Verdict | None] = [None if answer.strip() else Verdict(False, "empty answer") for _, _, answer in items]
    todo = [i for i, v in enumerate(out) if v is None]
    users = [f"Question: {items[i][0]}\nGold answer: {items[i][1]}\nGenerated answer: {items[i][2]}" for i in todo]
    if len(users) == 1:  # one call: its error says what went wrong
        try:
            got = [llm.json(JUDGE_SYSTEM, users[0], JUDGE_SCHEMA, max_tokens=96)]
        except LLMError as exc:
            got = [Verdict(False, f"judge failed: {exc}")]
    else:
        got = llm.json_many(JUDGE_SYSTEM, users, JUDGE_SCHEMA, max_tokens=96) if users else []
    for i, o in zip(todo, got):
        out[i] = o if isinstance(o, Verdict) else _verdict(o)
    return out


def _verdict(out: dict | None) -> Verdict:
    if out is None:
        return Verdict(False, "judge failed: no usable output (cut off or not JSON)")
    return Verdict(out.get("label") == "CORRECT", str(out.get("reason", "")).strip())
