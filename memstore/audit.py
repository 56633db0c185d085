"""Audit: a memory's history, why it is in its state, and the integrity of the log."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

from .args import memory_id_arg
from .chain import GENESIS, content_digest, event_hash, input_hash
from .errors import BadInput, NotFound
from .integrity import check_projection
from .records import Event
from .schema import EVENT_CONTENT, INPUT_CONTENT

if TYPE_CHECKING:
    from .store import MemoryStore

def history(store: "MemoryStore", memory_id: str) -> list[Event]:
    """Every event naming the memory, in log order: versions, NOOPs and refused decisions."""
    memory_id_arg(memory_id)
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
    if not state:
        raise NotFound(f"memory {memory_id!r} in bank {store.bank!r} was never changed: its only events are "
                       f"refused or NOOP decisions (see `history`)")
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


def head(store: "MemoryStore", bank: str | None = None) -> dict[str, Any]:
    """The bank's newest event, (seq, hash): keep it elsewhere and `verify --anchor SEQ:HASH`
    later proves the log up to it was neither truncated nor rewritten. `bank`: another bank of
    the same database (default: the store's)."""
    bank = bank or store.bank
    row = store.conn.execute("SELECT seq, hash FROM events WHERE bank = ? ORDER BY seq DESC LIMIT 1",
                             (bank,)).fetchone()
    return {"bank": bank, "seq": row[0] if row else 0, "hash": row[1] if row else GENESIS,
            "anchor": f"{row[0]}:{row[1]}" if row else f"0:{GENESIS}", "keyed": store.keyed}


def parse_anchor(anchor: str) -> tuple[int, str]:
    if not isinstance(anchor, str):
        raise BadInput(f"bad anchor {anchor!r:.60}: expected SEQ:HASH as printed by `memstore head`")
    seq, _, digest = anchor.strip().partition(":")
    if not seq.isascii() or not seq.isdigit() or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise BadInput(f"bad anchor {anchor!r}: expected SEQ:HASH as printed by `memstore head`")
    return int(seq), digest


def verify(store: "MemoryStore", *, all_banks: bool = False, deep: bool = False,
           anchors: Sequence[str] = ()) -> dict[str, Any]:
    """Walk each bank's two hash chains and name the first break. Checks the protection triggers
    are in place; every input's link, hash and (unless erased) salted digest, and that a purged
    input is named by an ERASE tombstone; every event's hash and link (HMACs with the file's key
    when it is keyed), the input chain head it is bound to, its content digest (unless erased),
    that erased events carry no text and have a tombstone; that the projection equals the fold of
    the log (`deep`: its index of intervals too, the R*Tree on SQLite); and each anchor SEQ:HASH: the event at SEQ is in a checked
    bank with that hash, so nothing up to it, events or the inputs before them, was cut or
    rewritten. An anchor that names no checked event fails."""
    wanted = [parse_anchor(a) for a in anchors]
    if store.keyed and store.key is None:
        return {"ok": False, "bank": store.bank, "first_broken_seq": None, "checked": 0,
                "problem": "the chain is keyed (HMAC): set MEMSTORE_KEY or MEMSTORE_KEY_FILE to verify it"}
    key = store.key if store.keyed else None
    banks = store.banks() if all_banks else [store.bank]
    checked, inputs_checked = 0, 0
    anchored = {seq for seq, _ in wanted}
    hashes: dict[int, str] = {}  # of the anchored events only: a whole bank's would be O(log) memory

    def broken(bank, seq, problem, **extra):
        return {"ok": False, "bank": bank, "first_broken_seq": seq, "problem": problem, "checked": checked, **extra}

    for bank in banks:
        erased_memories = {r[0] for r in store.conn.execute(
            "SELECT memory_id FROM events WHERE bank = ? AND op = 'ERASE'", (bank,))}
        tombstoned = {s for (src,) in store.conn.execute(
            "SELECT source FROM events WHERE bank = ? AND op = 'ERASE'", (bank,)) for s in _sources(src)}
        input_at: dict[str, int] = {GENESIS: 0}  # input chain hash -> its position in the chain
        tail = GENESIS
        for row in store.conn.execute("SELECT * FROM inputs WHERE bank = ? ORDER BY seq", (bank,)):
            inputs_checked += 1
            row = dict(row)
            problem = None
            if row["hash"] is None:
                problem = "input is outside the input chain (open the file once with write access to chain it)"
            elif row["prev_hash"] != tail:
                problem = "input's link to the previous input is broken (an input was removed, moved or reordered)"
            elif input_hash(tail, row, key) != row["hash"]:
                problem = "input's hash does not match it" + (" (or was made without the key)" if key else "")
            elif row["erased"]:
                if row["input_id"] not in tombstoned or any(row[c] is not None for c in INPUT_CONTENT + ("salt",)):
                    problem = "input was purged without an erase tombstone naming it"
            elif content_digest((row[c] for c in INPUT_CONTENT), key, row["salt"]) != row["content_digest"]:
                problem = "input content does not match its digest"
            if problem:
                return broken(bank, None, problem, broken_input=row["input_id"])
            input_at[row["hash"]] = inputs_checked
            tail = row["hash"]
        tail, bound = GENESIS, 0
        for row in store.conn.execute("SELECT * FROM events WHERE bank = ? ORDER BY seq", (bank,)):
            checked += 1
            row = dict(row)
            problem = None
            source = _sources(row["source"])
            if row["prev_hash"] != tail:
                problem = "link to the previous event is broken (an event was removed, reordered or altered)"
            elif row["erased"] not in (0, 1):
                problem = "erased flag is corrupt"
            elif row["erased"]:
                if any(row[c] is not None for c in EVENT_CONTENT + ("salt",)):
                    problem = "erased event still carries text"
                elif row["memory_id"] not in erased_memories:
                    problem = "event was purged without an erase tombstone"
            elif content_digest((row[c] for c in EVENT_CONTENT), salt=row["salt"]) != row["content_digest"]:
                problem = "content does not match its digest"
            if problem is None and row["inputs_head"] is not None:
                if row["inputs_head"] not in input_at or input_at[row["inputs_head"]] < bound:
                    problem = "the input chain it was bound to is not in the log (an input was removed or rewritten)"
                else:
                    bound = input_at[row["inputs_head"]]
            if problem is None:
                if source is None or event_hash(tail, row, key) != row["hash"]:
                    problem = "hash does not match the event" + (" (or was made without the key)" if key else "")
            if problem:
                return broken(bank, row["seq"], problem)
            if row["seq"] in anchored:
                hashes[row["seq"]] = row["hash"]
            tail = row["hash"]
        projection = check_projection(store.engine, bank, deep=deep)
        if projection:
            return broken(bank, projection["first_broken_seq"], projection["problem"])
    for seq, digest in wanted:
        if hashes.get(seq) != digest:
            what = ("has another hash (history was rewritten)" if seq in hashes else
                    "is not in the checked " + ("banks" if all_banks else f"bank {store.bank!r}")
                    + " (the log was truncated, or the anchor is another bank's)")
            return broken(store.bank, seq, f"anchor {seq}: the event {what}")
    if all_banks:
        strays = {r[0] for r in store.conn.execute("SELECT DISTINCT bank FROM versions")} - set(banks)
        if strays:
            return broken(sorted(strays)[0], None, "projection: versions of a bank that has no events")
    # last: a break in the data above names what was done; a missing trigger only that it could be
    present = store.engine.trigger_names()
    missing = [t for t in store.engine.protection_triggers if t not in present]
    if missing:
        return broken(store.bank, None, f"protection trigger {missing[0]} is missing: the file was altered outside "
                                        f"memstore (`memstore repair` puts the triggers back)")
    return {"ok": True, "banks": banks, "checked": checked, "inputs_checked": inputs_checked,
            "first_broken_seq": None, "keyed": bool(key), "deep": deep, "anchors": len(wanted)}


def _sources(value: Any) -> list[str] | None:
    """An event's `source` column as the list it must be, or None when it is not one."""
    try:
        source = json.loads(value)
    except (TypeError, ValueError):
        return None
    return source if isinstance(source, list) and all(isinstance(s, str) for s in source) else None
