"""The PostgreSQL engine beside the SQLite one: its guards refuse what SQLite's refuse, an attacker
who turns the triggers off is caught by `verify` as on SQLite, and `migrate` copies a LoCoMo-sized
history between the engines, chain and all, with equal heads. (The replay properties, bulk and
search tests run on both engines through the `new_db` fixture.)"""

from __future__ import annotations

import psycopg
import pytest

from conftest import memstore_cli
from memstore import MemoryStore
from memstore.migrate import migrate

KEY = "correct horse battery staple"


def history(target, n_turns: int = 700, key=None) -> MemoryStore:
    """A LoCoMo-sized bank (700 turns, 700 events) and a second bank, with deletes, restores, an erasure."""
    store = MemoryStore(target, "conv", key=key)
    ids = []
    with store.bulk():
        for i in range(n_turns):
            at = f"2023-{1 + i // 60:02d}-{1 + i % 28:02d}T10:{i % 60:02d}"
            store.record_input("Caroline" if i % 2 else "Melanie", f"turn {i} about topic {i % 37}", at,
                               input_id=f"t{i}", session=f"s{i // 20}")
            if i % 2 == 0:
                ids.append(store.add(f"fact {i}", at=at, source=[f"t{i}"], cause={"fact": f"fact {i}"}).memory_id)
            elif i % 5 == 0:
                store.update(ids[-1], f"fact {i} revised", at=at, source=[f"t{i}"])
            elif i % 7 == 0:
                store.delete(ids[-1], at=at, reason="contradicted")
            else:
                store.noop(at=at, reason="nothing new")
    store.erase(ids[3], reason="asked to forget", with_sources=True)
    MemoryStore(target, "other", key=key).add("Bob likes chess", at="2023-01-01")
    return store


@pytest.fixture
def pg_db(pg_cluster):
    return pg_cluster.new_database()


def test_the_guards_refuse_edits_on_postgres(pg_db):
    store = history(pg_db, n_turns=40)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        for sql in ["UPDATE events SET text = 'forged' WHERE seq = 1", "DELETE FROM events WHERE seq = 1",
                    "TRUNCATE events CASCADE", "UPDATE inputs SET text = 'x'", "DELETE FROM inputs",
                    "UPDATE events SET erased = 1, text = NULL, prev_text = NULL, reason = NULL, cause = NULL, "
                    "salt = NULL WHERE seq = 1",
                    "DELETE FROM versions", "INSERT INTO versions (event_seq, bank, memory_id, start_valid, op, actor) "
                                            "VALUES (99999, 'conv', 'm', '2023', 'ADD', 'x')"]:
            with pytest.raises(psycopg.errors.RestrictViolation, match="append-only|derived"):
                conn.execute(sql)
    assert store.verify(all_banks=True, deep=True)["ok"]


@pytest.mark.parametrize("attack", [
    "UPDATE events SET text = 'forged' WHERE seq = 3",
    "UPDATE inputs SET time = '2020-01-01T00:00:00.000000Z' WHERE input_id = 't1'",
    "DELETE FROM inputs WHERE input_id = 't2'",
    "DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events WHERE bank = 'conv')",
    "UPDATE versions SET text = 'forged' WHERE event_seq = 1",
])
def test_verify_catches_an_attacker_with_the_triggers_off(pg_db, attack):
    store = history(pg_db, n_turns=40, key=KEY)
    anchor = store.head()["anchor"]
    assert store.verify(all_banks=True, deep=True, anchors=[anchor])["ok"]
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # a superuser's way around every trigger
        conn.execute(attack)
    out = store.verify(all_banks=True, deep=True, anchors=[anchor])
    assert not out["ok"], out


def test_migrate_round_trips_a_locomo_sized_history(tmp_path, pg_cluster):
    source = tmp_path / "source.db"
    store = history(source)
    heads = {b: store.with_bank(b).head()["anchor"] for b in store.banks()}
    to_pg = migrate(source, pg_cluster.new_database("m"))
    assert to_pg["verified"] and to_pg["events"] > 700 and to_pg["inputs"] == 700
    assert {b: h for b, h in to_pg["banks"].items()} == heads
    pg_url = to_pg["target"]
    on_pg = MemoryStore(pg_url, "conv", create=False)
    assert on_pg.replay() == store.replay() and on_pg.replay("2023-05-01") == store.replay("2023-05-01")
    assert on_pg.replay("@500") == store.replay("@500") and on_pg.why(store.replay()[0].id) == store.why(store.replay()[0].id)
    # the copy goes on where the source stopped, and comes back to SQLite with the same heads
    proc = memstore_cli("migrate", pg_url, str(tmp_path / "back.db"), "--json")
    assert proc.returncode == 0, proc.stderr
    back = MemoryStore(tmp_path / "back.db", "conv", create=False)
    assert {b: back.with_bank(b).head()["anchor"] for b in back.banks()} == heads
    assert back.verify(all_banks=True, deep=True)["ok"]
    on_pg.add("a new fact after the move", at="2024-01-01")
    assert on_pg.verify(all_banks=True)["ok"] and on_pg.head()["seq"] > int(heads["conv"].split(":")[0])
    # into a database that holds banks: refused, in one line
    proc = memstore_cli("migrate", str(source), pg_url)
    assert proc.returncode != 0 and "already holds banks" in proc.stderr and "Traceback" not in proc.stderr


def test_stats_and_parquet_export_read_postgres(pg_db, tmp_path):
    store = history(pg_db, n_turns=40)
    assert store.stats()["events"] == len(store.events()) and store.stats()["inputs"] == 40
    out = store.export_parquet(tmp_path / "pq")
    assert out["events"]["rows"] == len(store.events()) and out["bank"]["rows"] == len(store.replay())


def test_a_dropped_trigger_is_reported_and_repair_puts_it_back_on_postgres(pg_db):
    store = history(pg_db, n_turns=40)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("DROP TRIGGER events_no_delete ON events")
        out = store.verify(all_banks=True)
        assert not out["ok"] and "events_no_delete is missing" in out["problem"]
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM versions WHERE event_seq = (SELECT MIN(event_seq) FROM versions)")
    out = store.verify(all_banks=True)
    assert not out["ok"] and "projection" in out["problem"]
    store.repair()
    assert store.verify(all_banks=True, deep=True)["ok"]
    with psycopg.connect(pg_db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
            conn.execute("DELETE FROM events")
    proc = memstore_cli("--bank", "conv", "verify", "--all-banks", db=pg_db)
    assert proc.returncode == 0, proc.stdout + proc.stderr
