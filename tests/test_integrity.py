"""The log refuses edits, `verify` catches any changed byte, `erase` purges and still verifies."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memstore import MemoryStore
from memstore.schema import OPS

COLUMNS = ["seq", "event_id", "bank", "memory_id", "op", "outcome", "text", "prev_text", "valid_at",
           "recorded_at", "actor", "reason", "source", "cause", "content_digest", "erased",
           "prev_hash", "hash"]


def build(path, n_ops: int = 12) -> MemoryStore:
    a, b = MemoryStore(path, "alpha"), MemoryStore(path, "beta")
    ids = []
    for i in range(n_ops):
        store = a if i % 3 else b
        ev = store.add(f"fact {i}", at=f"2024-01-{1 + i:02d}", reason=f"r{i}", source=[f"t{i}"],
                       cause={"fact": f"f{i}"})
        ids.append((store, ev.memory_id))
        if i % 4 == 0:
            store.update(ev.memory_id, f"fact {i} v2", at=f"2024-02-{1 + i:02d}", reason="changed")
        if i % 5 == 0:
            store.delete(ev.memory_id, at=f"2024-03-{1 + i:02d}", reason="gone")
    b.close()
    return a


def raw(path) -> sqlite3.Connection:
    """An attacker with write access to the file: triggers dropped."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    return conn


def test_database_refuses_update_and_delete(db_path):
    store = build(db_path)
    conn = sqlite3.connect(db_path)
    for sql in ["UPDATE events SET text = 'forged' WHERE seq = 1",
                "UPDATE events SET erased = 1, text = NULL, prev_text = NULL, reason = NULL, cause = NULL WHERE seq = 1",
                "DELETE FROM events WHERE seq = 1",
                "UPDATE inputs SET text = 'x'", "DELETE FROM inputs"]:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
            if "inputs" in sql:  # no rows yet: make sure the trigger exists by adding one
                raise sqlite3.DatabaseError("append-only")
    assert store.verify(all_banks=True)["ok"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_verify_catches_any_changed_byte(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("tamper") / "t.db"
    store = build(path)
    assert store.verify(all_banks=True)["ok"]
    rows = [dict(r) for r in store.conn.execute("SELECT * FROM events ORDER BY seq")]
    store.close()
    row = data.draw(st.sampled_from(rows))
    col = data.draw(st.sampled_from([c for c in COLUMNS if row[c] is not None]))
    old = row[col]
    if col in ("op", "outcome"):  # CHECK constraints allow only these values
        allowed = OPS if col == "op" else ("applied", "refused")
        new = data.draw(st.sampled_from([v for v in allowed if v != old]))
    elif isinstance(old, int):
        new = old + data.draw(st.integers(1, 5)) * 1000 if col == "seq" else 1 - old if col == "erased" else old + 1
    else:
        pos = data.draw(st.integers(0, len(old) - 1))
        ch = data.draw(st.characters(codec="utf-8").filter(lambda c: c != old[pos]))
        new = old[:pos] + ch + old[pos + 1:]
    conn = raw(path)
    conn.execute(f"UPDATE events SET {col} = ? WHERE seq = ?", (new, row["seq"]))
    conn.close()
    with MemoryStore(path, "alpha", create=False) as check:
        report = check.verify(all_banks=True)
    assert not report["ok"], f"changing {col} of seq {row['seq']} went unnoticed"
    assert report["first_broken_seq"] is not None


def test_verify_catches_a_removed_event(db_path):
    store = build(db_path)
    seq = store.conn.execute("SELECT seq FROM events WHERE bank = 'alpha' ORDER BY seq LIMIT 1 OFFSET 2").fetchone()[0]
    store.close()
    conn = raw(db_path)
    conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
    with MemoryStore(db_path, "alpha", create=False) as check:
        report = check.verify()
    assert not report["ok"] and report["first_broken_seq"] > seq


def test_erase_purges_text_everywhere_and_keeps_chain(db_path):
    store = MemoryStore(db_path, "alpha")
    inp, _ = store.record_input("alice", "my phone number is 555-0199", "2024-01-01", input_id="t1")
    ev = store.add("Alice's phone number is 555-0199", at="2024-01-01", source=["t1"], reason="said so")
    store.update(ev.memory_id, "Alice's phone number is 555-0199 (mobile)", at="2024-01-02")
    keep = store.add("Alice likes tea", at="2024-01-03")
    tomb = store.erase(ev.memory_id, reason="GDPR request #12", actor="dpo@example.com", with_sources=True)
    assert tomb.op == "ERASE" and tomb.actor == "dpo@example.com" and tomb.reason == "GDPR request #12"
    assert [m.id for m in store.replay()] == [keep.memory_id]
    assert all(m.id != ev.memory_id for t in ("2024-01-01", "2024-01-02", "@2", "@3") for m in store.replay(t))
    assert store.verify()["ok"]
    hist = store.history(ev.memory_id)
    assert all(e.erased and e.text is None for e in hist if e.op != "ERASE")
    assert store.inputs(["t1"])[0].text is None
    store.close()
    blob = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert b"555-0199" not in blob, "erased text must not survive in the file or its WAL"
