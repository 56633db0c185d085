"""The bank as of a cutoff, computed in SQL.

The `versions` table (kept by triggers on the log, see schema.py) holds each memory version with
the interval in which it is alive; the bank as of T is the set of versions whose interval holds T,
i.e. for each memory its last state-changing event at or before T, dropped if that event was a
DELETE or ERASE. An R*Tree over the intervals finds them (float32 boxes, rounded outward), and the
exact text comparison on `versions` settles the boundaries. Cost grows with the answer, not the log."""

from __future__ import annotations

import sqlite3

from .clock import Cutoff
from .records import Memory
from .schema import _EPOCH

_SELECT = """
SELECT e.memory_id, e.text, e.valid_at, e.seq, e.op, e.actor, e.reason
FROM versions_rtree r
JOIN versions v ON v.event_seq = r.id
JOIN events e ON e.seq = v.event_seq
WHERE r.bank_lo <= :bank_id AND r.bank_hi >= :bank_id AND v.bank = :bank AND {where}
ORDER BY e.valid_at, e.seq"""

BY_TIME_SQL = _SELECT.format(where=f"""r.t_lo <= {_EPOCH.format(":time")} AND r.t_hi >= {_EPOCH.format(":time")}
  AND v.start_valid <= :time AND (v.end_valid IS NULL OR v.end_valid > :time)""")

BY_SEQ_SQL = _SELECT.format(where="""r.seq_lo <= :seq AND r.seq_hi >= :seq
  AND v.event_seq <= :seq AND (v.end_seq IS NULL OR v.end_seq > :seq)""")

NOW_SQL = """
SELECT e.memory_id, e.text, e.valid_at, e.seq, e.op, e.actor, e.reason
FROM versions v JOIN events e ON e.seq = v.event_seq
WHERE v.bank = :bank AND v.end_seq IS NULL
ORDER BY e.valid_at, e.seq"""


def project(conn: sqlite3.Connection, bank: str, cutoff: Cutoff) -> list[Memory]:
    row = conn.execute("SELECT id FROM banks WHERE name = ?", (bank,)).fetchone()
    if row is None:
        return []
    params = {"bank": bank, "bank_id": row[0], "time": cutoff.time, "seq": cutoff.seq}
    if cutoff.time is not None:
        rows = conn.execute(BY_TIME_SQL, params)
    elif cutoff.seq is not None:
        rows = conn.execute(BY_SEQ_SQL, params)
    else:
        rows = conn.execute(NOW_SQL, params)
    return [Memory.from_row(r) for r in rows]
