"""Append throughput and as-of replay latency of the event log, next to a naive Python fold of
the whole log, in one run. A bank of ~10^4 live memories grows to 10^4, 10^5, 10^6 events
(mostly updates, some delete+re-add), with valid_at increasing along the log, three times: in
blocks of 1,000 through transaction() (the projection kept by the per-event trigger), through
bulk() (kept once per block) and, as the baseline, through bulk() without two of its speed-ups
(a WAL checkpoint every 1,000 pages, each closed version looked up again in SQL); the files grow
in turn and end verified (--deep) and equal. Each table also prints this disk's fdatasync time,
so a figure reads against the machine it ran on (the same code gave 2x other figures on a slower disk).

    python bench/bench_store.py [--sizes 10000,100000,1000000] [--db bench/out/store.db]

`--concurrency`: W writer processes appending at once, one event per transaction and batches of
50, each commit durable before it returns, two ways in one run: SQLite's `synchronous = FULL`
(the WAL fsynced inside every commit, under the write lock: writers queue behind each other's
fsyncs) and memstore's group commit (commits under `NORMAL`, then one fsync of the WAL shared by
the writers that committed meanwhile, memstore/durability.py); and, for reference, `NORMAL` with
no fsync at all (a power loss may lose the last commits).

    python bench/bench_store.py --concurrency [--writers 8] [--seconds 6]

`--guards`: what schema 2's guard triggers cost: the same append loop (60,000 events, 10^4 live)
on a file whose guard and no-replace triggers are dropped (the schema-1 maintenance), and on one
with them, twice each, in one run.

    python bench/bench_store.py --guards

`--backend sqlite,postgres`: the two engines side by side in one run (bench/bench_engines.py).

    python bench/bench_store.py --backend sqlite,postgres
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from memstore import MemoryStore
from memstore.clock import format_stamp

LIVE = 10_000
BATCH = 1_000
T0 = datetime(2023, 1, 1, tzinfo=timezone.utc)


def stamp(i: int) -> str:
    return format_stamp(T0 + timedelta(seconds=30 * i))


class BulkBefore(MemoryStore):
    """bulk() without two of its speed-ups: the default WAL checkpoint (every 1,000 pages) and
    no note of each memory's open version when its op is checked (the block's end looks it up)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.engine.BULK_CHECKPOINT_PAGES = 1000

    def _note_open(self, memory_id, row) -> None:
        pass


def fdatasync_ms(folder: Path, n: int = 200) -> float:
    """Median time to make one rewritten 4 KiB page durable on this disk: what a FULL commit waits for."""
    path = folder / "fdatasync.probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, bytes(n * 4096))
        os.fsync(fd)
        times = []
        for i in range(n):
            os.pwrite(fd, b"x" * 4096, i * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times) * 1e3


def naive_fold(store: MemoryStore, time_cutoff: str) -> dict:
    """What you would write without the projection: read the whole log and fold it."""
    state = {}
    for mid, op, text, valid_at, outcome in store.conn.execute(
            "SELECT memory_id, op, text, valid_at, outcome FROM events WHERE bank = ? ORDER BY seq", (store.bank,)):
        if outcome != "applied" or op == "NOOP" or valid_at > time_cutoff:
            continue
        state[mid] = (op, text)
    return {m: t for m, (op, t) in state.items() if op in ("ADD", "UPDATE", "RESTORE")}


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


class _NoGroupSync:
    """For the FULL baseline: SQLite's own locking (its busy handler), and no fsync after the
    commit (FULL syncs inside it)."""

    def enter(self, timeout: float) -> None:
        pass

    def leave(self) -> None:
        pass

    def after_commit(self) -> None:
        pass

    def close(self) -> None:
        pass


def _writer(path: str, mode: str, batch: int, seconds: float, go, done) -> None:
    store = MemoryStore(path, "contention", create=False, timeout=60)
    if mode == "FULL":  # SQLite fsyncs the WAL inside each commit, under its write lock and busy handler
        store._sync.close()
        store._sync = _NoGroupSync()
        store.conn.execute("PRAGMA synchronous = FULL")
    elif mode == "NORMAL":  # memstore's writers' queue, no fsync at all: what the CPUs allow
        store._sync.after_commit = lambda: None
    n = 0
    go.wait()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        with store.transaction():
            for _ in range(batch):
                store.add(f"writer {os.getpid()} event {n}", at=stamp(n))
                n += 1
    store.close()
    done.put(n)


