"""The projection checked against the log, and rebuilt from it.

`versions` (and its R*Tree and the `banks` lookup) are derived: the triggers of schema.py keep
them in step with every insert, and refuse any other write. Triggers can be dropped by whoever
holds the file, so `verify` also proves the derived rows equal the fold of the events (what the
log says each version is and when it ended) and names the first difference; `verify --deep` also
checks the engine's index of the intervals too (every R*Tree box on SQLite); `repair` rebuilds all
of it from the log."""

from __future__ import annotations

from typing import Any

from .errors import StoreUnavailable
from .schema import LIVE_OPS, _EPOCH, ddl_statements

COLUMNS = ("event_seq", "memory_id", "start_valid", "end_valid", "end_seq", "op", "text", "actor", "reason")


def fold_versions(conn, bank: str) -> list[tuple]:
    """The `versions` rows the log of `bank` implies, in event order: each applied ADD / UPDATE /
    RESTORE that was not erased, ended by the memory's next state-changing event."""
    rows: dict[int, list] = {}
    open_by_memory: dict[str, int] = {}
    for seq, memory_id, op, text, valid_at, actor, reason, erased in conn.execute(
            "SELECT seq, memory_id, op, text, valid_at, actor, reason, erased FROM events "
            "WHERE bank = ? AND outcome = 'applied' AND op <> 'NOOP' ORDER BY seq", (bank,)):
        previous = open_by_memory.pop(memory_id, None)
        if previous is not None and previous in rows:
            rows[previous][3], rows[previous][4] = valid_at, seq
        if op in LIVE_OPS:
            open_by_memory[memory_id] = seq
            if not erased:
                rows[seq] = [seq, memory_id, valid_at, None, None, op, text, actor, reason]
    return [tuple(r) for r in rows.values()]


def bulk_plan(bank: str, rows: list[dict], open_before: dict) -> tuple[list, list, list]:
    """What the per-event projection trigger would do to `versions` for a bulk block's events, at
    once: (known, unknown, opened). `known`: (seq, valid_at, open_seq, open_valid) for a memory
    whose version open before the block is known (`open_before`, as the store saw it when it
    checked the op); `unknown`: (seq, valid_at, bank, memory_id) for one that must be looked up;
    `opened`: the versions rows the block opens, each ended by the memory's next state event in it."""
    state = [r for r in rows if r["outcome"] == "applied" and r["op"] != "NOOP"]
    first: dict[str, dict] = {}
    nxt: dict[int, dict] = {}
    last: dict[str, dict] = {}
    for r in state:
        if r["memory_id"] in last:
            nxt[last[r["memory_id"]]["seq"]] = r
        else:
            first[r["memory_id"]] = r
        last[r["memory_id"]] = r
    known, unknown = [], []
    for m, r in first.items():
        if m in open_before:
            if open_before[m] is not None:
                known.append((r["seq"], r["valid_at"], *open_before[m]))
        elif r["op"] != "ADD":
            unknown.append((r["seq"], r["valid_at"], bank, m))
    opened = [(r["seq"], bank, r["memory_id"], r["valid_at"], nxt.get(r["seq"], {}).get("valid_at"),
               nxt.get(r["seq"], {}).get("seq"), r["op"], r["text"], r["actor"], r["reason"])
              for r in state if r["op"] in LIVE_OPS]
    return known, unknown, opened


