"""The shipped manager adapter (trained on decision prompt v2, memories dated) asked again under
v3 (texts only): the same op and target? how many prompt tokens? On the model decisions of a
`learned` bank, each rebuilt with the bank it was made on (as bench/decision_floor.py does).

    python bench/decide_v2_v3.py runs/learned-hybrid-c41/conv-41.db --bank learned --every 8
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time

from memstore import MemoryStore
from memstore.errors import MemstoreError
from policy.agent import make_policy
from policy.runtime import load


def cases(db: str, bank: str, every: int, policy) -> list[tuple[str, list, str, str]]:
    """(fact, candidates, day, op logged) of every `every`-th model decision."""
    src = MemoryStore(db, bank, create=False)
    if bank not in src.banks():
        sys.exit(f"decide_v2_v3: no bank {bank!r} in {db} (banks: {', '.join(src.banks()) or 'none'})")
    scratch = MemoryStore(tempfile.mkdtemp() + "/rebuilt.db", "rebuilt")
    ids, out, n = {}, [], 0
    for e in src.events():
        if e.reason and e.reason.startswith("learned: model chose"):
            n += 1
            if n % every == 0:
                hits = [h for h in scratch.search(e.cause["fact"], k=policy.k, as_of=e.valid_at)
                        if h.score >= policy.min_score]
                out.append((e.cause["fact"], hits, e.valid_at[:10], e.op))
        if e.outcome == "applied" and e.op in ("ADD", "UPDATE", "DELETE"):
            ev = scratch.apply(e.op, ids.get(e.memory_id, ""), e.text, at=e.valid_at, source=e.source)
            ids.setdefault(e.memory_id, ev.memory_id)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--bank", default="learned")
    ap.add_argument("--every", type=int, default=8, help="every N-th model decision")
    args = ap.parse_args()
    policy = make_policy("learned", load())
    try:
        todo = cases(args.db, args.bank, max(args.every, 1), policy)
    except MemstoreError as exc:
        sys.exit(f"decide_v2_v3: {exc}")
    print(f"{len(todo)} decisions of {args.db} (bank {args.bank}), every {args.every}-th model decision")
    chosen = {}
    for version in ("v2", "v3"):
        policy.decide_version = version
        u = policy.decider.usage
        before, t = (u.prompt_tokens, u.prompt_evaluated, u.completion_tokens), time.perf_counter()
        outs = []
        for fact, hits, day, _ in todo:
            call = policy.decision_call(fact, hits, day)
            out = policy.decider.json(call.system, call.user, call.schema, max_tokens=call.max_tokens, prefix=call.prefix)
            outs.append((out.get("op"), out.get("target")))
        chosen[version] = outs
        print(f"{version}: {time.perf_counter() - t:.1f} s, prompt tokens {u.prompt_tokens - before[0]}, evaluated "
              f"{u.prompt_evaluated - before[1]}, generated {u.completion_tokens - before[2]}, "
              f"ops {dict(collections.Counter(o[0] for o in outs))}")
    pairs = list(zip(chosen["v2"], chosen["v3"]))
    print(f"same op {sum(a[0] == b[0] for a, b in pairs)}/{len(todo)}, same op and target "
          f"{sum(a == b for a, b in pairs)}/{len(todo)}; v2 as logged "
          f"{sum(a[0] == c[3] for a, c in zip(chosen['v2'], todo))}/{len(todo)}")
    print("changed (v2 -> v3):", dict(collections.Counter(f"{a[0]} -> {b[0]}" for a, b in pairs if a != b)))
    for (fact, *_), (a, b) in zip(todo, pairs):
        if a != b:
            print(f"  {a} -> {b}  {fact}")


if __name__ == "__main__":
    main()
