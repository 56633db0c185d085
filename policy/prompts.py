"""Prompts of the Memory Manager and the Answer Agent, versioned: the version goes into every
event's actor and into the fact-extraction cache key. Static text comes first in every prompt so
llama.cpp reuses the evaluated prefix (KV cache) from one call to the next."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


PROMPT_VERSION = "v3"         # decision prompt served (v3: memories without their dates; see DECIDE_VERSIONS)
EXTRACT_VERSION = "x3"        # extraction prompt, part of the fact-cache key
ANSWER_PROMPT_VERSION = "a2"  # answer prompt: dates written the way people (and LoCoMo's gold) write them

EXTRACT_SYSTEM = """You keep a long-term memory about the people in a conversation.
Read the new message; the earlier messages are there only to understand it. Extract the durable
facts that the new message's speaker states about themselves or the people they mention: events,
plans, preferences, relationships, possessions, places, jobs, hobbies, opinions.
- One short standalone sentence per fact that starts with the person's name (never I, you, he,
  she, we, they) and keeps concrete details (names, numbers, places).
- Replace "it", "that", "this", "there" with what they refer to in the earlier messages.
- Write when it happened as a date computed from the message date ("last week" in a message of
  8 May, 2023 -> "in the week before 8 May, 2023").
- Only what the new message says: nothing from the earlier messages alone, no guesses.
- Greetings, thanks, praise, encouragement, questions and small talk are not facts.
Reply with JSON: {"facts": [...]} (an empty list when there is nothing worth remembering).

Example:
Date: 8 May, 2023
Earlier messages (context only):
Evan: I started lifting weights last month, it's been great.
New message, from Sam: That's awesome! I've been thinking about getting into it too. I just bought my first pair of dumbbells yesterday.
{"facts": ["Sam is thinking about starting to lift weights.", "Sam bought his first pair of dumbbells on 7 May, 2023."]}

Example:
Date: 8 May, 2023
Earlier messages (context only):
Evan: I bought my first pair of dumbbells yesterday.
New message, from Sam: Wow, good for you! Keep it up!
{"facts": []}"""

DECIDE_SYSTEM = """You manage a memory bank. Given a new fact and the existing memories most related to it,
choose exactly one operation:
- ADD: the fact is new information (a different topic from every memory shown).
- UPDATE: the fact changes or adds detail to a memory about the SAME topic (same person AND same
  thing: where they live, the same pet, their diet, the same job...); "target" is that memory's
  number and "text" one sentence with the up-to-date information.
- DELETE: the fact says a memory is no longer true and there is nothing to replace it with;
  "target" is that memory's number.
- NOOP: the fact is already stated by a memory.
Memories about a different topic of the same person must be left alone: ADD instead.

Examples:
Existing memories:
1. John lives in Paris
New fact: John has a cat named Tom
{"op": "ADD"}

Existing memories:
1. John lives in Paris
2. John has a cat named Tom
New fact: John moved to Berlin
{"op": "UPDATE", "target": 1, "text": "John lives in Berlin (moved from Paris)"}

Existing memories:
1. John has a cat named Tom
New fact: John's cat Tom died
{"op": "DELETE", "target": 1}

