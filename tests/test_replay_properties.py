"""Property tests: the SQL projections equal a reference fold of the model's own log, at every
prefix and every time cutoff; replay is deterministic; banks never leak; restore round-trips.
On both engines (SQLite and PostgreSQL), the same machine."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from memstore import InvalidOperation, MemoryStore, NotFound
from memstore.clock import to_stamp

BANKS = ("alpha", "beta")
DAY = st.integers(min_value=0, max_value=40)
CHARS = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))  # what the API refuses


def day(n: int) -> str:
    return to_stamp(datetime(2024, 1, 1, 12) + timedelta(days=n))


def reference_fold(log: list[dict], bank: str, *, seq: int | None = None, time: str | None = None) -> set:
    """The obvious definition: replay the events in order and keep the last state per memory."""
    state: dict[str, tuple] = {}
    for ev in log:
        if ev["bank"] != bank or (seq is not None and ev["seq"] > seq) or (time is not None and ev["valid_at"] > time):
            continue
        state[ev["memory_id"]] = (ev["op"], ev["text"], ev["valid_at"])
    return {(m, t, v) for m, (op, t, v) in state.items() if op in ("ADD", "UPDATE", "RESTORE")}


class ReplayMachine(RuleBasedStateMachine):
    databases = None  # the new_db factory of the engine under test

    @initialize()
    def setup(self):
        self.path = self.databases()
        self.stores = {b: MemoryStore(self.path, b) for b in BANKS}
        self.log: list[dict] = []  # the model's record of state-changing events
        self.mems: dict[str, dict] = {}  # memory_id -> {bank, op, text, valid_at}

    def teardown(self):
        for s in getattr(self, "stores", {}).values():
            s.close()
        if hasattr(self, "path"):
            self.databases.drop(self.path)

    def _record(self, bank, ev, op, text):
        self.log.append({"seq": ev.seq, "bank": bank, "memory_id": ev.memory_id, "op": op,
                         "text": text, "valid_at": ev.valid_at})
        self.mems[ev.memory_id] = {"bank": bank, "op": op, "text": text, "valid_at": ev.valid_at}

    def _pick(self, data, ops):
        ids = [m for m, v in self.mems.items() if v["op"] in ops]  # creation order: ids are random
        return data.draw(st.sampled_from(ids)) if ids else None

    @rule(bank=st.sampled_from(BANKS), text=st.text(CHARS, min_size=1, max_size=12).filter(str.strip), d=DAY)
    def add(self, bank, text, d):
        ev = self.stores[bank].add(text, at=day(d))
        self._record(bank, ev, "ADD", text.strip())

    @rule(data=st.data(), text=st.text(CHARS, min_size=1, max_size=12).filter(str.strip), d=DAY)
    def update(self, data, text, d):
        mid = self._pick(data, ("ADD", "UPDATE", "RESTORE"))
        if mid is None:
            return
        m = self.mems[mid]
        if day(d) < m["valid_at"]:
            try:
                self.stores[m["bank"]].update(mid, text, at=day(d))
                raise AssertionError("an update observed before the last change must be refused")
            except InvalidOperation:
                return
        ev = self.stores[m["bank"]].update(mid, text, at=day(d))
        self._record(m["bank"], ev, "UPDATE", text.strip())

    @rule(data=st.data(), d=DAY)
    def delete(self, data, d):
        mid = self._pick(data, ("ADD", "UPDATE", "RESTORE"))
        if mid is None or day(d) < self.mems[mid]["valid_at"]:
            return
        m = self.mems[mid]
        ev = self.stores[m["bank"]].delete(mid, at=day(d), reason="test")
        self._record(m["bank"], ev, "DELETE", None)

    @rule(data=st.data(), d=DAY)
    def restore(self, data, d):
        mid = self._pick(data, ("DELETE",))
        if mid is None or day(d) < self.mems[mid]["valid_at"]:
            return
        m = self.mems[mid]
        before = [e for e in self.log if e["memory_id"] == mid and e["op"] != "DELETE"][-1]["text"]
        ev = self.stores[m["bank"]].restore(mid, at=day(d))
        assert ev.text == before, "restore brings back the text the deletion removed"
        self._record(m["bank"], ev, "RESTORE", before)

    @rule(data=st.data())
    def refused_ops_change_nothing(self, data):
        mid = self._pick(data, ("DELETE",))
        if mid is None:
            return
        m = self.mems[mid]
        other = [b for b in BANKS if b != m["bank"]][0]
        before = self.stores[m["bank"]].replay()
        ev = self.stores[m["bank"]].apply("UPDATE", mid, "zombie", at=day(40))
        assert ev.outcome == "refused"
        try:
            self.stores[other].update(mid, "leak", at=day(40))
            raise AssertionError("a memory id must not be reachable from another bank")
        except NotFound:
            pass
        assert self.stores[m["bank"]].replay() == before

    @rule(bank=st.sampled_from(BANKS), text=st.text(CHARS, min_size=1, max_size=8).filter(str.strip))
    def noop(self, bank, text):
        self.stores[bank].noop(at=day(0), reason="nothing new", cause={"fact": text})

    @invariant()
    def projections_equal_reference_fold(self):
        if not hasattr(self, "log"):
            return
        seqs = sorted({e["seq"] for e in self.log})
        times = sorted({e["valid_at"] for e in self.log})
        for bank, store in self.stores.items():
            got = lambda ms: {(m.id, m.text, m.valid_at) for m in ms}
            assert got(store.replay()) == reference_fold(self.log, bank)
            for s in [0] + seqs:
                assert got(store.replay(f"@{s}")) == reference_fold(self.log, bank, seq=s)
            for t in times:
                assert got(store.replay(t)) == reference_fold(self.log, bank, time=t)
            ids = {m.id for m in store.replay()}
            assert all(self.mems[i]["bank"] == bank for i in ids), "banks must never leak"

    @invariant()
    def replay_is_deterministic(self):
        if not hasattr(self, "log") or not self.log:
            return
        fresh = MemoryStore(self.path, BANKS[0], create=False)
        try:
            assert fresh.replay() == self.stores[BANKS[0]].replay() == fresh.replay()
            assert fresh.verify(all_banks=True)["ok"]
        finally:
            fresh.close()


def test_projections_equal_the_reference_fold(new_db):
    machine = type("Machine", (ReplayMachine,), {"databases": new_db})
    run_state_machine_as_test(machine, settings=settings(max_examples=100, stateful_step_count=30, deadline=None,
                                                         suppress_health_check=[HealthCheck.too_slow]))
