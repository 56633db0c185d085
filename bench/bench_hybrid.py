"""The cost of hybrid ranking (`memstore.lexical.hybrid_order`) beside the embedding's order alone.

For banks of N alive memories (generated LoCoMo-like sentences, the generator of bench_search.py),
times per query: the exact cosine order (numpy over the vectors, the dense baseline) and the hybrid
order (the same cosines plus a BM25 index built over the N texts). Cosines are random: ranking
cost does not depend on them; embedding the query is the same for both and left out.

    python bench/bench_hybrid.py [--sizes 700,5000,50000] [--queries 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from bench_search import sentence
from memstore.lexical import hybrid_order


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="700,5000,50000")
    ap.add_argument("--queries", type=int, default=20)
    args = ap.parse_args()
    rng = random.Random(0)
    table = Table(title=f"ranking one query, k=10, median of {args.queries} queries")
    for col in ("alive memories", "embedding order", "tail filled by BM25", "ratio"):
        table.add_column(col, justify="right")
    for n in (int(x) for x in args.sizes.split(",")):
        texts = [sentence(rng) for _ in range(n)]
        vectors = np.random.default_rng(0).standard_normal((n, 384)).astype(np.float32)
        dense, fused = [], []
        for _ in range(args.queries):
            query = sentence(rng) + "?"
            q = vectors[rng.randrange(n)]
            t = time.perf_counter()
            cosines = vectors @ q
            np.argsort(-cosines, kind="stable")[:10]
            dense.append(time.perf_counter() - t)
            t = time.perf_counter()
            hybrid_order(query, texts, vectors @ q, 10)
            fused.append(time.perf_counter() - t)
        d, f = statistics.median(dense) * 1e3, statistics.median(fused) * 1e3
        table.add_row(f"{n:,}", f"{d:.2f} ms", f"{f:.1f} ms", f"{f / d:.0f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
