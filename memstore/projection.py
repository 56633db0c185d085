"""The bank as of a cutoff, computed in SQL.

For each memory of the bank (found by a loose index scan: one seek per memory), take its last
state-changing event at or before the cutoff (one more seek, on a partial index), and keep it
if that event leaves the memory live. Cost grows with the number of memories, not of events."""

from __future__ import annotations

import sqlite3

from .clock import Cutoff
from .records import Memory
from .schema import LIVE_OPS

_STATE = "outcome = 'applied' AND op <> 'NOOP'"  # must match the partial indexes' WHERE
_E_STATE = "e.outcome = 'applied' AND e.op <> 'NOOP'"

_IDS = f"""
WITH RECURSIVE ids(m) AS (
    SELECT MIN(memory_id) FROM events WHERE bank = :bank AND {_STATE}
    UNION ALL
    SELECT (SELECT MIN(memory_id) FROM events
            WHERE bank = :bank AND {_STATE} AND memory_id > ids.m)
    FROM ids WHERE ids.m IS NOT NULL
)"""

_LAST_BY_TIME = f"""
    SELECT e.seq FROM events e
    WHERE e.bank = :bank AND e.memory_id = ids.m AND {_E_STATE}
      AND e.valid_at <= :time
    ORDER BY e.valid_at DESC, e.seq DESC LIMIT 1"""

_LAST_BY_SEQ = f"""
    SELECT e.seq FROM events e
    WHERE e.bank = :bank AND e.memory_id = ids.m AND {_E_STATE}
      AND e.seq <= :seq
    ORDER BY e.seq DESC LIMIT 1"""


def _query(last: str) -> str:
    live = ", ".join(f"'{op}'" for op in LIVE_OPS)
    return f"""{_IDS},
last(seq) AS (SELECT ({last}) FROM ids WHERE ids.m IS NOT NULL)
SELECT ev.memory_id, ev.text, ev.valid_at, ev.seq, ev.op, ev.actor, ev.reason
FROM last JOIN events ev ON ev.seq = last.seq
WHERE ev.op IN ({live}) AND ev.erased = 0
ORDER BY ev.valid_at, ev.seq"""


BY_TIME_SQL = _query(_LAST_BY_TIME)
BY_SEQ_SQL = _query(_LAST_BY_SEQ)


def project(conn: sqlite3.Connection, bank: str, cutoff: Cutoff) -> list[Memory]:
    if cutoff.time is not None:
        rows = conn.execute(BY_TIME_SQL, {"bank": bank, "time": cutoff.time})
    else:
        seq = cutoff.seq if cutoff.seq is not None else (1 << 62)
        rows = conn.execute(BY_SEQ_SQL, {"bank": bank, "seq": seq})
    return [Memory.from_row(r) for r in rows]
