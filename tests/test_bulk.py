"""bulk(): many appends with the projection kept once at the end must leave exactly the derived
rows the per-event trigger leaves, refuse what cannot be answered mid-block, and roll back whole,
on both engines (on PostgreSQL the per-row trigger keeps the projection in a bulk block too)."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memstore import InvalidOperation, MemoryStore
from memstore.errors import StoreUnavailable

VERSIONS = "SELECT event_seq, bank, start_valid, end_valid, end_seq, op, text, actor, reason FROM versions ORDER BY 1"
BOXES = "SELECT * FROM versions_rtree ORDER BY id"

STEP = st.tuples(st.sampled_from(["ADD", "UPDATE", "DELETE", "NOOP", "RESTORE"]),
                 st.sampled_from(["alpha", "beta"]), st.integers(0, 7), st.integers(0, 30))


def play(path, steps, blocks, bulk: bool) -> MemoryStore:
    """Apply the steps to a new file, in blocks, each block a bulk() or a transaction(). Memory ids
    are random, so steps name memories by their creation index in the bank."""
    stores = {b: MemoryStore(path, b) for b in ("alpha", "beta")}
    made: dict[str, list[str]] = {"alpha": [], "beta": []}
    cuts = sorted({0, len(steps), *[c % (len(steps) + 1) for c in blocks]})
    for lo, hi in zip(cuts, cuts[1:]):
        for bank in stores:  # one bank's block, then the other's: blocks of several banks interleave
            store = stores[bank]
            with (store.bulk() if bulk else store.transaction()):
                for i in range(lo, hi):
                    op, b, k, day = steps[i]
                    if b != bank:
                        continue
                    at = f"2024-01-{1 + day // 2:02d}T{10 + day % 2}:00"
                    target = made[bank][k % len(made[bank])] if made[bank] else "m-none"
                    if op == "ADD":
                        made[bank].append(store.apply("ADD", text=f"fact {i}", at=at).memory_id)
                    elif op == "RESTORE":
                        try:
                            store.restore(target, at=at)
                        except Exception:
                            store.apply("NOOP", target, at=at, reason="restore refused")
                    else:
                        store.apply(op, target, text=f"fact {i} v", at=at, reason=f"step {i}")
    stores["beta"].close()
    return stores["alpha"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=60), blocks=st.lists(st.integers(0, 60), max_size=4))
def test_bulk_leaves_the_projection_the_trigger_leaves(new_db, steps, blocks):
    one, many = play(new_db(), steps, blocks, bulk=False), play(new_db(), steps, blocks, bulk=True)
    assert [tuple(r) for r in many.conn.execute(VERSIONS)] == [tuple(r) for r in one.conn.execute(VERSIONS)]
    if new_db.engine == "sqlite":
        assert [tuple(r) for r in many.conn.execute(BOXES)] == [tuple(r) for r in one.conn.execute(BOXES)]
        assert many.conn.execute("SELECT COUNT(*) FROM projection_guard").fetchone()[0] == 0
    assert many.verify(all_banks=True, deep=True)["ok"]
    one.close(), many.close()
    new_db.drop_all()


def test_bulk_refuses_mid_block_reads_and_rolls_back_whole(new_db):
    store = MemoryStore(new_db(), "alpha")
    kept = store.add("kept", at="2024-01-01")
    with pytest.raises(InvalidOperation, match="inside bulk"):
        with store.bulk():
            store.update(kept.memory_id, "changed", at="2024-01-02")
            store.replay()
    for what in (lambda s: s.search("kept"), lambda s: s.erase(kept.memory_id, reason="x"), lambda s: s.verify()):
        with pytest.raises(InvalidOperation, match="inside bulk"):
            with store.bulk():
                what(store)
    with pytest.raises(InvalidOperation, match="inside another"):
        with store.transaction():
            with store.bulk():
                pass
    # nothing of the failed blocks stayed, and the per-event trigger works again afterwards
    assert [e.op for e in store.events()] == ["ADD"]
    if new_db.engine == "sqlite":
        assert store.conn.execute("SELECT COUNT(*) FROM projection_guard").fetchone()[0] == 0
    store.update(kept.memory_id, "changed", at="2024-01-03")
    assert [m.text for m in store.replay()] == ["changed"]
    assert store.verify(deep=True)["ok"]


def test_a_schema_2_file_is_migrated(db_path):
    MemoryStore(db_path, "alpha").add("old", at="2024-01-01")
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("CREATE INDEX events_state_seq ON events (bank, memory_id, seq) "
                 "WHERE outcome = 'applied' AND op <> 'NOOP'")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    store = MemoryStore(db_path, "alpha", create=False)
    assert store.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "4"
    assert store.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events_state_seq'").fetchone() is None
    with store.bulk():
        store.add("new", at="2024-01-02")
    assert sorted(m.text for m in store.replay()) == ["new", "old"] and store.verify(deep=True)["ok"]


def test_bulk_refuses_to_close_a_version_the_projection_lost(db_path):
    """bulk() closes a memory's open version by the seq its state check saw; if the projection
    lost that version behind the store's back, the block is refused whole, not written askew."""
    store = MemoryStore(db_path, "alpha")
    kept = store.add("kept", at="2024-01-01")
    store.conn.execute("INSERT INTO projection_guard VALUES ('test')")  # lift the guard, as repair does
    store.conn.execute("UPDATE versions SET end_seq = 999 WHERE event_seq = ?", (kept.seq,))
    store.conn.execute("DELETE FROM projection_guard")
    before = store.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    with pytest.raises(StoreUnavailable, match="out of step"):
        with store.bulk():
            store.add("new", at="2024-01-02")
            store.update(kept.memory_id, "changed", at="2024-01-02")
    assert store.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == before
    assert not store.verify(deep=True)["ok"]


def test_a_schema_3_file_is_migrated_and_its_inputs_chained(db_path):
    """A file of schema 3 (no salts, no input chain): its rows keep their unsalted digests and
    unbound event hashes, its inputs are chained on the first writable open, and it verifies."""
    old = MemoryStore(db_path, "alpha")
    old.record_input("Alice", "I moved to Lyon", "2024-01-01", input_id="t1")
    old.add("Alice lives in Lyon", at="2024-01-01", source=["t1"])
    old.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER inputs_no_update")
    conn.execute("DROP INDEX inputs_bank_seq")
    for table, columns in (("events", ("salt", "inputs_head")), ("inputs", ("salt", "prev_hash", "hash"))):
        for column in columns:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    # schema 3's digests and hashes: unsalted, events not bound to inputs
    from memstore.chain import GENESIS, content_digest, event_hash
    from memstore.schema import EVENT_CONTENT, INPUT_CONTENT
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM inputs").fetchone())
    conn.execute("UPDATE inputs SET content_digest = ?", (content_digest(row[c] for c in INPUT_CONTENT),))
    row = dict(conn.execute("SELECT * FROM events").fetchone())
    row["content_digest"] = content_digest(row[c] for c in EVENT_CONTENT)
    conn.execute("UPDATE events SET content_digest = ?, hash = ?", (row["content_digest"], event_hash(GENESIS, row)))
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.close()
    store = MemoryStore(db_path, "alpha", create=False)
    assert store.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "4"
    assert store.verify(deep=True)["ok"]
    store.record_input("Alice", "and I like tea", "2024-01-02", input_id="t2")
    store.add("Alice likes tea", at="2024-01-02", source=["t2"])
    assert store.verify(deep=True)["ok"] and store.verify()["inputs_checked"] == 2