Existing memories:
1. John lives in Berlin
New fact: John lives in Berlin
{"op": "NOOP"}
"""

ANSWER_SYSTEM = """You answer questions about people from your memories of past conversations.
First list the numbers of the memories relevant to the question, then answer in a few words
(a name, a date, a place, a short phrase), using the dates of the memories to resolve
relative times like "last year". Write dates like "19 January, 2023" or "May, 2023".
If the memories do not say, give your best short guess.
Reply with JSON: {"relevant": [numbers], "answer": "..."}."""


# The earlier messages of the same session an extraction reads (the window), and how much of each:
# enough to resolve "it" or "there", bounded so that a long message before does not crowd out the
# one being read. memstore's erase drops the cached facts of the turns whose window held an erased
# input; its bound (memstore.store.FACT_WINDOW) must cover this one.
EXTRACT_WINDOW = 2
CONTEXT_CHARS = 300


def extract_user(speaker: str, text: str, when: str, context: Sequence[tuple[str, str]] = ()) -> str:
    """`context`: (speaker, text) of the earlier messages of the session, oldest first."""
    earlier = [f"{who}: {said if len(said) <= CONTEXT_CHARS else said[:CONTEXT_CHARS] + '...'}"
               for who, said in list(context)[-EXTRACT_WINDOW:]]
    return (f"Date: {spoken_date(when)}\nEarlier messages (context only):\n" + ("\n".join(earlier) or "(none)")
            + f"\nNew message, from {speaker}: {text}")


# Decision prompt versions. v2 showed every memory and the new fact with its date: ~12 of
# Qwen's tokens per date (one a digit), 45% of a decision's prompt, which is what a decision
# costs on a CPU, while the choice is about topics: the new fact is always the newer.
# v3 shows texts only, and every manager is served with it, whichever it was trained on: the
# shipped manager adapter, trained on v2, chose the same op and target under v3 on 165 of 189
# decisions of a learned conv-41 bank (most of the 24 others: an UPDATE of small talk became an
# ADD, which keeps the older memory), with 0.58x the prompt tokens (docs/results/throughput.md).
DECIDE_VERSIONS = ("v2", "v3")  # what a manager adapter may have been trained on (policy.agent.check_contract)


def decide_user(fact: str, memories: Sequence[str]) -> str:
    """`memories`: the text of each related memory shown, numbered from 1."""
    lines = [f"{i}. {text}" for i, text in enumerate(memories, 1)] or ["(none)"]
    return "Existing memories:\n" + "\n".join(lines) + f"\n\nNew fact: {fact}"


def spoken_date(day: str) -> str:
    """'2023-01-19' -> '19 January, 2023': a small model copies the format of the dates it is shown."""
    try:
        d = date.fromisoformat(day[:10])
    except ValueError:
        return day
    return f"{d.day} {d.strftime('%B')}, {d.year}"


def answer_user(question: str, when: str, memories: list[tuple[str, str]]) -> str:
    lines = [f"{i}. [{spoken_date(day)}] {text}" for i, (text, day) in enumerate(memories, 1)] or ["(no memories)"]
    return "Memories:\n" + "\n".join(lines) + f"\n\nQuestion (asked {spoken_date(when)}): {question}"


# Output budgets of the serving calls; training samples with the same ones. An answer is at most
# ANSWER_MAX_CHARS characters, a bound in the grammar: greedy decoding of the 0.5B sometimes loops
# ("Paris, Rome, Paris, Paris, ...") until the token budget cuts the output off, and a cut-off
# output has no answer at all. The bound closes the string in time (LoCoMo's longest gold answer
# in the training conversation is 100 characters); the repeats are then dropped by
# `policy.answer.distinct`. The token budget leaves room for the bounded answer (digits are one
# token each) and eight relevant numbers.
ANSWER_MAX_CHARS = 100
ANSWER_MAX_TOKENS = 128
DECIDE_MAX_TOKENS = 120

# The opening of an output. Training samples freely, so its prompts end with one (without it, a
# 0.5B model at temperature 1 mostly writes prose: reward 0); it must be how the served grammar
# starts, whose properties come in key order (the runtime builds it from the schema's JSON with
# sorted keys): "answer" before "relevant", "op" before "target" and "text". Serving evaluates the
# decision's with the prompt instead of generating it: on 30 conv-30 decisions the same
# 30 outputs as generating it, 4 tokens fewer each. Not extraction's: its free text is sensitive to
# where the prompt's tokens end (even with '{"facts":' 9 of 32 outputs changed), nor the answer's
# (only '{"' and a fixed key are known before the free text; not measured).
ANSWER_PREFIX = '{"answer": "'
DECIDE_PREFIX = '{"op": "'


def extract_schema(max_facts: int = 4) -> dict:
    return {"type": "object", "properties": {
        "facts": {"type": "array", "items": {"type": "string"}, "maxItems": max_facts}},
        "required": ["facts"]}


def decide_schema(n_candidates: int) -> dict:
    """Only ADD and NOOP without candidates; UPDATE/DELETE may name only candidates 1..n."""
    options = [
        {"type": "object", "properties": {"op": {"const": "ADD"}}, "required": ["op"]},  # the fact itself is added
        {"type": "object", "properties": {"op": {"const": "NOOP"}}, "required": ["op"]},
    ]
    if n_candidates:
        targets = {"enum": list(range(1, n_candidates + 1))}
        options += [
            {"type": "object", "properties": {"op": {"const": "UPDATE"}, "target": targets, "text": {"type": "string"}},
             "required": ["op", "target", "text"]},
            {"type": "object", "properties": {"op": {"const": "DELETE"}, "target": targets}, "required": ["op", "target"]},
        ]
    return {"oneOf": options}


def answer_schema(n_memories: int) -> dict:
    relevant = {"type": "array", "maxItems": 8,
                "items": {"enum": list(range(1, n_memories + 1))} if n_memories else {"type": "integer"}}
    return {"type": "object", "properties": {"answer": {"type": "string", "maxLength": ANSWER_MAX_CHARS}, "relevant": relevant},  # as served: key order
            "required": ["answer", "relevant"]}


def dated(hits) -> list[tuple[str, str]]:
    """Retrieved memories as the prompts show them: (text, day observed)."""
    return [(h.text, h.valid_at[:10]) for h in hits]


@dataclass(frozen=True)
class ModelCall:
    """One model call as serving makes it and training samples it: prompts, output schema, token
    budget and the output's known opening (training always starts from it; serving evaluates it
    as prompt for decisions only, see DECIDE_PREFIX)."""
    system: str
    user: str
    schema: dict
    max_tokens: int
    prefix: str


EXTRACT_MAX_TOKENS = 160
EXTRACT_PREFIX = '{"facts": ['


def extract_version(context: Sequence[tuple[str, str]]) -> str:
    """The fact cache's prompt version of an extraction: the prompt's version and what its window
    held (the same turn read after other messages may give other facts)."""
    if not context:
        return EXTRACT_VERSION
    return EXTRACT_VERSION + ":" + hashlib.sha256(json.dumps(list(context)).encode()).hexdigest()[:16]


def extract_call(speaker: str, text: str, when: str, context: Sequence[tuple[str, str]] = ()) -> ModelCall:
    """The extraction's call for one message said on day `when` after `context` (the earlier
    messages of its session): one place for serving (ManagerPolicy.facts), training and `bench facts`."""
    return ModelCall(EXTRACT_SYSTEM, extract_user(speaker, text, when, context), extract_schema(),
                     EXTRACT_MAX_TOKENS, EXTRACT_PREFIX)


def answer_call(question: str, when: str, memories: list[tuple[str, str]]) -> ModelCall:
    """The Answer Agent's call for `question` asked on day `when` over (text, day) memories: one
    place for serving (AnswerAgent) and training's rollouts."""
    return ModelCall(ANSWER_SYSTEM, answer_user(question, when, memories), answer_schema(len(memories)),
                     ANSWER_MAX_TOKENS, ANSWER_PREFIX)
