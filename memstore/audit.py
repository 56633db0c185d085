"""Audit: a memory's history, why it is in its state, and the integrity of the log."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .chain import GENESIS, content_digest, event_hash
from .errors import NotFound
from .records import Event
from .schema import EVENT_CONTENT, INPUT_CONTENT

if TYPE_CHECKING:
    from .store import MemoryStore

def history(store: "MemoryStore", memory_id: str) -> list[Event]:
    """Every event naming the memory, in log order: versions, NOOPs and refused decisions."""
    rows = store.conn.execute("SELECT * FROM events WHERE bank = ? AND memory_id = ? ORDER BY seq",
                              (store.bank, memory_id)).fetchall()
    if not rows or not memory_id:
        raise NotFound(f"no memory {memory_id!r} in bank {store.bank!r}")
    return [Event.from_row(r) for r in rows]


def _event_by_id(store: "MemoryStore", event_id: str) -> Event | None:
    row = store.conn.execute("SELECT * FROM events WHERE bank = ? AND event_id = ?",
                             (store.bank, event_id)).fetchone()
    return Event.from_row(row) if row else None


def _step(store: "MemoryStore", event: Event) -> dict[str, Any]:
    return {"event": event.to_dict(), "sources": [i.to_dict() for i in store.inputs(event.source)]}


def why(store: "MemoryStore", memory_id: str) -> dict[str, Any]:
    """Explain the memory's current state: the event that put it there (who, when, why), then
    its cause, followed back event by event (a restore points at its deletion, a policy's
    decision at the fact and turns behind it), each with the source turns it came from."""
    events = history(store, memory_id)
    state = [e for e in events if e.outcome == "applied" and e.op != "NOOP"]
    last = state[-1]
    status = {"DELETE": "deleted", "ERASE": "erased"}.get(last.op, "live")
    chain, seen, event = [], set(), last
    while event is not None and event.event_id not in seen and len(chain) < 32:
        seen.add(event.event_id)
        chain.append(_step(store, event))
        ref = (event.cause or {}).get("event_id")
        event = _event_by_id(store, ref) if ref else None
    previous = state[-2].to_dict() if len(state) > 1 else None
    return {
        "memory_id": memory_id, "bank": store.bank, "status": status,
        "event": last.to_dict(), "previous": previous, "chain": chain,
        "summary": _summary(last, status),
    }


def _summary(event: Event, status: str) -> str:
    cause = event.cause or {}
    because = event.reason or "no reason recorded"
    if cause.get("fact"):
        because += f"; triggered by the fact: {cause['fact']!r}"
    verb = {"ADD": "added", "UPDATE": "updated", "RESTORE": "restored", "DELETE": "deleted",
            "ERASE": "erased"}[event.op]
    return f"{verb} at {event.valid_at} (seq {event.seq}) by {event.actor}: {because}"


def verify(store: "MemoryStore", *, all_banks: bool = False) -> dict[str, Any]:
    """Walk each bank's hash chain and name the first broken seq. Checks every event's hash and
    link, its content digest (unless erased), that erased events carry no text and have a
    tombstone, and every non-erased input's digest."""
    banks = store.banks() if all_banks else [store.bank]
    checked, inputs_checked = 0, 0
    for bank in banks:
        tail = GENESIS
        erased_memories = {r[0] for r in store.conn.execute(
            "SELECT memory_id FROM events WHERE bank = ? AND op = 'ERASE'", (bank,))}
        for row in store.conn.execute("SELECT * FROM events WHERE bank = ? ORDER BY seq", (bank,)):
            checked += 1
            row = dict(row)
            problem = None
            if row["prev_hash"] != tail:
                problem = "link to the previous event is broken (an event was removed, reordered or altered)"
            elif row["erased"] not in (0, 1):
                problem = "erased flag is corrupt"
            elif row["erased"]:
                if any(row[c] is not None for c in EVENT_CONTENT):
                    problem = "erased event still carries text"
                elif row["memory_id"] not in erased_memories:
                    problem = "event was purged without an erase tombstone"
            elif content_digest(row[c] for c in EVENT_CONTENT) != row["content_digest"]:
                problem = "content does not match its digest"
            if problem is None:
                try:
                    json.loads(row["source"])
                    ok = event_hash(tail, row) == row["hash"]
                except (TypeError, ValueError):
                    ok = False
                if not ok:
                    problem = "hash does not match the event"
            if problem:
                return {"ok": False, "bank": bank, "first_broken_seq": row["seq"], "problem": problem,
                        "checked": checked}
            tail = row["hash"]
        for row in store.conn.execute("SELECT * FROM inputs WHERE bank = ? AND erased = 0 ORDER BY seq", (bank,)):
            inputs_checked += 1
            if content_digest(row[c] for c in INPUT_CONTENT) != row["content_digest"]:
                return {"ok": False, "bank": bank, "first_broken_seq": None, "broken_input": row["input_id"],
                        "problem": "input content does not match its digest", "checked": checked}
    return {"ok": True, "banks": banks, "checked": checked, "inputs_checked": inputs_checked,
            "first_broken_seq": None}
