"""As-of similarity search on the hnswlib view next to exact numpy brute force, in one run.

Builds a bank of N memory versions (default 10^5: 20% adds, the rest updates, valid_at spread
over two years) from generated LoCoMo-like sentences embedded with the real all-MiniLM-L6-v2,
then for queries at several as-of times prints latency p50/p95 and recall@10 of:
- memstore's search (exact scoring under `exact_below` alive versions, filtered HNSW above),
- HNSW with the as-of filter forced, and
- exact brute force over the alive versions' vectors (numpy), the baseline.
Also prints the index build time (embedding excluded: embeddings are cached) and catch-up time.

    python bench/bench_search.py [--versions 100000] [--queries 200] [--db bench/out/search.db]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from memstore import MemoryStore
from memstore.clock import STAMP_FORMAT

NAMES = ["Caroline", "Melanie", "Jon", "Gina", "Tim", "John", "Maria", "Joanna", "Nate", "Audrey",
         "Andrew", "James", "Deborah", "Jolene", "Evan", "Sam", "Calvin", "Dave", "Fiona", "Priya"]
VERBS = ["went to", "talked about", "started", "finished", "is thinking about", "signed up for",
         "loves", "stopped", "painted", "wrote about", "bought", "visited", "planned", "joined"]
THINGS = ["a pottery class", "the LGBTQ support group", "a camping trip in the mountains", "her new puppy",
          "a charity run", "the adoption agency", "a poetry reading", "his dance studio", "a road trip to Boston",
          "violin lessons", "a vegan cooking course", "the beach with the kids", "a job interview", "a book club",
          "a hiking trail near Denver", "a painting of a sunset", "a concert downtown", "the farmers market",
          "a new apartment", "a family reunion", "a marathon", "a photography workshop", "the science museum",
          "a surprise party", "a yoga retreat"]
WHEN = ["last week", "yesterday", "this weekend", "in May", "after work", "with friends", "with family",
        "for the first time", "again", "on Sunday"]
T0 = datetime(2022, 1, 1, tzinfo=timezone.utc)


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(NAMES)} {rng.choice(VERBS)} {rng.choice(THINGS)} {rng.choice(WHEN)}"


def pct(values, q):
    return float(np.percentile(values, q)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--db", default="bench/out/search.db")
    args = ap.parse_args()
    console = Console()
    path = Path(args.db)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    fresh = not path.exists()
    store = MemoryStore(path, "bench")
    span = 730 * 86400
    if fresh:
        ids: list[str] = []
        with Progress(console=console) as progress:
            task = progress.add_task("appending versions", total=args.versions)
            for start in range(0, args.versions, 1000):
                with store.transaction():
                    for i in range(start, min(start + 1000, args.versions)):
                        at = (T0 + timedelta(seconds=span * i / args.versions)).strftime(STAMP_FORMAT)
                        if i < 2000 or rng.random() < 0.2:
                            ids.append(store.add(sentence(rng), at=at).memory_id)
                        else:
                            store.update(rng.choice(ids), sentence(rng), at=at)
                progress.update(task, completed=min(start + 1000, args.versions))
        with Progress(console=console) as progress:
            task = progress.add_task("embedding (MiniLM) + indexing", total=args.versions)
            t = time.perf_counter()
            store.vector_view(progress=lambda d, n: progress.update(task, completed=d, total=n))
            store.vector_view().save()
            console.print(f"first build incl. embedding: {time.perf_counter() - t:.0f} s")
    view = store.vector_view()
    t = time.perf_counter()
    view.rebuild()
    build_s = time.perf_counter() - t
    # catch-up: 1000 new versions appended after the index was saved
    view.save()
    with store.transaction():
        for i in range(1000):
            store.add(sentence(rng), at=(T0 + timedelta(seconds=span + i)).strftime(STAMP_FORMAT))
    t = time.perf_counter()
    view.refresh()
    catchup_s = time.perf_counter() - t

    n_labels = len(view.labels)
    matrix = view.index.get_items(view.labels, return_type="numpy").astype(np.float32)
    row_of = {int(l): i for i, l in enumerate(view.labels)}
    queries = [sentence(rng) for _ in range(args.queries)]
    qvecs = view.embedder.inner.embed(queries)
    cut_times = {f"{frac:.0%} of the timeline": (T0 + timedelta(seconds=span * frac)).strftime(STAMP_FORMAT)
                 for frac in (0.1, 0.5, 1.0)}
    table = Table(title=f"as-of search, {n_labels:,} memory versions, {args.queries} queries each, k=10 ({path})")
    for col in ("as of", "alive", "method", "p50", "p95", "recall@10"):
        table.add_column(col, justify="right")
    original = view.exact_below
    embed_inner = view.embedder.inner

    for label, stamp in cut_times.items():
        alive = view.alive(view_cutoff(stamp))
        rows = np.array([row_of[int(a)] for a in alive])
        truth, brute_t = [], []
        for q in qvecs:
            t = time.perf_counter()
            scores = matrix[rows] @ q
            top = np.argpartition(-scores, min(10, len(rows) - 1))[:10]
            top = top[np.argsort(-scores[top])]
            brute_t.append(time.perf_counter() - t)
            truth.append({int(alive[i]) for i in top})
        results = {}
        for name, threshold in (("memstore search", original), ("HNSW + as-of filter", 0)):
            view.exact_below = threshold
            times, recalls = [], []
            for query, q, want in zip(queries, qvecs, truth):
                view.embedder.inner = _Fixed(q, embed_inner)
                t = time.perf_counter()
                hits = view.search(query, k=10, as_of=stamp)
                times.append(time.perf_counter() - t)
                recalls.append(len({h.seq for h in hits} & want) / len(want))
            results[name] = (times, recalls)
        view.exact_below = original
        view.embedder.inner = embed_inner
        for name, (times, recalls) in results.items():
            table.add_row(label, f"{len(alive):,}", name, f"{pct(times, 50):.2f} ms", f"{pct(times, 95):.2f} ms",
                          f"{statistics.mean(recalls):.3f}")
        table.add_row(label, f"{len(alive):,}", "exact numpy brute force", f"{pct(brute_t, 50):.2f} ms",
                      f"{pct(brute_t, 95):.2f} ms", "1.000")
    console.print(table)
    console.print(f"index build from cached embeddings: {build_s:.1f} s for {n_labels:,} versions; "
                  f"catch-up of 1,000 new versions (embedding included): {catchup_s:.2f} s")
    console.print("latencies exclude embedding the query (~5-10 ms with MiniLM on this CPU), the same for all methods")


class _Fixed:
    """Hands back a precomputed query vector, so timings compare search alone."""

    def __init__(self, vector, inner):
        self.vector, self.name, self.dim = vector, inner.name, inner.dim

    def embed(self, texts):
        return self.vector[None, :]


def view_cutoff(stamp):
    from memstore.clock import parse_cutoff
    return parse_cutoff(stamp)


if __name__ == "__main__":
    main()
