"""The banks an integration serves from one database file: a store per bank, opened once, and a
memory agent per bank on one shared model, loaded on first use (only `add(infer=True)`, `observe`
and `ask` need it)."""

from __future__ import annotations

from typing import Any

from memstore.args import check_bank
from memstore.store import MemoryStore
from policy.agent import MemoryAgent
from policy.runtime import load


def event_fields(e) -> dict[str, Any]:
    """The fields of an event a client needs, without the chain's hashes."""
    return {"seq": e.seq, "op": e.op, "outcome": e.outcome, "memory_id": e.memory_id, "text": e.text,
            "prev_text": e.prev_text, "valid_at": e.valid_at, "actor": e.actor, "reason": e.reason,
            "erased": e.erased}


class Banks:
    def __init__(self, path: str, *, policy: str | None = None, model: str | None = None, endpoint: str | None = None,
                 llm: Any = None, timeout: float = 10.0):
        self.path, self.policy, self.model, self.endpoint = path, policy, model, endpoint
        self.llm, self.timeout = llm, timeout
        self._stores: dict[str, MemoryStore] = {}
        self._agents: dict[str, MemoryAgent] = {}

    def store(self, bank: str) -> MemoryStore:
        if bank not in self._stores:
            self._stores[bank] = MemoryStore(self.path, check_bank(bank), timeout=self.timeout)
        return self._stores[bank]

    def agent(self, bank: str) -> MemoryAgent:
        """The bank's memory manager and Answer Agent, on the one model (loaded on first use)."""
        if bank not in self._agents:
            if self.llm is None:
                self.llm = load(self.model, endpoint=self.endpoint)
            self._agents[bank] = MemoryAgent(store=self.store(bank), llm=self.llm, policy=self.policy)
        return self._agents[bank]

    def first(self) -> MemoryStore:
        """A store of the file, for what is not about one bank: the first opened, else 'default'."""
        return self.store(next(iter(self._stores), "default"))

    def close(self) -> None:
        self._agents.clear()  # an agent's store is one of ours
        for store in self._stores.values():
            store.close()
        self._stores.clear()
