"""Trust under attack and faults: each attack or fault found by hand is a test here.
The attacker has write access to the file (a plain sqlite3 connection, triggers dropped where
that is what it takes); the store must refuse, or `verify` must say so."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import dump, memstore_cli
from memstore import MemoryStore
from memstore.chain import GENESIS, content_digest, event_hash
from memstore.errors import BadInput, StoreUnavailable
from memstore.schema import EVENT_CONTENT, ddl_statements


def build(path: Path, **kw) -> MemoryStore:
    store = MemoryStore(path, "alpha", **kw)
    store.record_input("Alice", "I have a dog named Max", "2023-05-08", input_id="t0")
    dog = store.add("Alice has a dog named Max", at="2023-05-08")
    store.update(dog.memory_id, "Alice has two dogs, Max and Bella", at="2023-06-12")
    home = store.add("Alice lives in Boston", at="2023-05-08")
    store.delete(home.memory_id, at="2023-07-20")
    store.add("Alice likes tea", at="2023-08-01")
    MemoryStore(path, "beta", **kw).add("Bob likes chess", at="2023-05-01")
    return store


def attacker(path: Path, *drop: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for trigger in drop:
        conn.execute(f"DROP TRIGGER {trigger}")
    return conn


GUARDS = [f"{t}_guard_{a}" for t in ("versions", "banks") for a in ("insert", "update", "delete")]


def test_the_projection_is_guarded_and_checked(db_path):
    store = build(db_path)
    conn = attacker(db_path)
    for sql in ["UPDATE versions SET text = 'EVIL'", "UPDATE versions SET bank = 'beta'", "DELETE FROM versions",
                "INSERT INTO banks (name) VALUES ('x')",
                "INSERT OR REPLACE INTO events SELECT * FROM events WHERE seq = 2",
                "INSERT OR REPLACE INTO inputs SELECT * FROM inputs WHERE input_id = 't0'"]:
        with pytest.raises(sqlite3.DatabaseError, match="derived|append-only"):
            conn.execute(sql)
    assert [m.text for m in store.replay()] == ["Alice has two dogs, Max and Bella", "Alice likes tea"]
    assert store.verify(all_banks=True, deep=True)["ok"]

    # with the guards dropped the raw write lands, and verify names it
    conn = attacker(db_path, *GUARDS)
    conn.execute("UPDATE versions SET text = 'EVIL' WHERE text = 'Alice likes tea'")
    out = store.verify()
    assert not out["ok"] and "projection" in out["problem"] and "text" in out["problem"]
    assert out["first_broken_seq"] == 5
    conn.execute("UPDATE versions SET bank = 'alpha' WHERE bank = 'beta'")  # move a memory between banks
    assert not MemoryStore(db_path, "beta").verify()["ok"]
    store.repair()
    assert [m.text for m in store.replay()] == ["Alice has two dogs, Max and Bella", "Alice likes tea"]
    assert store.verify(all_banks=True, deep=True)["ok"]

    conn.execute("DELETE FROM versions_rtree WHERE id = 1")  # a virtual table takes no trigger
    assert store.verify()["ok"] and not store.verify(deep=True)["ok"]
    proc = memstore_cli("--bank", "alpha", "repair", db=db_path)
    assert proc.returncode == 0, proc.stderr
    assert store.verify(all_banks=True, deep=True)["ok"]


def rechain(conn: sqlite3.Connection, bank: str, key: bytes | None = None) -> None:
    """What an attacker without the key does after editing: recompute every hash of the bank."""
    conn.row_factory = sqlite3.Row
    tail = GENESIS
    for row in conn.execute("SELECT * FROM events WHERE bank = ? ORDER BY seq", (bank,)).fetchall():
        row = dict(row)
        row["prev_hash"] = tail
        row["content_digest"] = content_digest((row[c] for c in EVENT_CONTENT), salt=row["salt"])
        row["hash"] = event_hash(tail, row, key)
        conn.execute("UPDATE events SET prev_hash = ?, content_digest = ?, hash = ? WHERE seq = ?",
                     (row["prev_hash"], row["content_digest"], row["hash"], row["seq"]))
        tail = row["hash"]


def cover_tracks(conn: sqlite3.Connection) -> None:
    """What a careful attacker does last: put the dropped triggers back."""
    for statement in ddl_statements():
        conn.execute(statement)


def test_anchors_catch_truncation_and_rewritten_history(db_path):
    store = build(db_path)
    anchor = store.head()["anchor"]
    assert memstore_cli("--bank", "alpha", "head", db=db_path).stdout.strip() == anchor
    assert store.verify(anchors=[anchor])["ok"]
    conn = attacker(db_path, "events_no_update", "events_no_delete", *GUARDS)
    conn.execute("UPDATE events SET text = 'Alice likes coffee' WHERE text = 'Alice likes tea'")
    conn.execute("UPDATE versions SET text = 'Alice likes coffee' WHERE text = 'Alice likes tea'")
    rechain(conn, "alpha")
    assert "protection trigger" in store.verify()["problem"]  # the dropped triggers are seen
    cover_tracks(conn)
    assert store.verify()["ok"], "without a key or an anchor a recomputed chain passes: that is the point"
    out = store.verify(anchors=[anchor])
    assert not out["ok"] and "rewritten" in out["problem"]

    store2 = build(db_path.with_name("t.db"))
    anchor = store2.head()["anchor"]
    conn = attacker(db_path.with_name("t.db"), "events_no_delete", *GUARDS)
    conn.execute("DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events WHERE bank = 'alpha')")
    store2.repair()
    assert store2.verify()["ok"]
    out = store2.verify(anchors=[anchor])
    assert not out["ok"] and "truncated" in out["problem"]
    proc = memstore_cli("--bank", "alpha", "verify", "--anchor", anchor, db=db_path.with_name("t.db"))
    assert proc.returncode == 1 and "truncated" in proc.stdout
    bad = memstore_cli("--bank", "alpha", "verify", "--anchor", "12:nothex", db=db_path)
    assert bad.returncode == 1 and "bad anchor" in bad.stderr


def test_a_keyed_chain_cannot_be_forged_without_the_key(db_path, monkeypatch):
    monkeypatch.setenv("MEMSTORE_KEY", "correct horse battery staple")
    store = build(db_path)
    assert store.keyed and store.verify(all_banks=True)["ok"]
    secret = store.add("Alice's PIN is 4321", at="2023-08-02")
    conn = attacker(db_path, "events_no_update", *GUARDS)
    # a forged ERASE that purges a memory, chained with a plain hash (the attacker has no key)
    conn.execute("UPDATE events SET text = NULL, prev_text = NULL, reason = NULL, cause = NULL, erased = 1 "
                 "WHERE memory_id = ?", (secret.memory_id,))
    rechain(conn, "alpha")
    out = store.verify()
    assert not out["ok"] and "hash" in out["problem"]
    monkeypatch.delenv("MEMSTORE_KEY")
    explicit = MemoryStore(db_path.with_name("explicit.db"), "a", key="k2")  # a key passed, not in the env
    explicit.with_bank("b").add("written through another bank of the same keyed file")
    assert explicit.verify(all_banks=True)["ok"] and explicit.keyed
    reader = MemoryStore(db_path, "alpha")
    assert reader.keyed and reader.replay()  # reads need no key
    assert not reader.verify()["ok"] and "keyed" in reader.verify()["problem"]
    with pytest.raises(StoreUnavailable, match="keyed"):
        reader.add("written without the key")
    monkeypatch.setenv("MEMSTORE_KEY", "wrong")
    with pytest.raises(StoreUnavailable, match="wrong"):
        MemoryStore(db_path, "alpha")
    monkeypatch.setenv("MEMSTORE_KEY", "k")
    plain = db_path.with_name("plain.db")
    monkeypatch.delenv("MEMSTORE_KEY")
    MemoryStore(plain, "a").add("x")
    with pytest.raises(StoreUnavailable, match="cannot be keyed"):
        MemoryStore(plain, "a", key="k")


def test_inputs_are_purged_only_with_a_tombstone(db_path):
    store = MemoryStore(db_path, "alpha")
    inp, _ = store.record_input("Alice", "my PIN is 4321", "2023-05-01", input_id="t1")
    store.add("Alice's PIN is 4321", at="2023-05-01", source=["t1"])
    conn = attacker(db_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE inputs SET speaker = NULL, text = NULL, meta = NULL, erased = 1 WHERE input_id = 't1'")
    conn = attacker(db_path, "inputs_no_update")
    conn.execute("UPDATE inputs SET speaker = NULL, text = NULL, meta = NULL, erased = 1 WHERE input_id = 't1'")
    out = store.verify()
    assert not out["ok"] and "tombstone" in out["problem"] and out["broken_input"] == "t1"


def files_beside(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name.startswith(path.name)]


def test_erase_finishes_or_says_so_and_the_next_open_completes_it(db_path):
    store = MemoryStore(db_path, "alpha")
    store.record_input("Alice", "my PIN is 4321, do not tell", "2023-05-01", input_id="t1")
    pin = store.add("Alice's PIN is 4321", at="2023-05-01", source=["t1"])
    store.add("Alice likes tea", at="2023-05-02")
    other = MemoryStore(db_path, "beta")
    other.add("Alice's PIN is 4321", at="2023-05-01")  # the same text in another bank
    assert store.search("PIN", k=1) and other.search("PIN", k=1)  # both banks' indexes are on disk
    other.close()
    store.vector_view().save()

    reader = sqlite3.connect(db_path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM events").fetchone()  # a reader inside a read transaction
    with pytest.raises(StoreUnavailable, match="next open"):
        store.erase(pin.memory_id, reason="privacy request", with_sources=True)
    assert store.why(pin.memory_id)["status"] == "erased"  # recorded; only the WAL is pending
    reader.execute("COMMIT")
    reader.close()
    store.close()

    MemoryStore(db_path, "alpha").close()  # the next open completes the erasure
    for path in files_beside(db_path):  # the file, its WAL and shm, the vector indexes
        assert b"do not tell" not in path.read_bytes(), path
    # the memory's text survives only as the other bank's own copy (its event and its projection row)
    assert db_path.read_bytes().count(b"Alice's PIN is 4321") == 2
    assert not (db_path.with_name(db_path.name + "-wal").exists() and db_path.with_name(db_path.name + "-wal").stat().st_size)

    # the erased version is gone from the bank's saved vector index, the other bank keeps its vector
    store = MemoryStore(db_path, "alpha")
    assert [h.text for h in store.search("PIN", k=5)] == ["Alice likes tea"]
    keep = MemoryStore(db_path, "beta")
    cached = keep.conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    assert cached >= 2 and keep.search("PIN", k=1)[0].text == "Alice's PIN is 4321"


def test_times_before_year_1000_keep_their_order(db_path):
    store = MemoryStore(db_path, "old")
    m = store.add("The abbey was founded", at="0999-06-01")
    store.update(m.memory_id, "The abbey was rebuilt", at="1066-10-14")
    assert [x.text for x in store.replay("0999-12-31")] == ["The abbey was founded"]
    assert [x.text for x in store.replay("1100-01-01")] == ["The abbey was rebuilt"]
    assert [h.text for h in store.search("abbey", as_of="0999-12-31")] == ["The abbey was founded"]
    assert store.events()[0].valid_at == "0999-06-01T00:00:00.000000Z"
    with pytest.raises(BadInput, match="0001-9999"):
        store.add("x", at="0001-01-01T00:00+01:00")
    # a time already in stored form is kept as it is, but only if it is a real time
    assert store.add("x", at="0999-06-02T00:00:00.000000Z").valid_at == "0999-06-02T00:00:00.000000Z"
    for bad in ("2023-13-01T00:00:00.000000Z", "2023-02-30T00:00:00.000000Z", "2023-01-01T24:00:00.000000Z",
                "٢٠٢٣-01-01T00:00:00.000000Z"):
        with pytest.raises(BadInput, match="bad timestamp"):
            store.add("x", at=bad)
    assert store.verify(deep=True)["ok"]


HOSTILE = [
    (["add", "x", "--at", "0001-01-01T00:00+01:00"], "0001-9999"),
    (["add", "x", "--at", "9999-12-31T23:59-01:00"], "0001-9999"),
    (["replay", "--as-of", "@99999999999999999999999"], None),
    (["replay", "--as-of", "@-1"], "log position"),
    (["replay", "--as-of", "@١٢"], "log position"),
    (["add", "bad \udcff\udcfe"], "UTF-8"),
    (["search", "q", "-k", "0"], "-k"),
    (["nosuch"], "No such command"),
    (["add"], "Missing argument"),
    (["add", "x", "--bogus"], "No such option"),
    (["--bank", "alice\n", "replay"], "bank name"),
    (["--bank", "", "replay"], "bank name"),
    (["verify", "--anchor", "x:y"], "bad anchor"),
]


def test_cli_hostile_values_are_one_line_errors(db_path):
    store = MemoryStore(db_path, "default")
    store.add("kept", at="2023-01-01")
    refused = store.apply("UPDATE", "mdeadbeef00", "x", at="2023-01-02")
    assert refused.outcome == "refused"
    before = dump(db_path)
    for args, words in HOSTILE + [(["why", "mdeadbeef00"], "never changed")]:
        proc = memstore_cli(*args, db=db_path)
        lines = proc.stderr.strip().splitlines()
        if words is None:
            assert proc.returncode == 0, (args, proc.stderr)
            continue
        assert proc.returncode in (1, 2), (args, proc.returncode, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("memstore: error:") and words in lines[0], (args, lines)
    assert dump(db_path) == before



def test_a_stale_vector_index_is_not_reused(tmp_path):
    path = tmp_path / "agent.db"
    old = MemoryStore(path, "alice")
    old.add("Alice keeps bees in the garden")
    assert old.search("bees", k=1)[0].text == "Alice keeps bees in the garden"
    old.close()
    for p in files_beside(path):
        if not p.name.endswith((".hnsw", ".hnsw.json")):
            p.unlink()
    assert any(p.name.endswith(".hnsw") for p in files_beside(path))  # the old index is still there
    new = MemoryStore(path, "alice")
    new.add("Alice plays the cello")
    assert [h.text for h in new.search("bees", k=5)] == ["Alice plays the cello"]


WRITER = textwrap.dedent("""
    import sys
    from memstore import MemoryStore
    store = MemoryStore(sys.argv[1], "crash", create=False, timeout=30)
    batch = int(sys.argv[2])
    while True:
        with store.transaction():
            for i in range(40):
                store.add(f"batch {batch} item {i}", at="2024-01-01")
        batch += 1
