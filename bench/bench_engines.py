"""SQLite and PostgreSQL side by side, in one run, on this machine (PostgreSQL in a throwaway
cluster started here: tests/pg_cluster.py, default durability: fsync on, synchronous_commit on).

- append rate: single events (one transaction each, durable when it returns) and batched
  (bulk() blocks of 1,000), with the CPU per event of this process and the server's together;
- the CPU one single append costs, in the writer and in the server's processes, and the rate
  that bounds on this machine's cores (cores / CPU per append): what W writers could reach if
  nothing but CPU limited them;
- W writer processes at once, single events, into one bank and into one bank each;
- as-of replay latency (time cutoff in the middle of the history; median of 5) and as-of search
  latency (median of 20 queries) on a bank grown to each size (~10^4 live memories, mostly
  updates). Search embeds with a deterministic hash embedder (384 dims), so the figure is the
  store's (catch-up, alive filter, hnswlib), not MiniLM's; it is measured at the sizes up to
  --search-max (building an HNSW index of 10^6 vectors takes longer than this bench); PostgreSQL
  histories above --bulk-max are the SQLite file's, copied with `migrate` (largest size only);
- HTTP (--http): C client threads posting single events for S seconds to 1 and then 2 `memstore
  serve` processes over one PostgreSQL database, loopback only: throughput, p50/p99, and events
  lost (acknowledged but absent afterwards; must be 0).

    python bench/bench_store.py --backend sqlite,postgres [--sizes 100000,1000000] [--http]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import LIVE, stamp, timed  # noqa: E402
from pg_cluster import Cluster, free_port  # noqa: E402

from memstore import MemoryStore  # noqa: E402
from memstore.migrate import migrate  # noqa: E402

BLOCK = 1_000


class HashEmbedder:
    """Deterministic unit vectors from a text's sha256: the store's search cost without a model's."""
    name, dim = "hash384", 384

    def embed(self, texts):
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            rng = np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little"))
            v = rng.standard_normal(self.dim).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


def grow(store: MemoryStore, size: int, state: dict) -> tuple[float, float]:
    """Grow the bank to `size` events in bulk() blocks; returns events per second and the CPU
    milliseconds per event, this process's and the server's together."""
    rng, live = state["rng"], state["live"]
    own, server, t = cpu_now(), server_cpu(), time.perf_counter()
    added = size - state["n"]
    while state["n"] < size:
        with store.bulk():
            for _ in range(min(BLOCK, size - state["n"])):
                i = state["n"]
                if len(live) < LIVE:
                    live.append(store.add(f"fact {i}", at=stamp(i)).memory_id)
                elif rng.random() < 0.9:
                    store.update(live[rng.randrange(len(live))], f"fact {i}", at=stamp(i))
                else:
                    k = rng.randrange(len(live))
                    store.delete(live[k], at=stamp(i))
                    live[k] = store.add(f"fact {i}", at=stamp(i)).memory_id
                    state["n"] += 1
                state["n"] += 1
    rate = added / (time.perf_counter() - t)
    return rate, 1e3 * (cpu_now() - own + server_cpu() - server) / added


def cpu_now() -> float:
    """CPU seconds this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL process on the machine (this bench's cluster:
    the backends, the WAL writer, the checkpointer...)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass  # a process that ended meanwhile
    return total


def singles(target, n: int = 1000) -> dict:
    """One writer, one event per transaction: the rate, and the CPU each append costs in this
    process (client) and in the database server's processes (none for SQLite)."""
    store = MemoryStore(target, "singles")
    for i in range(50):
        store.add(f"warm {i}", at=stamp(i))
    own, server, t = cpu_now(), server_cpu(), time.perf_counter()
    for i in range(n):
        store.add(f"single {i}", at=stamp(i))
    rate = n / (time.perf_counter() - t)
    client = cpu_now() - own
    store.close()
    cpu_ms = 1e3 * (client + server_cpu() - server) / n
    return {"rate": rate, "client_cpu_ms": 1e3 * client / n, "cpu_ms": cpu_ms,
            "ceiling": os.cpu_count() * 1e3 / cpu_ms}


def _writer(target, bank: str, seconds: float, go, counts, slot: int) -> None:
    store = MemoryStore(target, bank, timeout=60)
    go.wait()
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        store.add(f"{bank} {n}", at=stamp(n))
        n += 1
    counts[slot] = n
    store.close()


