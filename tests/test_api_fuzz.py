"""No TypeError, AttributeError or other crash from the Python API: hypothesis calls the public
methods of MemoryStore with hostile values of any type (wrong types included: ints for times,
strings for lists, bools, floats, bytes, sets, objects, lone surrogates), and checks each call
either returns or raises one `memstore.errors` exception, whose message is one line, with the file
unchanged when it raises."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import dump
from memstore import MemoryStore
from memstore.errors import MemstoreError

EDGES = ["", " ", "@", "@-1", "@1", "@99999999999999999999999", "0", "-1", "nan", "2023-05-08", "2023-02-30",
         "0001-01-01T00:00+01:00", "alice\n", "m0000000000", "\ud800", "x" * 3000, "ADD", "delete", "🙂",
         f"1:{'0' * 64}", "'; DROP TABLE events; --"]
ANY = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([2**63, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(EDGES), st.text(max_size=20),
    st.binary(max_size=8), st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.text(max_size=4)), max_size=2),
    st.sampled_from([{1, 2}, ("t1",), object(), dt.date(2023, 5, 8), dt.datetime(2023, 5, 8, 12), {"k": {1}},
                     {1: "non-str key"}]))

# method -> names of the arguments hypothesis fills (positional first, then keywords)
METHODS = {
    "add": (["text"], ["at", "reason", "actor", "source", "cause"]),
    "update": (["memory_id", "text"], ["at", "reason", "source"]),
    "delete": (["memory_id"], ["at", "reason"]),
    "noop": (["memory_id"], ["at", "reason"]),
    "restore": (["memory_id"], ["at", "reason"]),
    "erase": (["memory_id"], ["with_sources"]),  # and its required reason=, below
    "apply": (["op", "memory_id", "text"], ["at", "reason"]),
    "record_input": (["speaker", "text", "time"], ["input_id", "session", "meta"]),
    "inputs": ([], ["ids"]),
    "replay": ([], ["as_of"]),
    "get": (["memory_id"], ["as_of"]),
    "events": ([], ["after_seq"]),
    "history": (["memory_id"], []),
    "why": (["memory_id"], []),
    "verify": ([], ["all_banks", "deep", "anchors"]),
    "search": (["query"], ["k", "as_of"]),
    "diff": (["other"], ["as_of"]),
    "with_bank": (["bank"], []),
}


@st.composite
def calls(draw, known):
    name = draw(st.sampled_from(sorted(METHODS)))
    positional, keywords = METHODS[name]
    value = st.one_of(ANY, st.sampled_from(known))
    args = [draw(value) for _ in positional]
    chosen = draw(st.lists(st.sampled_from(keywords), unique=True)) if keywords else []
    kwargs = {k: draw(value) for k in chosen + (["reason"] if name == "erase" else [])}
    return name, args, kwargs


def test_no_type_error_from_any_python_api_call(tmp_path):
    db = tmp_path / "api.db"
    store = MemoryStore(db, "default")
    live = store.add("Alice lives in Boston", at="2023-05-08").memory_id
    gone = store.add("Alice has a cat", at="2023-05-08").memory_id
    store.delete(gone, at="2023-06-01")
    store.record_input("Alice", "hello", "2023-05-08", input_id="t1")
    MemoryStore(db, "other").add("Bob likes chess", at="2023-05-01")
    known = [live, gone, "t1", ["t1"], "other", "2023-05-08", "@2", 2, [f"1:{'0' * 64}"], "ADD", "NOOP"]

    @settings(max_examples=400, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(calls(known))
    def check(call):
        name, args, kwargs = call
        before = dump(db)
        try:
            out = getattr(store, name)(*args, **kwargs)
        except MemstoreError as exc:
            assert str(exc) and "\n" not in str(exc), (name, args, kwargs, str(exc))
            assert dump(db) == before, f"{name}{args}{kwargs} failed but changed the file"
        else:
            if name == "with_bank":
                out.close()

    check()
    assert store.verify(all_banks=True, deep=True)["ok"]
