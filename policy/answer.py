"""Answer Agent (Memory-R1): retrieve memories as of the question's time (10 by default; the
paper's 60 with k=60), keep the
relevant ones ("distillation", by number, grammar-constrained to the ones shown), answer briefly."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from memstore import MemoryStore
from memstore.vector_view import Hit

from . import prompts
from .runtime import LLM


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A list item: a written date ("19 January, 2023", "May, 2023") is one item despite its comma.
_ITEM = re.compile(r"\s*((?:\d{1,2} )?[A-Z][a-z]+, \d{4}|[^,]+)\s*(?:,|$)")


def distinct(answer: str) -> str:
    """The answer without what a greedy loop repeated: "Paris, Rome, Paris, Paris, Pa" is "Paris,
    Rome". Sentences, then list items, said before are dropped; an answer that reached the
    grammar's bound (`prompts.ANSWER_MAX_CHARS`) also loses the cut-off start of one more repeat
    at its end. An answer with no repeat is returned as it is."""
    text = answer.strip()
    cut = len(text) >= prompts.ANSWER_MAX_CHARS
    key = lambda part: part.casefold().rstrip(".,;")  # noqa: E731
    for split, glue in ((_SENTENCE_END.split, " "), (_ITEM.findall, ", ")):
        parts = [p.strip() for p in split(text) if p.strip()]
        keys = [key(p) for p in parts]
        kept = [p for i, p in enumerate(parts) if keys[i] not in keys[:i]]
        while cut and len(kept) > 1 and any(k != key(kept[-1]) and k.startswith(key(kept[-1])) for k in keys[:-1]):
            kept.pop()
        if len(kept) < len(parts):
            text = glue.join(kept)
    return text


@dataclass(frozen=True)
class Ask:
    """A question ready for the model: the memories retrieved for it, the day it is answered as
    of (`when`, written into the prompt) and the cutoff they were retrieved at (`as_of`)."""
    question: str
    hits: list[Hit]
    when: str
    as_of: object = None


@dataclass
class Answer:
    question: str
    answer: str
    kept: list[Hit]
    retrieved: list[Hit] = field(default_factory=list)
    as_of: str | None = None

    def to_dict(self, explain: bool = True) -> dict:
        out = {"question": self.question, "answer": self.answer, "as_of": self.as_of,
               "memories": [h.to_dict() for h in self.kept]}
        if explain:
            out["retrieved"] = len(self.retrieved)
        return out


class AnswerAgent:
    # Answering is bound by these prompt tokens. On all 81 conv-30 questions (same bank, same 0.5B
    # reader; bench/bench_throughput.py --sweep) 10 memories scored F1 +4.2 points over the paper's
    # 60 (paired 95% CI +1.0..+7.6) and equal to 20, with 420 prompt tokens a question instead of 1,805.
    DEFAULT_K = 10

    def __init__(self, llm: LLM, k: int = DEFAULT_K, recency_weight: float = 0.0):
        self.llm, self.k, self.recency_weight = llm, k, recency_weight

    def retrieve(self, store: MemoryStore, question: str, as_of=None) -> list[Hit]:
        """The k memories a question reads: the embedding's order with its tail filled by a word match, since a
        question names what it asks about (`memstore.lexical`)."""
        hits = store.search(question, k=self.k, as_of=as_of, hybrid=True)
        if self.recency_weight and hits:
            order = sorted(h.valid_at for h in hits)
            rank = {v: i / max(len(order) - 1, 1) for i, v in enumerate(order)}
            hits = sorted(hits, key=lambda h: h.score + self.recency_weight * rank[h.valid_at], reverse=True)
        return hits

    def ask(self, store: MemoryStore, question: str, as_of=None, asked_at: str | None = None) -> Ask:
        """What `answer_many` takes: the memories retrieved as of `as_of` and the day the question
        is answered as of. `store`: a MemoryStore, or anything with its `search` (a training fork)."""
        when = (asked_at or (as_of if isinstance(as_of, str) and not as_of.startswith("@") else "now"))[:10]
        return Ask(question, self.retrieve(store, question, as_of), when, as_of)

    def answer(self, store: MemoryStore, question: str, as_of=None, asked_at: str | None = None) -> Answer:
        return self.answer_many([self.ask(store, question, as_of, asked_at)])[0]

    @staticmethod
    def call(ask: Ask) -> prompts.ModelCall:
        """The model call for one ask: serving (`answer_many`) and training's rollouts make this one."""
        return prompts.answer_call(ask.question, ask.when, prompts.dated(ask.hits))

    def answer_many(self, asks: list[Ask]) -> list[Answer]:
        """The model's part for several asks: keep the relevant memories
        among `hits` and answer, as of day `when`. One batched greedy decode per number of
        memories shown (the grammar depends on it), so the generated tokens of several answers
        share each step's pass over the weights (policy/batched.py); same prompts, grammar and
        greedy pick as one call at a time, up to floating-point differences between batch
        shapes. The answer's repeats are dropped (`distinct`); no usable output is an empty answer."""
        out: list[Answer | None] = [None] * len(asks)
        by_n: dict[int, list[int]] = {}
        for i, ask in enumerate(asks):
            by_n.setdefault(len(ask.hits), []).append(i)
        for idx in by_n.values():
            calls = [self.call(asks[i]) for i in idx]
            one = calls[0]  # same system prompt, schema and budget for every call of one size
            for i, got in zip(idx, self.llm.json_many(one.system, [c.user for c in calls], one.schema,
                                                      max_tokens=one.max_tokens)):
                ask = asks[i]
                if got is None:
                    out[i] = Answer(ask.question, "", [], ask.hits, ask.as_of)
                    continue
                kept = [ask.hits[j - 1] for j in dict.fromkeys(got.get("relevant", [])) if 1 <= j <= len(ask.hits)]
                out[i] = Answer(ask.question, distinct(str(got.get("answer", ""))), kept, ask.hits, ask.as_of)
        return out
