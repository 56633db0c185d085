"""The Python API for agents: a store, a manager policy and an answer agent in one object.

    from policy import MemoryAgent
    agent = MemoryAgent("desk.db", bank="alice", policy="llm")
    agent.observe("alice", "We adopted a second dog, Bella!", "2023-06-12T10:00")
    agent.ask("How many dogs does Alice have?").answer
"""

from __future__ import annotations

import uuid

from memstore import MemoryStore

from .answer import Answer, AnswerAgent
from .ingest import ingest
from .manager import POLICIES
from .runtime import LLM, load
from .turns import Turn

from memstore.clock import to_stamp
from memstore.errors import BadInput


def make_policy(name: str, llm: LLM):
    if name not in POLICIES:
        raise BadInput(f"unknown policy {name!r}: choose from {', '.join(POLICIES)}")
    if name == "learned" and "+lora@" not in llm.identity:
        raise BadInput("policy 'learned' needs a trained adapter: pass --adapter PATH (trained adapters come with issue 6)")
    return POLICIES[name](llm)


class MemoryAgent:
    def __init__(self, path="memstore.db", bank: str = "default", *, policy: str = "llm", model: str | None = None,
                 adapter: str | None = None, endpoint: str | None = None, llm: LLM | None = None,
                 store: MemoryStore | None = None):
        self.store = store or MemoryStore(path, bank)
        self.llm = llm or load(model, adapter, endpoint)
        self.policy = make_policy(policy, self.llm)
        self.answerer = AnswerAgent(self.llm, recency_weight=0.05 if policy == "heuristic" else 0.0)

    def observe(self, speaker: str, text: str, time=None, *, message_id: str | None = None):
        """Record one message and let the manager turn it into memory ops; returns the events."""
        if not isinstance(text, str) or not text.strip():
            raise BadInput("observe needs a non-empty message")
        turn = Turn(message_id or uuid.uuid4().hex, speaker, text, to_stamp(time))
        before = self.store.last_seq()
        ingest(self.store, self.policy, [turn])
        return [e for e in self.store.events(before) if e.source == [turn.input_id]]

    def ask(self, question: str, as_of=None) -> Answer:
        return self.answerer.answer(self.store, question, as_of=as_of)

    def search(self, query: str, k: int = 10, as_of=None):
        return self.store.search(query, k=k, as_of=as_of)

    def close(self) -> None:
        self.store.close()