""")


def test_sigkill_mid_batch_twenty_times_loses_or_duplicates_nothing(db_path):
    MemoryStore(db_path, "crash").close()
    rng = random.Random(17)
    batch = 0
    for kill in range(20):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db_path), str(batch)])
        time.sleep(0.6 + rng.random() * 0.8)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -9
        store = MemoryStore(db_path, "crash", create=False)
        counts: dict[int, int] = {}
        for m in store.replay():
            b = int(m.text.split()[1])
            counts[b] = counts.get(b, 0) + 1
        assert set(counts.values()) <= {40}, f"kill {kill}: a batch landed in part: {counts}"
        texts = [m.text for m in store.replay()]
        assert len(texts) == len(set(texts)), "nothing twice"
        assert store.verify(deep=True)["ok"]
        batch = max(counts, default=batch) + 1
        store.close()
    assert batch > 20, "the writer made progress between kills"


HARNESS = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    from fake_llm import ScriptedLLM
    from memstore.clock import to_stamp
    from evaluation import harness as evaluate
    from policy.answer import AnswerAgent
    from policy.turns import QA, Turn

    n, kill = int(sys.argv[3]), sys.argv[4] == "kill"
    ask = lambda i: QA(f"What does Jon like ({i})?", "tea", 1, (), to_stamp("2023-01-02"))
    task = evaluate.Task("t", [Turn("t:1", "Jon", "Jon likes tea", to_stamp("2023-01-01"))], [ask(i) for i in range(n)])
    if kill:  # killed while the first new answer is being computed
        AnswerAgent.answer_many = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    llm = ScriptedLLM()
    evaluate.run_task(task, "append", llm, llm, __import__("pathlib").Path(sys.argv[1]))
""")


def test_harness_resume_never_loses_answers(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    tests = str(Path(__file__).parent)
    assert subprocess.run([sys.executable, "-c", HARNESS, str(out), tests, "3", "ok"]).returncode == 0
    answers = out / "answers" / "t.append.jsonl"
    kept = answers.read_text()
    assert len(kept.splitlines()) == 3
    killed = subprocess.run([sys.executable, "-c", HARNESS, str(out), tests, "4", "kill"])
    assert killed.returncode == -9
    assert answers.read_text() == kept, "a kill during a resumed run must keep every earlier answer"
    assert subprocess.run([sys.executable, "-c", HARNESS, str(out), tests, "4", "ok"]).returncode == 0
    assert len(answers.read_text().splitlines()) == 4 and answers.read_text().startswith(kept)
