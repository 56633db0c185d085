"""The bank as of a cutoff, computed in SQL.

The `versions` table (kept by triggers on the log, see schema.py) holds each memory version with
the interval in which it is alive; the bank as of T is the set of versions whose interval holds T,
i.e. for each memory its last state-changing event at or before T, dropped if that event was a
DELETE or ERASE. Closed versions are found through an R*Tree over their intervals (float32 boxes,
rounded outward; the exact text comparison settles the boundaries), open ones through an index.
Cost grows with the size of the answer, not of the log."""

from __future__ import annotations

import sqlite3

from .clock import Cutoff
from .records import Memory
from .schema import _EPOCH

_COLUMNS = "v.memory_id, v.text, v.start_valid, v.event_seq, v.op, v.actor, v.reason"  # = Memory's fields


def _as_of(rtree_hit: str, exact_closed: str, exact_open: str) -> str:
    return f"""
SELECT {_COLUMNS} FROM versions_rtree r JOIN versions v ON v.event_seq = r.id
 WHERE r.bank_lo <= :bank_id AND r.bank_hi >= :bank_id AND {rtree_hit}
   AND v.bank = :bank AND {exact_closed}
UNION ALL
SELECT {_COLUMNS} FROM versions v
 WHERE v.bank = :bank AND v.end_seq IS NULL AND {exact_open}
ORDER BY 3, 4"""


_T = _EPOCH.format(":time")
BY_TIME_SQL = _as_of(f"r.t_lo <= {_T} AND r.t_hi >= {_T}",
                     "v.start_valid <= :time AND v.end_valid > :time", "v.start_valid <= :time")
BY_SEQ_SQL = _as_of("r.seq_lo <= :seq AND r.seq_hi >= :seq",
                    "v.event_seq <= :seq AND v.end_seq > :seq", "v.event_seq <= :seq")
NOW_SQL = f"SELECT {_COLUMNS} FROM versions v WHERE v.bank = :bank AND v.end_seq IS NULL ORDER BY 3, 4"


def project(conn: sqlite3.Connection, bank: str, cutoff: Cutoff) -> list[Memory]:
    row = conn.execute("SELECT id FROM banks WHERE name = ?", (bank,)).fetchone()
    if row is None:
        return []
    params = {"bank": bank, "bank_id": row[0], "time": cutoff.time, "seq": cutoff.seq}
    sql = BY_TIME_SQL if cutoff.time is not None else BY_SEQ_SQL if cutoff.seq is not None else NOW_SQL
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples straight into the NamedTuple: 10^4 rows in a few ms
    return list(map(Memory._make, cur.execute(sql, params)))
