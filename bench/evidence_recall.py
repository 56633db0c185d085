"""How often the memories an Answer Agent reads hold the evidence: the embedding's order beside
the served hybrid order, on the banks a `memstore bench locomo` run built. No model call.

For each question of categories 1-4, the k memories searched for its text as of the end of the
conversation (as `policy/answer.py` searches); a question counts as reached when the version read
of one of them was written from an evidence turn (the ADD or UPDATE event that wrote it cites that
turn as its source).

    python bench/evidence_recall.py runs/dev --bank learned --data ../shared/data/locomo/locomo_dev.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

from evaluation.datasets import locomo_qa
from memstore import MemoryStore
from policy.inputs import load_turns


def sources(store: MemoryStore) -> dict[int, set[str]]:
    """event seq -> the input ids it cites (a search hit's seq is its version's event)."""
    return {event.seq: set(event.source) for event in store.events()}


def recall(db: Path, bank: str, data: Path, conversation: str, k: int) -> tuple[int, dict[str, int]]:
    """(questions with evidence, {order: questions reached}) for one conversation's bank."""
    turns, sample = load_turns(data, conversation)
    store = MemoryStore(db, bank, create=False)
    try:
        cited = sources(store)
        reached = {"embedding": 0, "hybrid": 0}
        asked = 0
        for qa in track(locomo_qa(sample, turns), description=f"{conversation} {bank}", transient=True):
            evidence = {f"{conversation}:{d}" for d in qa.evidence}
            if not evidence:
                continue
            asked += 1
            for order, hybrid in (("embedding", False), ("hybrid", True)):
                hits = store.search(qa.question, k=k, as_of=qa.asked_at, hybrid=hybrid)
                reached[order] += any(cited.get(h.seq, set()) & evidence for h in hits)
        return asked, reached
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="bench locomo output folders (DIR/CONV.db)")
    ap.add_argument("--bank", required=True, help="the policy whose banks are searched")
    ap.add_argument("--data", required=True, type=Path, help="the LoCoMo JSON the runs were built from")
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()
    dbs = [db for run in args.runs for db in sorted(run.glob("conv-*.db"))]
    if not dbs:
        sys.exit(f"evidence_recall: no conv-*.db in {', '.join(map(str, args.runs))}: not a `memstore bench locomo` run")
    for db in dbs:  # the banks are only read: a missing bank is an error, never created
        store = MemoryStore(db, args.bank, create=False)
        banks = store.banks()
        store.close()
        if args.bank not in banks:
            sys.exit(f"evidence_recall: no bank {args.bank!r} in {db} (banks: {', '.join(banks) or 'none'})")
    table = Table(title=f"evidence among the {args.k} memories read, bank {args.bank}")
    for col in ("conversation", "questions", "embedding", "hybrid (served)"):
        table.add_column(col, justify="right")
    total, sums = 0, {"embedding": 0, "hybrid": 0}
    for db in dbs:
        asked, reached = recall(db, args.bank, args.data, db.stem, args.k)
        total += asked
        for order in sums:
            sums[order] += reached[order]
        table.add_row(db.stem, str(asked), *(f"{100 * reached[o] / max(asked, 1):.1f}%" for o in sums))
    table.add_row("all", str(total), *(f"{100 * sums[o] / max(total, 1):.1f}%" for o in sums))
    Console().print(table)


if __name__ == "__main__":
    main()
