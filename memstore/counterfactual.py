"""Counterfactual replay: what would another policy have remembered from the same conversation?

The inputs recorded in a bank are replayed, in their recorded order, through another manager
policy into a new bank of the same file, with `ingest`'s per-turn transactions and resumability.
Facts come from the fact cache (the same model and prompt extracted them already), so only the
decisions are made again. Each replayed input keeps its id, so the new bank's events name the
source bank's inputs (`source`), and its meta says where it was replayed from."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from .clock import to_stamp
from .errors import BadInput
from .ingest import IngestReport, ingest
from .args import check_bank

if TYPE_CHECKING:
    from .store import MemoryStore


def plan(source: "MemoryStore", into: str, until: Any = None) -> tuple[list, int]:
    """Check a counterfactual replay before any model loads: (the inputs to replay, as turns;
    how many erased inputs are skipped). Refuses a bank holding anything but a replay of these
    inputs; a rerun into its own counterfactual bank is fine (it resumes)."""
    into = check_bank(into)
    if into == source.bank:
        raise BadInput("counterfactual needs another bank to write into than the one it replays")
    if isinstance(until, str) and until.strip().startswith("@"):
        raise BadInput("--until takes a time (ISO date or datetime), not a log position")
    cutoff = to_stamp(until, end_of_day=True) if until is not None else None
    recorded = source.inputs()
    if not recorded:
        raise BadInput(f"bank {source.bank!r} has no recorded inputs to replay")
    target = source.with_bank(into)
    try:
        theirs = {r[0] for r in target.conn.execute("SELECT input_id FROM inputs WHERE bank = ?", (into,))}
        foreign = theirs - {i.input_id for i in recorded}
        if foreign or (target.last_seq() and not theirs):
            raise BadInput(f"bank {into!r} already holds other inputs or memories: replay into a new bank "
                           f"(or into its own counterfactual bank, to resume)")
    finally:
        target.close()
    chosen = [i for i in recorded if cutoff is None or i.time <= cutoff]
    turns = [dataclasses.replace(i, meta={**(i.meta or {}), "replayed_from": source.bank})
             for i in chosen if not i.erased]
    return turns, len(chosen) - len(turns)


def counterfactual(source: "MemoryStore", policy: Any, into: str, *, until: Any = None,
                   progress: Callable[[int, int, str], None] | None = None) -> IngestReport:
    """Replay `source`'s recorded inputs (those said at or before `until`, default all) through
    `policy` into bank `into` (see `plan` for what is refused). Erased inputs (their text is
    gone) are skipped and counted in `report.ops['erased input (skipped)']`."""
    turns, erased = plan(source, into, until)
    target = source.with_bank(into)
    try:
        report = ingest(target, policy, turns, progress=progress)
    finally:
        target.close()
    if erased:
        report.ops["erased input (skipped)"] = erased
    return report
