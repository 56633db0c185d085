"""A streaming hot standby of the PostgreSQL engine answers as the primary does (replay as of
any time or seq, search, why, verify) once caught up, refuses writes in one line, and after a
failover (the primary killed, the standby promoted) holds every write that was acknowledged under
synchronous replication, and goes on."""

from __future__ import annotations

import time

import pytest

from memstore import MemoryStore
from memstore.errors import StoreUnavailable


def caught_up(primary, standby, timeout: float = 30.0) -> None:
    target = primary.sql("SELECT pg_current_wal_lsn()")[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if standby.sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")[0]:
            return
        time.sleep(0.05)
    raise AssertionError("the standby did not catch up")


@pytest.fixture
def pair(pg_cluster):
    from pg_cluster import Cluster
    # synchronous_commit=on with a synchronous standby: a commit returns once the standby has it on disk
    primary = Cluster(settings={"synchronous_standby_names": "'*'", "synchronous_commit": "on"}).init().start()
    standby = primary.standby(settings={"synchronous_standby_names": "''"})
    try:
        yield primary, standby
    finally:
        standby.remove()
        primary.remove()


def test_the_standby_answers_as_the_primary_and_a_failover_loses_nothing(pair):
    primary, standby = pair
    primary.sql("CREATE DATABASE team")
    assert primary.sql("SELECT sync_state FROM pg_stat_replication")[0] == "sync"  # commits wait for the standby
    url, replica_url = primary.url("team"), standby.url("team")
    writer = MemoryStore(url, "alice")
    ids, acknowledged = [], 0
    for i in range(60):
        if i % 4 == 3:
            writer.update(ids[-1], f"Alice's fact {i} revised", at=f"2023-02-{1 + i % 28:02d}")
        else:
            ids.append(writer.add(f"Alice's fact {i} about topic {i % 7}", at=f"2023-01-{1 + i % 28:02d}").memory_id)
        acknowledged += 1
    writer.delete(ids[0], at="2023-03-01")
    writer.with_bank("bob").add("Bob plays chess", at="2023-01-05")
    caught_up(primary, standby)

    reader = MemoryStore(replica_url, "alice", create=False)
    for cut in (None, "2023-01-10", "2023-02-15", "@7", "@40"):
        assert reader.replay(cut) == writer.replay(cut)
    assert reader.why(ids[1]) == writer.why(ids[1]) and reader.why(ids[0]) == writer.why(ids[0])
    assert [h.to_dict() for h in reader.search("topic 3", k=5)] == [h.to_dict() for h in writer.search("topic 3", k=5)]
    assert reader.verify(all_banks=True, deep=True) == writer.verify(all_banks=True, deep=True)
    assert reader.head() == writer.head()
    with pytest.raises(StoreUnavailable, match="read-only replica"):
        reader.add("a write on the standby")

    # failover: the primary dies without a clean shutdown, the standby is promoted
    head = writer.head()
    writer.close(), reader.close()
    primary.stop(mode="immediate")
    standby.promote()
    promoted = MemoryStore(replica_url, "alice", create=False)
    assert promoted.head() == head                      # every acknowledged write is there
    assert len([e for e in promoted.events() if e.op in ("ADD", "UPDATE")]) == acknowledged
    promoted.add("written after the failover", at="2023-04-01")
    assert promoted.verify(all_banks=True, deep=True, anchors=[head["anchor"]])["ok"]
    promoted.close()