def contention(path: Path, writers: int, batch: int, mode: str, seconds: float) -> float:
    for p in path.parent.glob(path.name + "*"):
        p.unlink()
    MemoryStore(path, "contention").close()
    go, done = mp.Event(), mp.Queue()
    procs = [mp.Process(target=_writer, args=(str(path), mode, batch, seconds, go, done)) for _ in range(writers)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # every writer has imported and opened the file
    t = time.perf_counter()
    go.set()
    total = sum(done.get() for _ in procs)
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t
    store = MemoryStore(path, "contention", create=False)
    assert store.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == total and store.verify()["ok"]
    store.close()
    return total / elapsed


def main_concurrency(args) -> None:
    path = Path(args.db).with_name("contention.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    sync = fdatasync_ms(path.parent)
    table = Table(title=f"writer processes appending at once, {args.seconds:.0f} s each (one run; fdatasync {sync:.3f} ms)")
    for col in ("writers x events per transaction", "before: FULL, one fsync per commit (ev/s)",
                "now: group commit (ev/s)", "now / before", "no fsync at all (ev/s)", "no fsync / before"):
        table.add_column(col, justify="right")
    for writers, batch in ((args.writers, 1), (args.writers, 50), (1, 1), (1, 50)):
        before = contention(path, writers, batch, "FULL", args.seconds)
        group = contention(path, writers, batch, "group", args.seconds)
        normal = contention(path, writers, batch, "NORMAL", args.seconds)
        table.add_row(f"{writers} x {batch}", f"{before:,.0f}", f"{group:,.0f}", f"{group / before:.2f}x",
                      f"{normal:,.0f}", f"{normal / before:.2f}x")
    Console(width=170).print(table)


GUARDS = [f"{t}_guard_{a}" for t in ("versions", "banks") for a in ("insert", "update", "delete")] \
    + ["events_no_replace", "inputs_no_replace"]


def append_rate(path: Path, guarded: bool, n: int = 60_000) -> float:
    from memstore.schema import DDL
    for p in path.parent.glob(path.name + "*"):
        p.unlink()
    store = MemoryStore(path, "bench")
    if not guarded:  # back to schema 1's triggers: no guards, maintenance without the guard row
        for trigger in GUARDS + ["versions_follow_log"]:
            store.conn.execute(f"DROP TRIGGER {trigger}")
        body = DDL[DDL.index("CREATE TRIGGER IF NOT EXISTS versions_follow_log"):]
        body = body[:body.index("END;") + 4].replace(" AND NOT EXISTS (SELECT 1 FROM projection_guard)", "")
        store.conn.executescript(body.replace("    INSERT INTO projection_guard VALUES ('trigger');\n", "")
                                 .replace("    DELETE FROM projection_guard;\n", ""))
    rng, live = random.Random(0), []
    t = time.perf_counter()
    for start in range(0, n, BATCH):
        with store.transaction():
            for i in range(start, start + BATCH):
                if len(live) < LIVE:
                    live.append(store.add(f"memory {i}: the user mentioned fact #{i}", at=stamp(i)).memory_id)
                else:
                    store.update(rng.choice(live), f"memory revised at {i}", at=stamp(i))
    rate = n / (time.perf_counter() - t)
    store.close()
    return rate


def main_guards(args) -> None:
    path = Path(args.db).with_name("guards.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = Table(title="append ev/s, 60,000 events, 10^4 live (one run)")
    for col in ("repetition", "schema-1 triggers", "schema 2 (guards, no-replace)", "ratio"):
        table.add_column(col, justify="right")
    for rep in (1, 2):
        before, after = append_rate(path, False), append_rate(path, True)
        table.add_row(str(rep), f"{before:,.0f}", f"{after:,.0f}", f"{after / before:.2f}x")
    Console().print(table)


def grow(store: MemoryStore, bulk: bool, size: int, state: dict) -> float:
    """Append until the log holds `size` events (the workload of the table: mostly updates, 5%
    delete + re-add) in blocks of BATCH, each a transaction() or a bulk(); returns events/s."""
    rng, live = state["rng"], state["live"]
    t = time.perf_counter()
    start = state["n"]
    while state["n"] < size:
        with (store.bulk() if bulk else store.transaction()):
            for _ in range(min(BATCH, size - state["n"])):
                n = state["n"]
                if len(live) < LIVE:
                    live.append(store.add(f"memory {n}: the user mentioned fact #{n}", at=stamp(n)).memory_id)
                elif rng.random() < 0.05:
                    victim = live.pop(rng.randrange(len(live)))
                    store.delete(victim, at=stamp(n), reason="superseded")
                else:
                    store.update(rng.choice(live), f"memory revised at {n}", at=stamp(n))
                state["n"] += 1
    return (state["n"] - start) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--db", default="bench/out/store.db")
    ap.add_argument("--concurrency", action="store_true", help="writers at once instead of the growing log")
    ap.add_argument("--guards", action="store_true", help="what the guard triggers cost, in one run")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=6.0)
    if any(a == "--backend" or a.startswith("--backend=") for a in sys.argv[1:]):
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_engines import main as engines
        return engines(sys.argv[1:])  # its own options (sizes, writers, seconds, --http)
    args = ap.parse_args()
    if args.concurrency:
        return main_concurrency(args)
    if args.guards:
        return main_guards(args)
    sizes = [int(s) for s in args.sizes.split(",")]
    path = Path(args.db)
    path.parent.mkdir(parents=True, exist_ok=True)
    modes = {"transaction": (MemoryStore, path), "bulk": (MemoryStore, path.with_name(path.stem + "-bulk" + path.suffix)),
             "before": (BulkBefore, path.with_name(path.stem + "-bulk-before" + path.suffix))}
    for _, p in modes.values():
        for old in p.parent.glob(p.name + "*"):
            old.unlink()
    sync = fdatasync_ms(path.parent)
    stores = {m: cls(p, "bench") for m, (cls, p) in modes.items()}
    states = {m: {"rng": random.Random(0), "live": [], "n": 0} for m in modes}
    rows = []
    console = Console(width=190)
    with Progress(console=console) as progress:
        task = progress.add_task("appending (transaction, bulk, bulk before)", total=len(modes) * sizes[-1])
        for size in sizes:
            rates = {}
            for m, store in stores.items():  # the files grow in turn, so all see the same machine state
                rates[m] = grow(store, m != "transaction", size, states[m])
                progress.update(task, completed=sum(s["n"] for s in states.values()))
            store, n = stores["bulk"], size
            end, mid = stamp(n), stamp(n // 2)
            rep_end, bank = timed(lambda: store.replay(end), 5)
            rep_mid, _ = timed(lambda: store.replay(mid), 5)
            rep_seq, _ = timed(lambda: store.replay(f"@{n // 2}"), 5)
            fold, folded = timed(lambda: naive_fold(store, end), 1 if size >= 10**6 else 3)
            assert {m.id: m.text for m in bank} == folded, "projection and fold disagree"
            for other in ("transaction", "before"):
                assert sorted(m.text for m in stores[other].replay(end)) == sorted(folded.values()), "the paths differ"
            rows.append((size, len(bank), rates, rep_end, rep_mid, rep_seq, fold))
    assert all(s.verify(deep=True)["ok"] for s in stores.values())
    table = Table(title=f"event log: appends per block of {BATCH:,}, as-of replay vs naive fold "
                        f"({path}, one run; fdatasync {sync:.3f} ms)")
    for col in ("events", "live", "append ev/s transaction()", "bulk() before", "bulk()", "bulk / before",
                "bulk / transaction", "replay as-of end", "as-of mid", "as-of @seq", "naive fold", "fold / replay"):
        table.add_column(col, justify="right")
    for size, nlive, rates, r_end, r_mid, r_seq, fold in rows:
        tx, before, bulk = rates["transaction"], rates["before"], rates["bulk"]
        table.add_row(f"{size:,}", f"{nlive:,}", f"{tx:,.0f}", f"{before:,.0f}", f"{bulk:,.0f}", f"{bulk / before:.2f}x",
                      f"{bulk / tx:.2f}x", f"{r_end * 1e3:.1f} ms", f"{r_mid * 1e3:.1f} ms",
                      f"{r_seq * 1e3:.1f} ms", f"{fold * 1e3:.0f} ms", f"{fold / r_end:.1f}x")
    console.print(table)


if __name__ == "__main__":
    main()
