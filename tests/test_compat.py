"""The mem0-compatible API: mem0's quickstart flow rewritten to import memstore, its return shapes,
scoping, what mem0 lacks (restore, as_of, why) and bad input leaving the file as it was."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from memstore import MemoryStore
from integrations.mem0 import Memory, scope_bank
from memstore.errors import BadInput, InvalidOperation, NotFound
from memstore.args import BANK_NAME

ROOT = Path(__file__).resolve().parents[1]

CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "I'm planning to watch a movie tonight. Any recommendations?"},
    {"role": "assistant", "content": "How about thriller movies? They can be quite engaging."},
    {"role": "user", "content": "I'm not a big fan of thriller movies but I love sci-fi movies."},
]


def test_scope_banks_are_one_to_one_and_valid():
    names = {
        scope_bank(user_id="alice"): "u:alice",
        scope_bank(agent_id="alice"): "a:alice",
        scope_bank(user_id="alice", agent_id="planner"): "u:alice.a:planner",
        scope_bank(user_id="alice", run_id="r-1"): "u:alice.r:r-1",
    }
    for got, want in names.items():
        assert got == want
    odd = [scope_bank(user_id="alice@example.com"), scope_bank(user_id="a.b"),
           scope_bank(user_id="x" * 80), scope_bank(user_id="a", agent_id="b.c"), scope_bank(user_id="a.b", agent_id="c")]
    assert all(b.startswith("h:") for b in odd) and len(set(odd)) == len(odd)
    assert all(BANK_NAME.fullmatch(b) for b in [*names, *odd])
    with pytest.raises(BadInput):
        scope_bank()
    with pytest.raises(BadInput):
        scope_bank(user_id="  ")
    with pytest.raises(BadInput, match="whitespace"):
        scope_bank(user_id="a b")


def test_mem0_quickstart_flow_without_inference(db_path):
    m = Memory(db_path)
    added = m.add(CHAT, user_id="alice", metadata={"category": "movies"}, infer=False, timestamp="2024-03-01T20:00")
    assert [r["event"] for r in added["results"]] == ["ADD", "ADD", "ADD"]  # the system message is skipped
    assert all(r["user_id"] == "alice" and r["metadata"] == {"category": "movies"} for r in added["results"])
    m.add("I play tennis on weekends", user_id="alice", infer=False, timestamp="2024-03-02")
    m.add("Bob's favourite film is Alien", user_id="bob", infer=False)

    hits = m.search("loves sci-fi movies", filters={"user_id": "alice"}, top_k=2)["results"]
    assert len(hits) == 2 and hits[0]["memory"] == CHAT[3]["content"] and hits[0]["score"] >= hits[1]["score"]
    assert set(hits[0]) >= {"id", "memory", "hash", "metadata", "score", "created_at", "updated_at", "user_id"}
    assert m.search("films", user_id="alice", limit=10)["results"][0]["user_id"] == "alice"  # mem0 1.x style
    assert all(h["memory"] != "Bob's favourite film is Alien" for h in m.search("films", user_id="alice")["results"])
    only_movies = m.search("sports", user_id="alice", filters={"category": "movies"}, threshold=0)["results"]
    assert len(only_movies) == 3 and all(h["metadata"]["category"] == "movies" for h in only_movies)
    tagged = m.get_all(filters={"user_id": "alice", "category": {"in": ["movies", "books"]}})["results"]
    assert len(tagged) == 3

    everything = m.get_all(user_id="alice")["results"]
    assert len(everything) == 4
    sci_fi = next(i for i in everything if "sci-fi" in i["memory"])
    assert m.get(sci_fi["id"])["memory"] == sci_fi["memory"]

    out = m.update(sci_fi["id"], text="Alice loves sci-fi and documentaries", metadata={"mood": "curious"})
    assert out["message"] == "Memory updated successfully!" and out["previous_memory"] == sci_fi["memory"]
    now = m.get(sci_fi["id"])
    assert now["memory"] == "Alice loves sci-fi and documentaries"
    assert now["metadata"] == {"category": "movies", "mood": "curious"} and now["created_at"] == sci_fi["created_at"]
    hist = m.history(sci_fi["id"])
    assert [h["event"] for h in hist] == ["ADD", "UPDATE"]
    assert hist[1]["old_memory"] == sci_fi["memory"] and hist[1]["new_memory"] == now["memory"]

    # as_of: the bank as it was before the update
    past = m.search("sci-fi", user_id="alice", as_of="2024-03-03", top_k=1)["results"][0]
    assert past["memory"] == sci_fi["memory"]

    assert m.delete(sci_fi["id"])["message"] == "Memory deleted successfully!"
    assert m.get(sci_fi["id"]) is None and len(m.get_all(user_id="alice")["results"]) == 3
    assert m.restore(sci_fi["id"])["memory"] == "Alice loves sci-fi and documentaries"
    assert [h["event"] for h in m.history(sci_fi["id"])] == ["ADD", "UPDATE", "DELETE", "RESTORE"]
    assert m.why(sci_fi["id"])["status"] == "live"

    assert m.delete_all(user_id="bob")["deleted"] == 1 and m.get_all(user_id="bob")["results"] == []
    assert m.reset() is None  # as mem0's
    assert MemoryStore(db_path, "u:alice", create=False).events()[-1].reason == "reset through the mem0-compatible API"
    assert m.get_all(user_id="alice")["results"] == []
    assert len(m.get_all(user_id="alice", as_of="2024-03-03")["results"]) == 4  # nothing lost: the past is intact
    assert m.restore(sci_fi["id"], user_id="alice")["memory"] == "Alice loves sci-fi and documentaries"
    m.close()
    store = MemoryStore(db_path, "u:alice", create=False)
    assert store.verify(all_banks=True)["ok"] and store.inputs()[0].meta["scope"] == {"user_id": "alice"}


def test_bad_input_is_one_clear_error_and_changes_nothing(db_path):
    m = Memory(db_path)
    kept = m.add("Alice likes tea", user_id="alice", infer=False)["results"][0]["id"]
    theirs = m.add("Bob likes coffee", user_id="bob", infer=False)["results"][0]["id"]
    size = len(MemoryStore(db_path, "u:alice").events()) + len(MemoryStore(db_path, "u:bob").events())
    bad = [
        (lambda: m.add([{"role": "user", "content": "ok"}, "not a message"], user_id="alice", infer=False), BadInput, "malformed"),
        (lambda: m.add([{"role": "robot", "content": "x"}], user_id="alice", infer=False), BadInput, "malformed"),
        (lambda: m.add([{"role": "user", "content": ""}], user_id="alice", infer=False), BadInput, "malformed"),
        (lambda: m.add([], user_id="alice", infer=False), BadInput, "messages"),
        (lambda: m.add("x", infer=False), BadInput, "user_id"),
        (lambda: m.add("x", user_id="alice", metadata=["x"], infer=False), BadInput, "metadata"),
        (lambda: m.add("x", user_id="alice", timestamp="soon", infer=False), BadInput, "timestamp"),
        (lambda: m.update("mdeadbeef00", text="x"), NotFound, "no memory"),
        (lambda: m.update(theirs, text="x", user_id="alice"), NotFound, "no memory"),  # another bank's id
        (lambda: m.delete(theirs, agent_id="alice"), NotFound, "no memory"),
        (lambda: m.history("mdeadbeef00"), NotFound, "no memory"),
        (lambda: m.update(kept, text=None), BadInput, "text or metadata"),
        (lambda: m.restore(kept), InvalidOperation, "not deleted"),
        (lambda: m.search("tea", user_id="alice", as_of="someday"), BadInput, "timestamp"),
        (lambda: m.search("tea", user_id="alice", filters={"x": {"between": 1}}), BadInput, "operator"),
        (lambda: m.search("tea", user_id="alice", top_k=-1), BadInput, "non-negative"),
        (lambda: m.search("tea", user_id="alice", filters={"user_id": "bob"}), BadInput, "twice"),
        (lambda: m.get_all(), BadInput, "user_id"),
        (lambda: m.delete_all(), BadInput, "user_id"),
    ]
    for fn, kind, words in bad:
        with pytest.raises(kind, match=words) as exc:
            fn()
        assert isinstance(exc.value, ValueError) and "\n" not in str(exc.value)
    assert m.get("mdeadbeef00") is None and m.get(theirs, user_id="alice") is None  # mem0: unknown id -> None
    m.close()
    after = len(MemoryStore(db_path, "u:alice").events()) + len(MemoryStore(db_path, "u:bob").events())
    assert after == size


@pytest.mark.integration
def test_readme_mem0_example_runs(tmp_path):
    """The README's mem0-style block, as written, with inference by the real default model."""
    block = re.search(r"<!-- mem0-compat -->\s*```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    assert "from integrations.mem0 import Memory" in block
    proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    events = next(line for line in lines if line.startswith("['ADD'"))
    assert events.endswith("'UPDATE', 'DELETE', 'RESTORE']"), lines  # the model may also have updated it
    assert (tmp_path / "agent.db").exists()


def test_mem0_2x_calls_run_unchanged(tmp_path):
    """A script written for mem0 2.x, only the import changed: its constructor, integer ids, search
    keywords and defaults, the filter language and the result shapes."""
    m = Memory.from_config({"vector_store": {"provider": "qdrant", "config": {"path": "/nowhere"}},
                            "embedder": {"provider": "huggingface"}, "history_db_path": str(tmp_path / "h.db")})
    assert Path(m.path) == tmp_path / "h.db"
    m.add("Likes pizza", user_id=42, metadata={"priority": 3, "category": "food, italian"}, infer=False)
    m.add("Runs on Sundays", user_id=42, metadata={"priority": 1, "category": "sport"}, infer=False)
    m.add("Has no metadata", user_id=42, infer=False)
    for _ in range(22):
        m.add("filler", user_id="many", infer=False)
    got = lambda **kw: sorted(i["memory"] for i in m.get_all(**kw)["results"])  # noqa: E731
    assert got(filters={"user_id": "42", "priority": {"gte": 2}}) == ["Likes pizza"]
    assert got(filters={"user_id": 42, "category": {"contains": "food"}}) == ["Likes pizza"]
    assert got(filters={"user_id": "42", "category": {"icontains": "SPORT"}}) == ["Runs on Sundays"]
    assert got(filters={"AND": [{"user_id": "42"}, {"category": "sport"}]}) == ["Runs on Sundays"]
    assert got(filters={"user_id": "42", "OR": [{"priority": 3}, {"priority": 1}]}) == ["Likes pizza", "Runs on Sundays"]
    assert got(filters={"user_id": "42", "NOT": [{"priority": {"lt": 2}}]}) == ["Has no metadata", "Likes pizza"]
    hits = m.search("pizza", filters={"user_id": "42"}, rerank=False, explain=False, show_expired=False)["results"]
    assert hits[0]["memory"] == "Likes pizza" and all(h["score"] >= 0.1 for h in hits)  # mem0's default threshold
    plain = next(i for i in m.get_all(filters={"user_id": "42"})["results"] if i["memory"] == "Has no metadata")
    assert plain["metadata"] is None and "bank" not in plain and plain["role"] == "user"  # as mem0's items
    assert len(m.get_all(filters={"user_id": "many"})["results"]) == 20  # mem0's default top_k
    assert m.reset() is None and m.get_all(filters={"user_id": "42"})["results"] == []
    with pytest.raises(BadInput, match="threshold"):
        m.search("x", user_id="42", threshold=2)
    with pytest.raises(BadInput, match="unknown config"):
        Memory.from_config({"vectorstore": {}})
    m.close()
