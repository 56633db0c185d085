"""A fork: a bank as of one moment, with ops applied in memory and the store never written.

Training asks "what if the manager had done X at this turn?" and "what would the Answer Agent
say from that bank?". A fork answers both through the same calls the serving agents
make on a `MemoryStore` - `search(query, k, as_of)`, `replay(as_of)`, `apply(...)`, `noop(...)`,
`last_seq()` - so training runs the serving decision and answer code over it, with no copy of the
retrieval rule. Memories the fork added or changed are embedded in memory with the store's model
(not through its embeddings cache, which would write the file)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .clock import to_stamp
from .errors import BadInput
from .lexical import hybrid_order
from .records import Event, Memory
from .vector_view import Hit

if TYPE_CHECKING:
    from .store import MemoryStore


class Fork:
    def __init__(self, store: "MemoryStore", as_of: Any):
        self.store, self.as_of = store, to_stamp(as_of)
        self.base = {m.id: m for m in store.replay(as_of=self.as_of)}
        self.changed: dict[str, Memory | None] = {}  # memory id -> the fork's version (None: deleted)
        self._vectors: dict[str, np.ndarray] = {}    # text -> vector, shared by branches
        self._ids = itertools.count(1)
        self.events: list[Event] = []               # what was applied, in order

    def branch(self) -> "Fork":
        """Another fork of the same moment with this one's changes, replaying nothing."""
        out = Fork.__new__(Fork)
        out.store, out.as_of, out.base = self.store, self.as_of, self.base
        out.changed, out._vectors = dict(self.changed), self._vectors
        out._ids, out.events = self._ids, []
        return out

    # ---- the read side the agents use ----------------------------------------------------------
    def alive(self) -> dict[str, Memory]:
        out = {i: m for i, m in self.base.items() if i not in self.changed}
        out.update({i: m for i, m in self.changed.items() if m is not None})
        return out

    def _check(self, as_of: Any) -> None:
        """A fork is one moment: reading it as of an earlier time would need what it changed undone."""
        if as_of is not None and (isinstance(as_of, str) and as_of.startswith("@") or to_stamp(as_of) < self.as_of):
            raise BadInput(f"a fork is the bank as of {self.as_of}: it cannot be read as of {as_of}")

    def replay(self, as_of: Any = None) -> list[Memory]:
        self._check(as_of)
        return sorted(self.alive().values(), key=lambda m: (m.valid_at, m.seq))

    def search(self, query: str, k: int = 10, as_of: Any = None, hybrid: bool = False) -> list[Hit]:
        """The store's hits as of the fork's moment, minus what the fork changed, merged with the
        fork's own versions scored the same way (cosine of normalised MiniLM vectors); with
        `hybrid`, every alive memory ranked as `MemoryStore.search` ranks them (`lexical`)."""
        self._check(as_of)
        if not isinstance(query, str) or not query.strip():
            raise BadInput("search needs a non-empty query")
        if not self.base and not self.changed:
            return []
        if hybrid:
            return self._hybrid(query, k)
        hits = [h for h in self.store.search(query, k=k + len(self.changed), as_of=self.as_of) if h.id not in self.changed]
        own = [m for m in self.changed.values() if m is not None]
        if own:
            q = self.store.vector_view().embedder.inner.embed([query])[0]
            scores = self._own_vectors([m.text for m in own]) @ q
            hits += [Hit(m.id, m.text, round(float(s), 6), m.valid_at, m.seq) for m, s in zip(own, scores)]
        return sorted(hits, key=lambda h: -h.score)[:k]

    def _own_vectors(self, texts: list[str]) -> np.ndarray:
        embedder = self.store.vector_view().embedder.inner
        new = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if new:
            self._vectors.update(zip(new, embedder.embed(new)))
        return np.stack([self._vectors[t] for t in texts])

    def _hybrid(self, query: str, k: int) -> list[Hit]:
        memories = list(self.alive().values())
        if not memories:
            return []
        view = self.store.vector_view()
        q = view.embedder.inner.embed([query])[0]
        base = [m for m in memories if m.id not in self.changed]
        own = [m for m in memories if m.id in self.changed]
        memories = base + own
        parts = ([view.vectors([m.seq for m in base])] if base else []) + \
                ([self._own_vectors([m.text for m in own])] if own else [])
        scores = np.concatenate(parts) @ q
        order = hybrid_order(query, [m.text for m in memories], scores, k)
        return [Hit(memories[i].id, memories[i].text, round(float(scores[i]), 6), memories[i].valid_at, memories[i].seq)
                for i in order]

    def last_seq(self) -> int:
        return len(self.base) + len(self.changed)  # > 0 while anything is in the bank: "worth searching"

    # ---- the write side, in memory ---------------------------------------------------------------
    def apply(self, op: str, memory_id: str = "", text: str | None = None, *, at: Any = None,
              reason: str | None = None, actor: str | None = None, source: Sequence[str] = (),
              cause: Any = None) -> Event:
        """Like `MemoryStore.apply`: a decision the bank cannot take (unknown or deleted id, no
        text) is a refused event, never an exception."""
        op, n = op.upper(), next(self._ids)
        valid_at = to_stamp(at) if at is not None else self.as_of
        alive = self.alive()
        outcome, prev = "applied", alive[memory_id].text if memory_id in alive else None
        if op == "ADD" and text:
            memory_id = f"fork-{n}"
        elif op in ("UPDATE", "DELETE") and memory_id in alive and (op == "DELETE" or text):
            pass
        elif op == "NOOP":
            text = None
        else:
            outcome, reason = "refused", f"{reason or ''} (refused: {op} {memory_id or '-'} is not possible in this bank)"
        if outcome == "applied" and op in ("ADD", "UPDATE"):
            self.changed[memory_id] = Memory(memory_id, text, valid_at, -n, op, actor or "fork", reason)
        elif outcome == "applied" and op == "DELETE":
            self.changed[memory_id] = None
        event = Event(seq=-n, event_id=f"fork:{n}", bank=self.store.bank, memory_id=memory_id, op=op, outcome=outcome,
                      text=text, prev_text=prev, valid_at=valid_at, recorded_at=valid_at, actor=actor or "fork",
                      reason=reason, source=list(source), cause=cause)
        self.events.append(event)
        return event

    def noop(self, memory_id: str = "", **kw) -> Event:
        return self.apply("NOOP", memory_id, **kw)
