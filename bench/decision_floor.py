"""How much a higher similarity floor would save: for every decision the model made in
an `llm` bank, the best candidate's similarity at decision time and the op the model chose.

The bank is rebuilt event by event in a scratch store, so each decision's search sees exactly
the bank it was made on. No model call. Usage:
    python bench/decision_floor.py bench/out/throughput/new.db --bank bench [--policy learned]"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile

from memstore import MemoryStore
from memstore.errors import MemstoreError
from policy.manager import LLMPolicy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--bank", default="default")
    ap.add_argument("--policy", default=LLMPolicy.name, help="whose decisions (the name its reasons start with)")
    args = ap.parse_args()
    try:  # the source is only read: a missing file or bank is an error, never created
        src = MemoryStore(args.db, args.bank, create=False)
    except MemstoreError as exc:
        sys.exit(f"decision_floor: {exc}")
    if args.bank not in src.banks():
        sys.exit(f"decision_floor: no bank {args.bank!r} in {args.db} (banks: {', '.join(src.banks()) or 'none'})")
    chose = f"{args.policy}: model chose"  # the reason LLMPolicy.decide records for a model decision
    scratch = MemoryStore(tempfile.mkdtemp() + "/rebuilt.db", "rebuilt")
    ids, rows = {}, []
    for e in src.events():
        if e.reason and e.reason.startswith(chose):
            hits = [h for h in scratch.search(e.cause["fact"], k=LLMPolicy.k, as_of=e.valid_at)
                    if h.score >= LLMPolicy.min_score]
            rows.append((hits[0].score if hits else 0.0, e.op))
        if e.outcome != "applied" or e.op not in ("ADD", "UPDATE", "DELETE"):
            continue
        ev = scratch.apply(e.op, ids.get(e.memory_id, ""), e.text, at=e.valid_at, source=e.source)
        ids.setdefault(e.memory_id, ev.memory_id)
    print(f"{len(rows)} model decisions; best candidate's similarity -> ops chosen")
    edges = (LLMPolicy.min_score, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 1.01)
    for lo, hi in zip(edges, edges[1:]):
        ops = collections.Counter(op for score, op in rows if lo <= score < hi)
        print(f"  {lo:.2f}-{min(hi, 1):.2f}: {sum(ops.values()):4d}  {dict(ops)}")


if __name__ == "__main__":
    main()
