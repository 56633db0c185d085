"""Ingest a dialogue into a bank through a manager policy, resumably.

Store mechanics, generic over the policy: any object with `facts(store, turn)` and
`apply_turn(store, turn, facts)` (policy/manager.py's managers), and any turn with `input_id`,
`speaker`, `text`, `time`, `session` and `meta` (policy's `Turn`, or a recorded `Input` when a
bank's inputs are replayed through another policy).

Each turn lands in one transaction: its raw input and every decision made on it. So a turn is
either wholly applied or not at all; on a rerun, turns whose input is already recorded are
skipped, and a Ctrl-C or kill loses at most the turn in flight. Facts are extracted (LLM) before
the transaction opens, so the write lock is held only while deciding. A policy with
`prefetch(store, turns)` and `batch` > 1 gets the next `batch` pending turns handed over ahead,
to extract their facts together (they do not depend on the bank); decisions stay turn by turn."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from .store import MemoryStore


@dataclass
class IngestReport:
    turns: int = 0
    applied: int = 0
    skipped: int = 0
    ops: dict = field(default_factory=dict)
    seconds: float = 0.0
    turn_seconds: list = field(default_factory=list)


def ingest(store: "MemoryStore", policy: Any, turns: Sequence[Any],
           progress: Callable[[int, int, str], None] | None = None) -> IngestReport:
    report = IngestReport(turns=len(turns))
    done = {r[0] for r in store.conn.execute("SELECT input_id FROM inputs WHERE bank = ?", (store.bank,))}
    pending = [t for t in turns if t.input_id not in done]
    window = getattr(policy, "batch", 1) if hasattr(policy, "prefetch") else 1
    t0, p = time.perf_counter(), 0
    for n, turn in enumerate(turns, 1):
        if turn.input_id in done:
            report.skipped += 1
        else:
            t = time.perf_counter()
            if window > 1 and p % window == 0:
                policy.prefetch(store, pending[p:p + window])
            p += 1
            facts = policy.facts(store, turn)
            with store.transaction():
                store.record_input(turn.speaker, turn.text, turn.time, input_id=turn.input_id, session=turn.session,
                                   meta=turn.meta)
                for ev in policy.apply_turn(store, turn, facts):
                    key = ev.op if ev.outcome == "applied" else f"{ev.op} (refused)"
                    report.ops[key] = report.ops.get(key, 0) + 1
            report.applied += 1
            report.turn_seconds.append(time.perf_counter() - t)
        if progress:
            progress(n, len(turns), turn.input_id)
    report.seconds = time.perf_counter() - t0
    return report
