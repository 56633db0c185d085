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


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str


def judge(llm: LLM, question: str, gold: str, answer: str) -> Verdict:
    if not answer.strip():
        return Verdict(False, "empty answer")
    user = f"Question: {question}\nGold answer: {gold}\nGenerated answer: {answer}"
    try:
        out = llm.json(JUDGE_SYSTEM, user, JUDGE_SCHEMA, max_tokens=96)
    except LLMError as exc:
        return Verdict(False, f"judge failed: {exc}")
    return Verdict(out.get("label") == "CORRECT", str(out.get("reason", "")).strip())
