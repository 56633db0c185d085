"""Two writer processes lose nothing; a process killed mid-batch leaves all of it or none."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from memstore import MemoryStore

WRITER = textwrap.dedent("""
    import sys
    from memstore import MemoryStore
    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = MemoryStore(path, "shared", create=False, timeout=30)
    for i in range(n):
        with store.transaction():          # small batches interleave with the other writer
            store.add(f"{name} fact {i}", at="2024-01-01")
            store.add(f"{name} fact {i} bis", at="2024-01-01")
""")

KILLER = textwrap.dedent("""
    import os, signal, sys
    from memstore import MemoryStore
    store = MemoryStore(sys.argv[1], "shared", create=False)
    store.add("committed before the batch", at="2024-01-01")
    with store.transaction():
        for i in range(50):
            store.add(f"batch fact {i}", at="2024-01-02")
            if i == 25:
                os.kill(os.getpid(), signal.SIGKILL)
""")


def test_two_processes_append_at_once(db_path):
    MemoryStore(db_path, "shared").close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db_path), name, "150"]) for name in ("p1", "p2")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = MemoryStore(db_path, "shared", create=False)
    seqs = [r[0] for r in store.conn.execute("SELECT seq FROM events ORDER BY seq")]
    assert len(seqs) == 600 and len(set(seqs)) == 600
    texts = {m.text for m in store.replay()}
    assert {f"{n} fact {i}" for n in ("p1", "p2") for i in range(150)} <= texts
    assert store.verify()["ok"], "the hash chain stays linear under concurrent writers"


def test_killed_mid_batch_leaves_none_of_it(db_path):
    MemoryStore(db_path, "shared").close()
    proc = subprocess.run([sys.executable, "-c", KILLER, str(db_path)])
    assert proc.returncode == -9
    store = MemoryStore(db_path, "shared", create=False)
    assert [m.text for m in store.replay()] == ["committed before the batch"]
    assert store.verify()["ok"]
    store.add("after the crash", at="2024-01-03")  # the file is still writable
    assert store.verify()["ok"]