INSERT_VERSIONS = ("INSERT INTO versions (event_seq, bank, memory_id, start_valid, end_valid, end_seq, op, text, actor, "
                   "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def close_known(conn, bank: str, known: list) -> None:
    """Close the versions a bulk block ends whose seq is known; all of them, or the projection is
    out of step with the log."""
    if not known:
        return
    closed = conn.executemany("UPDATE versions SET end_seq = ?, end_valid = ? WHERE event_seq = ? AND end_seq IS NULL",
                              [(seq, valid_at, open_seq) for seq, valid_at, open_seq, _ in known]).rowcount
    if closed != len(known):
        raise StoreUnavailable(f"the projection of bank {bank!r} is out of step with its log "
                               f"(run `memstore verify`, then `memstore repair`)")


def close_unknown(conn, unknown: list) -> None:
    """Close the versions a bulk block ends that had to be looked up by memory (bulk_plan's `unknown`)."""
    if unknown:
        conn.executemany("UPDATE versions SET end_seq = ?, end_valid = ? "
                         "WHERE bank = ? AND memory_id = ? AND end_seq IS NULL", unknown)


def refill_versions(conn, banks: list[str]) -> dict[str, int]:
    """Insert the fold of each bank's log into the (emptied) `versions` table; returns the number
    of versions per bank. Both engines' `repair` ends this way."""
    counts = {}
    for bank in banks:
        rows = [(*r, bank) for r in fold_versions(conn, bank)]
        if rows:
            conn.executemany(f"INSERT INTO versions ({', '.join(COLUMNS)}, bank) VALUES ({', '.join('?' * 10)})", rows)
        counts[bank] = len(rows)
    return counts


def check_projection(engine, bank: str, *, deep: bool = False) -> dict[str, Any] | None:
    """None if the derived rows of `bank` equal the fold of its log, else the first difference."""
    conn = engine.conn
    expected = fold_versions(conn, bank)
    actual = [tuple(r) for r in conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM versions WHERE bank = ? ORDER BY event_seq", (bank,))]
    for want, got in zip(expected, actual):
        if want != got:
            if want[0] != got[0]:
                seq = min(want[0], got[0])
                what = "is missing" if seq == want[0] else "should not exist"
                return {"first_broken_seq": seq, "problem": f"projection: the version of event {seq} {what}"}
            column = next(c for c, w, g in zip(COLUMNS, want, got) if w != g)
            return {"first_broken_seq": want[0],
                    "problem": f"projection: the version of event {want[0]} has another {column} than the log says"}
    if len(expected) != len(actual):
        seq = (expected if len(expected) > len(actual) else actual)[min(len(expected), len(actual))][0]
        what = "is missing" if len(expected) > len(actual) else "should not exist"
        return {"first_broken_seq": seq, "problem": f"projection: the version of event {seq} {what}"}
    return engine.check_index(bank) if deep else None


def check_rtree(conn, bank: str) -> dict[str, Any] | None:
    """SQLite: every closed version has its R*Tree box, covering its interval, and no other box exists."""
    if (conn.execute("SELECT 1 FROM versions WHERE bank = ? LIMIT 1", (bank,)).fetchone()
            and conn.execute("SELECT 1 FROM banks WHERE name = ?", (bank,)).fetchone() is None):
        return {"first_broken_seq": None, "problem": "projection: the bank is missing from the banks table"}
    bad = conn.execute(f"""
        SELECT v.event_seq FROM versions v JOIN banks b ON b.name = v.bank
        LEFT JOIN versions_rtree r ON r.id = v.event_seq
        WHERE v.bank = :bank AND v.end_seq IS NOT NULL AND (r.id IS NULL
           OR r.seq_lo > v.event_seq OR r.seq_hi < v.end_seq OR r.bank_lo > b.id OR r.bank_hi < b.id
           OR r.t_lo > {_EPOCH.format("v.start_valid")} OR r.t_hi < {_EPOCH.format("v.end_valid")})
        UNION ALL
        SELECT r.id FROM versions_rtree r JOIN banks b ON r.bank_lo <= b.id AND r.bank_hi >= b.id
        LEFT JOIN versions v ON v.event_seq = r.id
        WHERE b.name = :bank AND (v.event_seq IS NULL OR v.end_seq IS NULL OR v.bank <> :bank)
        ORDER BY 1 LIMIT 1""", {"bank": bank}).fetchone()
    if bad:
        return {"first_broken_seq": bad[0], "problem": f"projection: the R*Tree box of the version of event {bad[0]} "
                                                       f"is missing, extra or does not cover its interval"}
    return None


def repair(conn) -> dict[str, int]:
    """SQLite: rebuild `banks`, `versions` and the R*Tree of every bank from the log, and put back any
    protection trigger that was dropped, in the caller's transaction; returns the number of
    versions per bank."""
    banks = [r[0] for r in conn.execute("SELECT DISTINCT bank FROM events ORDER BY bank")]
    for statement in ddl_statements():  # every table, index and trigger that is missing, put back
        conn.execute(statement)
    conn.execute("INSERT INTO projection_guard VALUES ('repair')")
    conn.execute("DELETE FROM versions_rtree")
    conn.execute("DELETE FROM versions")
    conn.execute("DELETE FROM banks")
    conn.executemany("INSERT INTO banks (name) VALUES (?)", [(bank,) for bank in banks])
    counts = refill_versions(conn, banks)
    conn.execute(f"""INSERT INTO versions_rtree
        SELECT v.event_seq, v.event_seq, v.end_seq, {_EPOCH.format("v.start_valid")}, {_EPOCH.format("v.end_valid")},
               b.id, b.id
        FROM versions v JOIN banks b ON b.name = v.bank WHERE v.end_seq IS NOT NULL""")
    conn.execute("DELETE FROM projection_guard")
    return counts
