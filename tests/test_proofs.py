"""What `verify`, `erase` and the scopes promise, each tried the way an attacker with write access
to the file would try to break it (a plain sqlite3 connection, triggers dropped where that is what
it takes, the attacker's tracks covered where that is possible): anchors that name nothing checked,
recorded inputs rewritten, erased text guessed back from its digests, erased vectors saved again by
a process that had the bank open, and scope ids folded into another user's bank."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import hnswlib
import numpy as np
import pytest

from conftest import memstore_cli
from memstore import MemoryStore
from memstore.chain import GENESIS, content_digest
from integrations.mem0 import Memory, scope_bank
from memstore.errors import BadInput, StoreUnavailable
from memstore.schema import EVENT_CONTENT, INPUT_CONTENT, ddl_statements

KEY = "correct horse battery staple"
NOWHERE = "999:" + "0" * 64


def attacker(path: Path, *drop: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for trigger in drop:
        conn.execute(f"DROP TRIGGER {trigger}")
    return conn


def cover_tracks(conn: sqlite3.Connection) -> None:
    for statement in ddl_statements():
        conn.execute(statement)
    conn.close()


@pytest.mark.parametrize("keyed", [False, True])
def test_an_anchor_that_names_no_checked_event_fails(tmp_path, monkeypatch, keyed):
    if keyed:
        monkeypatch.setenv("MEMSTORE_KEY", KEY)
    db = tmp_path / "f.db"
    assert memstore_cli("init", db=db).returncode == 0
    assert memstore_cli("--bank", "alice", "add", "x", db=db).returncode == 0
    # the default bank has no events; --all-banks walks alice's, where no seq 999 exists
    proc = memstore_cli("verify", "--all-banks", "--anchor", NOWHERE, db=db)
    assert proc.returncode == 1 and "anchor 999" in proc.stdout and "hold" not in proc.stdout, proc.stdout
    assert not MemoryStore(db, "default").verify(all_banks=True, anchors=[NOWHERE])["ok"]

    # every event of alice deleted behind the store's back: her real head no longer holds
    alice = MemoryStore(db, "alice")
    alice.add("Alice likes tea")
    head = alice.head()["anchor"]
    assert alice.verify(all_banks=True, anchors=[head])["ok"]
    conn = attacker(db, "events_no_delete", *[f"versions_guard_{a}" for a in ("delete",)])
    conn.execute("DELETE FROM versions WHERE bank = 'alice'")
    conn.execute("DELETE FROM events WHERE bank = 'alice'")
    cover_tracks(conn)
    out = MemoryStore(db, "default").verify(all_banks=True, anchors=[head])
    assert not out["ok"] and f"anchor {head.split(':')[0]}" in out["problem"]
    proc = memstore_cli("verify", "--all-banks", "--deep", "--anchor", head, db=db)
    assert proc.returncode == 1 and "hold" not in proc.stdout


def keyed_history(path: Path) -> tuple[MemoryStore, str]:
    store = MemoryStore(path, "alice", key=KEY)
    store.record_input("Alice", "I moved to Lyon last week", "2023-05-08T10:00", input_id="t1", session="s1")
    store.add("Alice lives in Lyon", at="2023-05-08T10:00", source=["t1"])
    store.record_input("Alice", "My dog is called Rex", "2023-05-09T10:00", input_id="t2", session="s1")
    store.add("Alice has a dog named Rex", at="2023-05-09T10:00", source=["t2"])
    MemoryStore(path, "bob", key=KEY).add("Bob likes chess")
    return store, store.head()["anchor"]


@pytest.mark.parametrize("attack", [
    "UPDATE inputs SET time = '2020-01-01T00:00:00.000000Z' WHERE input_id = 't1'",
    "UPDATE inputs SET session = 's9' WHERE input_id = 't1'",
    "UPDATE inputs SET recorded_at = '2020-01-01T00:00:00.000000Z' WHERE input_id = 't2'",
    "UPDATE inputs SET bank = 'bob' WHERE input_id = 't2'",
    "UPDATE inputs SET bank = 'bob' WHERE input_id = 't1'",
    "DELETE FROM inputs WHERE input_id = 't2'",
    "DELETE FROM inputs WHERE input_id = 't1'",
    "DELETE FROM inputs WHERE bank = 'alice'",
])
def test_recorded_inputs_are_inside_the_proof(tmp_path, attack):
    """Every column of an input that `why` shows is under the keyed chain: changed, moved to
    another bank or removed, `verify --deep --all-banks --anchor` fails."""
    store, anchor = keyed_history(tmp_path / "k.db")
    assert store.verify(all_banks=True, deep=True, anchors=[anchor])["ok"]
    conn = attacker(tmp_path / "k.db", "inputs_no_update", "inputs_no_delete")
    conn.execute(attack)
    cover_tracks(conn)
    out = store.verify(all_banks=True, deep=True, anchors=[anchor])
    assert not out["ok"], out
    proc = memstore_cli("--bank", "alice", "verify", "--all-banks", "--deep", "--anchor", anchor,
                        db=tmp_path / "k.db", env={"MEMSTORE_KEY": KEY})
    assert proc.returncode == 1


def test_erased_text_cannot_be_guessed_back_from_its_digests(tmp_path):
    """After erase, the digests left in the log (events and inputs, keyed file or not) match no
    guess of the text: the salt that went into them was purged with it."""
    for key in (None, KEY):
        path = tmp_path / f"{bool(key)}.db"
        store = MemoryStore(path, "alice", key=key)
        said = "Alice's bank PIN is 4821, keep it safe"
        store.record_input("Alice", said, "2023-05-08", input_id="t1")
        pin = store.add("Alice's bank PIN is 4821", at="2023-05-08", source=["t1"])
        store.erase(pin.memory_id, reason="privacy request", with_sources=True)
        left = {r[0] for r in store.conn.execute("SELECT content_digest FROM events WHERE erased = 1 "
                                                 "UNION SELECT content_digest FROM inputs WHERE erased = 1")}
        assert len(left) == 2
        keys = [None] + ([key.encode()] if key else [])
        found = []
        for guess in range(10_000):
            text = f"Alice's bank PIN is {guess:04d}"
            for k in keys:
                if content_digest([text, None, None, None], k) in left:
                    found.append(guess)
                if content_digest(["Alice", f"{text}, keep it safe", None], k) in left:
                    found.append(guess)
        assert found == []
        assert store.conn.execute("SELECT COUNT(*) FROM events WHERE salt IS NOT NULL AND erased = 1").fetchone()[0] == 0
        assert store.verify(deep=True)["ok"]
        store.close()


def _saved_labels_and_best_cosine(path: Path, bank: str, vector: np.ndarray) -> tuple[set[int], float]:
    index_files = list(path.parent.glob(f"{path.name}.{bank}.*.hnsw"))
    if not index_files:
        return set(), 0.0
    index = hnswlib.Index(space="cosine", dim=len(vector))
    index.load_index(str(index_files[0]))
    labels = index.get_ids_list()
    if not labels:
        return set(), 0.0
    items = np.asarray(index.get_items(labels))
    return set(labels), float(max(items @ vector))


def test_a_process_with_the_bank_open_does_not_save_erased_vectors_back(tmp_path):
    path = tmp_path / "v.db"
    early = MemoryStore(path, "alice")
    secret = early.add("Alice's bank PIN is 4821")
    early.add("Alice likes tea")
    assert early.search("PIN", k=1)[0].text == "Alice's bank PIN is 4821"  # its view holds the vector
    early.vector_view().unsaved = 1  # as after a search that indexed something new

    eraser = MemoryStore(path, "alice")
    eraser.erase(secret.memory_id, reason="privacy request")
    eraser.close()
    vector = early.vector_view().embedder.inner.embed(["Alice's bank PIN is 4821"])[0]
    early.close()  # before: re-saved the index with the erased label, erasures 0 in its metadata
    labels, cosine = _saved_labels_and_best_cosine(path, "alice", vector)
    assert secret.seq not in labels and cosine < 0.99

    reopened = MemoryStore(path, "alice")
    assert [h.text for h in reopened.search("PIN", k=5)] == ["Alice likes tea"]
    reopened.close()
    labels, cosine = _saved_labels_and_best_cosine(path, "alice", vector)
    assert secret.seq not in labels and cosine < 0.99


@pytest.mark.parametrize("other", [" alice", "alice\n", "\talice ", "alice ", "ALICE"])
def test_scope_ids_are_never_folded_into_another_users(tmp_path, other):
    memory = Memory(tmp_path / "c.db")
    memory.add("Alice's bank PIN is 4821", user_id="alice", infer=False)
    if other.strip() != other:  # refused outright: never folded into "alice"
        for call in (lambda: scope_bank(user_id=other), lambda: memory.get_all(user_id=other),
                     lambda: memory.search("PIN", user_id=other), lambda: memory.add("x", user_id=other, infer=False)):
            with pytest.raises(BadInput, match="whitespace"):
                call()
    else:
        assert scope_bank(user_id=other) != scope_bank(user_id="alice")
        assert memory.get_all(user_id=other)["results"] == []
        assert memory.search("PIN", user_id=other)["results"] == []
        memory.add("something else", user_id=other, infer=False)
    assert [m["memory"] for m in memory.get_all(user_id="alice")["results"]] == ["Alice's bank PIN is 4821"]


def test_dropped_protection_triggers_are_reported_and_repair_puts_them_back(db_path):
    store = MemoryStore(db_path, "alice")
    store.add("Alice likes tea")
    attacker(db_path, "events_no_update").close()
    out = store.verify()
    assert not out["ok"] and "events_no_update" in out["problem"]
    proc = memstore_cli("--bank", "alice", "verify", db=db_path)
    assert proc.returncode == 1 and "events_no_update" in proc.stdout
    store.repair()
    assert store.verify(deep=True)["ok"]
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        attacker(db_path).execute("UPDATE events SET text = 'Alice likes coffee'")


def test_a_keyed_file_stripped_of_its_key_is_refused_by_whoever_holds_the_key(db_path, monkeypatch):
    """A keyed file whose key id is deleted and chain recomputed by hand looks unkeyed; without
    an anchor or the key nothing in the file can tell. Whoever verifies with the key is told."""
    store, anchor = keyed_history(db_path)
    store.close()
    conn = attacker(db_path, "events_no_update", "inputs_no_update", "versions_guard_update")
    conn.execute("DELETE FROM meta WHERE key = 'chain_key_id'")
    conn.row_factory = sqlite3.Row
    from memstore.chain import event_hash, input_hash
    for bank in ("alice", "bob"):  # the whole chain recomputed with plain hashes
        tail, renamed = GENESIS, {GENESIS: GENESIS}
        for row in conn.execute("SELECT * FROM inputs WHERE bank = ? ORDER BY seq", (bank,)).fetchall():
            row = dict(row)
            row["content_digest"] = content_digest((row[c] for c in INPUT_CONTENT), None, row["salt"])
            prev, tail = tail, input_hash(tail, row)
            renamed[row["hash"]] = tail
            conn.execute("UPDATE inputs SET content_digest = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                         (row["content_digest"], prev, tail, row["seq"]))
        tail = GENESIS
        for row in conn.execute("SELECT * FROM events WHERE bank = ? ORDER BY seq", (bank,)).fetchall():
            row = dict(row)
            row["inputs_head"] = renamed[row["inputs_head"]]
            row["hash"] = event_hash(tail, row)
            conn.execute("UPDATE events SET inputs_head = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                         (row["inputs_head"], tail, row["hash"], row["seq"]))
            tail = row["hash"]
    cover_tracks(conn)
    monkeypatch.delenv("MEMSTORE_KEY", raising=False)
    stripped = MemoryStore(db_path, "alice")
    assert stripped.verify(all_banks=True)["ok"] and not stripped.keyed  # nothing in the file tells
    assert not stripped.verify(anchors=[anchor])["ok"]  # the anchor kept elsewhere does
    stripped.close()
    proc = memstore_cli("--bank", "alice", "verify", db=db_path, env={"MEMSTORE_KEY": KEY})
    assert proc.returncode == 1 and "key id" in proc.stderr, proc.stderr


KILL_AFTER_ERASE = textwrap.dedent("""
    import os, sys
    from memstore import MemoryStore
    store = MemoryStore(sys.argv[1], "alice", create=False)
    assert store.search("PIN", k=1)
    store.vector_view().save()
    store._rewrite_index = lambda: os._exit(9)   # killed right after the erasure committed
    secret = [m for m in store.replay() if "PIN" in m.text][0]
    store.erase(secret.id, reason="privacy request", with_sources=True)