def writers(target, w: int, seconds: float, many_banks: bool) -> float:
    ctx = mp.get_context("spawn")
    go, counts = ctx.Event(), ctx.Array("q", w)
    procs = [ctx.Process(target=_writer, args=(target, f"w{i}" if many_banks else "shared", seconds, go, counts, i))
             for i in range(w)]
    for p in procs:
        p.start()
    time.sleep(3.0)  # every process opened its store
    go.set()
    for p in procs:
        p.join()
    return sum(counts) / seconds


def http_load(url: str, servers: int, clients: int, seconds: float, tmp: Path) -> dict:
    import httpx
    exe = shutil.which("memstore", path=str(Path(sys.executable).parent))
    token = json.loads(subprocess.run([exe, "--db", url, "token", "issue", "--bank", "*", "--right", "read",
                                       "--right", "write", "--json"], capture_output=True, text=True,
                                      check=True).stdout)["token"]
    ports = [free_port() for _ in range(servers)]
    procs = [subprocess.Popen([exe, "--db", url, "serve", "--port", str(p)], stdout=subprocess.DEVNULL,
                              stderr=open(tmp / f"serve{p}.log", "w")) for p in ports]
    try:
        for p in ports:
            for _ in range(300):
                try:
                    httpx.get(f"http://127.0.0.1:{p}/openapi.json", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
        latencies, acked, errors = [], [], [0]
        lock, stop = threading.Lock(), time.monotonic() + seconds

        def client(i: int) -> None:
            bank = f"http{servers}-{i % 4}"
            with httpx.Client(base_url=f"http://127.0.0.1:{ports[i % servers]}",
                              headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
                n = 0
                while time.monotonic() < stop:
                    t = time.perf_counter()
                    r = c.post(f"/banks/{bank}/memories", json={"text": f"client {i} event {n}"})
                    dt = time.perf_counter() - t
                    with lock:
                        if r.status_code == 201:
                            latencies.append(dt)
                            acked.append((bank, r.json()["memory_id"]))
                        else:
                            errors[0] += 1
                    n += 1
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
    check = MemoryStore(url, "default", create=False)
    present = set()
    for bank in {b for b, _ in acked}:
        present |= {(bank, m.id) for m in check.with_bank(bank).replay()}
    check.close()
    latencies.sort()
    return {"servers": servers, "clients": clients, "rate": len(acked) / seconds,
            "p50_ms": 1e3 * latencies[len(latencies) // 2] if latencies else float("nan"),
            "p99_ms": 1e3 * latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
            "lost": len(set(acked) - present), "errors": errors[0]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="sqlite,postgres")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--search-max", type=int, default=100_000)
    ap.add_argument("--bulk-max", type=int, default=100_000,
                    help="PostgreSQL sizes above this are copied from the SQLite file (the largest size only)")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--http", action="store_true", help="also the HTTP load run on PostgreSQL")
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args(argv)
    engines = args.backend.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    console = Console(width=180)
    tmp = Path(tempfile.mkdtemp(prefix="memstore-bench-"))
    cluster = Cluster().init().start() if "postgres" in engines else None
    results = {}
    try:
        for engine in engines:
            new = (lambda name: tmp / f"{name}.db") if engine == "sqlite" else (lambda name: cluster.new_database(name))
            r = results[engine] = {"sizes": {}}
            console.print(f"[bold]{engine}[/]: single appends")
            r["single"] = singles(new("single"))
            console.print(f"{engine}: {args.writers} writers, one bank, then one bank each")
            r["writers_one_bank"] = writers(new("w1"), args.writers, args.seconds, many_banks=False)
            r["writers_many_banks"] = writers(new("wn"), args.writers, args.seconds, many_banks=True)
            target = new("grow")
            store = MemoryStore(target, "bench", embedder=HashEmbedder())
            state = {"rng": random.Random(0), "live": [], "n": 0}
            for size in sizes:
                if engine != "sqlite" and size > args.bulk_max:
                    # the same history, copied from the SQLite file (memstore migrate): bulk() here
                    # would take longer than this bench
                    console.print(f"{engine}: {size:,} events copied from the SQLite file (migrate)")
                    store.close()
                    target = new(f"copy{size}")
                    t = time.perf_counter()
                    migrate(tmp / "grow.db", target)
                    rate = cpu = None
                    results[engine].setdefault("migrate_rate", size / (time.perf_counter() - t))
                    store = MemoryStore(target, "bench", embedder=HashEmbedder())
                else:
                    console.print(f"{engine}: growing to {size:,} events (bulk blocks of {BLOCK:,})")
                    rate, cpu = grow(store, size, state)
                mid = stamp(size // 2)
                row = {"bulk_rate": rate, "bulk_cpu_ms": cpu, "replay_mid_ms": 1e3 * timed(lambda: store.replay(mid), 5)[0],
                       "live": len(store.replay())}
                if size <= args.search_max:
                    t = time.perf_counter()
                    store.vector_view().refresh()
                    row["index_build_s"] = time.perf_counter() - t
                    queries = [f"fact {random.Random(q).randrange(size)}" for q in range(20)]
                    row["search_mid_ms"] = 1e3 * statistics.median(
                        [timed(lambda q=q: store.search(q, k=10, as_of=mid), 1)[0] for q in queries])
                r["sizes"][size] = row
            store.close()
        if args.http and cluster is not None:
            results["http"] = [http_load(cluster.new_database(f"http{n}"), n, args.clients, args.seconds, tmp)
                               for n in (1, 2)]
    finally:
        if cluster is not None:
            cluster.remove()
        shutil.rmtree(tmp, ignore_errors=True)
    report(console, results, engines, sizes, args)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "engines.json").write_text(json.dumps(results, indent=1, default=str))


def report(console: Console, res: dict, engines: list[str], sizes: list[int], args) -> None:
    base = engines[0]
    table = Table(title=f"engines side by side (one run; ratios against {base})")
    table.add_column("measure")
    for e in engines:
        table.add_column(e, justify="right")
    if len(engines) > 1:
        table.add_column(f"{engines[1]} / {base}", justify="right")

    def row(name: str, values: list[float], fmt: str, higher_better: bool = True) -> None:
        cells = [fmt.format(v) for v in values]
        if len(values) > 1:
            cells.append(f"{values[1] / values[0]:.2f}x")
        table.add_row(name, *cells)
    row("single appends, ev/s", [res[e]["single"]["rate"] for e in engines], "{:,.0f}")
    row("  CPU per single append (client + server), ms", [res[e]["single"]["cpu_ms"] for e in engines], "{:.2f}")
    row("  of which the client's, ms", [res[e]["single"]["client_cpu_ms"] for e in engines], "{:.2f}")
    row(f"  ceiling on {os.cpu_count()} cores (cores / CPU per append), ev/s",
        [res[e]["single"]["ceiling"] for e in engines], "{:,.0f}")
    row(f"{args.writers} writers one bank, ev/s", [res[e]["writers_one_bank"] for e in engines], "{:,.0f}")
    row(f"{args.writers} writers one bank each, ev/s", [res[e]["writers_many_banks"] for e in engines], "{:,.0f}")
    for size in sizes:
        if all(res[e]["sizes"][size]["bulk_rate"] for e in engines):
            row(f"bulk appends to {size:,}, ev/s", [res[e]["sizes"][size]["bulk_rate"] for e in engines], "{:,.0f}")
            row("  CPU per bulk event (client + server), ms",
                [res[e]["sizes"][size]["bulk_cpu_ms"] for e in engines], "{:.3f}")
        row(f"replay as-of mid at {size:,}, ms", [res[e]["sizes"][size]["replay_mid_ms"] for e in engines], "{:.1f}")
        if "search_mid_ms" in res[engines[0]]["sizes"][size]:
            row(f"search as-of mid at {size:,}, ms", [res[e]["sizes"][size]["search_mid_ms"] for e in engines], "{:.2f}")
    console.print(table)
    for e in engines:
        if "migrate_rate" in res[e]:
            console.print(f"{e}: the largest history was copied from the SQLite file by migrate at "
                          f"{res[e]['migrate_rate']:,.0f} events/s (verified, heads equal)")
    if "http" in res:
        t = Table(title=f"HTTP on PostgreSQL: {args.clients} clients, {args.seconds:.0f} s, loopback")
        for c in ("serve processes", "events/s", "p50 ms", "p99 ms", "lost", "errors"):
            t.add_column(c, justify="right")
        for h in res["http"]:
            t.add_row(str(h["servers"]), f"{h['rate']:,.0f}", f"{h['p50_ms']:.1f}", f"{h['p99_ms']:.1f}",
                      str(h["lost"]), str(h["errors"]))
        console.print(t)


if __name__ == "__main__":
    main()
