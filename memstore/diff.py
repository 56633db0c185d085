"""Bank diff: how two banks of a file differ, as of a time.

Memories are compared by text (ids differ between banks; case and spacing are ignored): those
alive only in A, and only in B. Decisions are compared turn by turn over the recorded inputs the
two banks share (a counterfactual bank, or banks the harness built from the same conversation):
for each shared turn, the events each bank's manager appended because of it (op, outcome and
text), and where they differ, both sides with their reason and actor. Banks with no recorded input
in common are reported as unrelated: only their memories can be compared."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from .clock import parse_cutoff
from .errors import NotFound
from .records import Event

if TYPE_CHECKING:
    from .store import MemoryStore

_VERB = {"ADD": "added", "UPDATE": "updated", "DELETE": "deleted", "NOOP": "kept as is", "RESTORE": "restored",
         "ERASE": "erased"}


def _norm(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def _events_by_input(store: "MemoryStore", cutoff) -> dict[str, list[Event]]:
    by_input: dict[str, list[Event]] = defaultdict(list)
    for event in store.events():
        if (cutoff.time and event.valid_at > cutoff.time) or (cutoff.seq and event.seq > cutoff.seq):
            continue
        for input_id in event.source:
            by_input[input_id].append(event)
    return by_input


def _signature(events: list[Event]) -> list[tuple]:
    return [(e.op, e.outcome, _norm(e.text)) for e in events]


def _describe(events: list[Event]) -> str:
    if not events:
        return "no decision"
    return ", ".join(_VERB[e.op] + (" (refused)" if e.outcome != "applied" else "") for e in events)


def _side(event: Event) -> dict[str, Any]:
    return {"seq": event.seq, "op": event.op, "outcome": event.outcome, "memory_id": event.memory_id,
            "text": event.text if event.text is not None else event.prev_text, "reason": event.reason,
            "actor": event.actor}


def diff(a: "MemoryStore", bank_b: str, as_of: Any = None) -> dict[str, Any]:
    cutoff = parse_cutoff(as_of)
    known = a.banks()
    for name in (a.bank, bank_b):
        if name not in known:  # a misspelled bank would otherwise compare as an empty one
            raise NotFound(f"no bank {name!r} in {a.path} (banks: {', '.join(known) or 'none yet'})")
    b = a.with_bank(bank_b)
    try:
        mem_a, mem_b = a.replay(as_of), b.replay(as_of)
        texts_a, texts_b = {_norm(m.text) for m in mem_a}, {_norm(m.text) for m in mem_b}
        only_a = [m.to_dict() for m in mem_a if _norm(m.text) not in texts_b]
        only_b = [m.to_dict() for m in mem_b if _norm(m.text) not in texts_a]
        inputs_b = {i.input_id for i in b.inputs()}
        shared = [i for i in a.inputs() if i.input_id in inputs_b
                  and (cutoff.time is None or i.time <= cutoff.time)]
        by_a, by_b = _events_by_input(a, cutoff), _events_by_input(b, cutoff)
    finally:
        b.close()
    decisions, kinds = [], defaultdict(int)
    for inp in shared:
        ev_a, ev_b = by_a.get(inp.input_id, []), by_b.get(inp.input_id, [])
        if _signature(ev_a) == _signature(ev_b):
            continue
        same_ops = [e.op for e in ev_a] == [e.op for e in ev_b]
        kind = "same ops, other text" if same_ops else f"A {_describe(ev_a)} / B {_describe(ev_b)}"
        kinds[kind] += 1
        decisions.append({"input": {"input_id": inp.input_id, "speaker": inp.speaker, "text": inp.text,
                                    "time": inp.time}, "kind": kind,
                          "a": [_side(e) for e in ev_a], "b": [_side(e) for e in ev_b]})
    counts = {"only in A": len(only_a), "only in B": len(only_b), "shared turns": len(shared),
              "turns decided differently": len(decisions)}
    return {"bank_a": a.bank, "bank_b": bank_b, "as_of": cutoff.describe(), "related": bool(shared),
            "counts": counts, "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
            "only_in_a": only_a, "only_in_b": only_b, "decisions": decisions}