""")


def test_a_kill_after_erase_commits_is_finished_by_the_next_open(tmp_path):
    path = tmp_path / "e.db"
    store = MemoryStore(path, "alice")
    store.record_input("Alice", "my PIN is 4821, do not tell", "2023-05-01", input_id="t1")
    store.add("Alice's bank PIN is 4821", at="2023-05-01", source=["t1"])
    store.add("Alice likes tea", at="2023-05-02")
    assert store.search("PIN", k=1)
    store.close()
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_ERASE, str(path)], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert any(p.name.endswith(".hnsw") for p in tmp_path.iterdir())  # the index still has the vector
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'pending_erase:%'").fetchone()[0] == 1
    conn.close()
    MemoryStore(path, "bob").close()  # any open of the file, any bank, finishes the erasure
    for p in tmp_path.iterdir():
        data = p.read_bytes()
        assert b"do not tell" not in data and b"PIN is 4821" not in data, p
    after = MemoryStore(path, "alice")
    assert after.verify(deep=True)["ok"] and [h.text for h in after.search("PIN", k=5)] == ["Alice likes tea"]


def test_wrong_types_in_the_python_api_are_one_memstore_error(db_path):
    from memstore.errors import MemstoreError
    store = MemoryStore(db_path, "alice")
    m = store.add("Alice likes tea", at="2023-05-01")
    calls = [lambda: store.add("x", at=5), lambda: store.replay(True), lambda: store.search("tea", k=1.5),
             lambda: store.add("x", source="abc"), lambda: store.add("x", reason=3),
             lambda: store.update(5, "x"), lambda: store.get(None), lambda: store.events("0"),
             lambda: store.record_input("A", "x", "2023-05-01", meta=[1]), lambda: store.inputs(5),
             lambda: store.add("x", cause={1, 2}), lambda: store.history(3)]
    for call in calls:
        with pytest.raises(MemstoreError):
            call()
    assert [e.memory_id for e in store.events()] == [m.memory_id]
