"""The hnswlib view: as-of search equals exact search over the as-of bank, survives a crash
mid-catch-up, never crosses banks, and never embeds the same text twice. Real MiniLM embeddings.
The as-of and bank tests run on both engines."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memstore import MemoryStore
from memstore.clock import to_stamp
from memstore.embed import default_embedder

WORDS = ["dog", "cat", "Boston", "Denver", "tea", "coffee", "guitar", "painting", "sister", "vegan",
         "marathon", "job", "school", "camping", "book", "piano", "garden", "beach", "cooking", "yoga"]
SUBJECTS = ["Caroline", "Melanie", "Jon", "Gina"]


@pytest.fixture(scope="module")
def embedder():
    return default_embedder()


def sentence(draw_ints) -> str:
    s, a, b = draw_ints
    return f"{SUBJECTS[s]} talked about {WORDS[a]} and {WORDS[b]}"


def exact(store: MemoryStore, embedder, query: str, k: int, as_of):
    bank = store.replay(as_of)
    if not bank:
        return [], np.zeros(0)
    vectors = embedder.embed([m.text for m in bank])
    q = embedder.embed([query])[0]
    scores = vectors @ q
    order = np.argsort(-scores, kind="stable")[:k]
    return [(bank[i].id, float(scores[i])) for i in order], scores


def same_ranking(got, expected):
    want, all_scores = expected
    assert len(got) == len(want)
    assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-4)
    # ids must match wherever the score is not tied with another alive memory (same text twice)
    for (gid, gs), (wid, ws) in zip(got, want):
        if np.sum(np.abs(all_scores - ws) < 1e-4) == 1:
            assert gid == wid


OPS = st.lists(st.tuples(st.sampled_from(["add", "add", "update", "delete"]),
                         st.tuples(st.integers(0, 3), st.integers(0, 19), st.integers(0, 19)),
                         st.integers(0, 30), st.integers(0, 10_000)), min_size=1, max_size=25)


def apply(store: MemoryStore, ops) -> datetime:
    """Run generated ops on the store, each memory's changes in time order; returns day 0."""
    base = datetime(2023, 1, 1)
    live: list[str] = []
    last = {}
    for op, words, day, pick in ops:
        at = base + timedelta(days=day)
        if op == "add" or not live:
            live.append(store.add(sentence(words), at=at).memory_id)
            last[live[-1]] = at
            continue
        mid = live[pick % len(live)]
        at = max(at, last[mid])
        last[mid] = at
        if op == "update":
            store.update(mid, sentence(words), at=at)
        else:
            store.delete(mid, at=at)
            live.remove(mid)
    return base


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, query=st.tuples(st.integers(0, 3), st.integers(0, 19), st.integers(0, 19)),
       cut=st.integers(0, 32), k=st.integers(1, 6), hnsw=st.booleans())
def test_as_of_search_equals_exact_search(new_db, embedder, ops, query, cut, k, hnsw):
    store = MemoryStore(new_db(), "a", embedder=embedder)
    base = apply(store, ops)
    view = store.vector_view()
    view.exact_below = 0 if hnsw else 10**9  # exercise both search paths
    q = sentence(query)
    for as_of in [None, to_stamp(base + timedelta(days=cut)), f"@{cut}"]:
        got = [(h.id, h.score) for h in store.search(q, k=k, as_of=as_of)]
        same_ranking(got, exact(store, embedder, q, k, as_of))
    store.close()
    new_db.drop_all()


def test_banks_never_leak(new_db, embedder):
    db = new_db()
    a = MemoryStore(db, "alice", embedder=embedder)
    b = MemoryStore(db, "bob", embedder=embedder)
    a_ids = {a.add(f"Alice likes {w}", at="2023-01-01").memory_id for w in WORDS[:10]}
    b_ids = {b.add(f"Alice likes {w}", at="2023-01-01").memory_id for w in WORDS[:10]}
    for store, own in ((a, a_ids), (b, b_ids)):
        store.vector_view().exact_below = 0
        hits = store.search("Alice likes dogs", k=20)
        assert hits and {h.id for h in hits} <= own


def test_unchanged_text_is_never_embedded_twice(tmp_path, embedder):
    store = MemoryStore(tmp_path / "c.db", "a", embedder=embedder)
    m = store.add("Jon runs a dance studio", at="2023-01-01")
    store.add("Gina lost her job", at="2023-01-02")
    view = store.vector_view()
    assert view.embedder.computed == 2
    store.update(m.memory_id, "Jon runs a dance studio", at="2023-01-03")  # same text, new version
    store.search("dance", k=1)
    assert view.embedder.computed == 2
    store.reindex()
    store.close()
    again = MemoryStore(tmp_path / "c.db", "a", embedder=embedder)
    again.reindex()
    assert again.vector_view().embedder.computed == 0


CRASHER = textwrap.dedent("""
    import os, signal, sys
    from memstore import MemoryStore
    store = MemoryStore(sys.argv[1], "a")
    def tick(done, total):
        if done >= 256:           # first chunk embedded and added, nothing saved yet
            os.kill(os.getpid(), signal.SIGKILL)
    store.vector_view(progress=tick)
""")


def test_crash_mid_catch_up_then_reopen_equals_rebuild(tmp_path, embedder):
    path = tmp_path / "crash.db"
    store = MemoryStore(path, "a", embedder=embedder)
    ids = [store.add(f"{SUBJECTS[i % 4]} mentioned {WORDS[i % 20]} on day {i}", at=f"2023-01-{1 + i % 28:02d}").memory_id
           for i in range(300)]
    store.search("dog", k=3)
    store.close()  # index saved, covering these 300
    store = MemoryStore(path, "a", embedder=embedder)
    for i in range(600):
        if i % 3 == 0:
            store.update(ids[i % 300], f"{SUBJECTS[i % 4]} changed their mind about {WORDS[(i * 7) % 20]} ({i})",
                         at="2023-02-01")
        else:
            store.add(f"{SUBJECTS[i % 4]} said something about {WORDS[(i * 3) % 20]} #{i}", at="2023-02-02")
    store.conn.close()  # no save: the index file still covers the first 300 only
    proc = subprocess.run([sys.executable, "-c", CRASHER, str(path)])
    assert proc.returncode == -9
    reopened = MemoryStore(path, "a", embedder=embedder)
    rebuilt = MemoryStore(path, "a", embedder=embedder)
    rebuilt.vector_view().rebuild()
    assert sorted(reopened.vector_view().index.get_ids_list()) == sorted(rebuilt.vector_view().index.get_ids_list())
    for q in ("Caroline and her dog", "coffee", "who changed their mind"):
        for as_of in (None, "2023-01-15", "@450"):
            assert [(h.id, h.text) for h in reopened.search(q, k=10, as_of=as_of)] == \
                   [(h.id, h.text) for h in rebuilt.search(q, k=10, as_of=as_of)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, query=st.tuples(st.integers(0, 3), st.integers(0, 19), st.integers(0, 19)),
       cut=st.integers(0, 32), k=st.integers(1, 6))
def test_hybrid_search_reads_the_as_of_bank_with_exact_cosines(new_db, embedder, ops, query, cut, k):
    """Hybrid search changes the order only: its hits are memories alive at the cutoff, each
    scored by its exact cosine, as many as dense search returns."""
    store = MemoryStore(new_db(), "a", embedder=embedder)
    base = apply(store, ops)
    q = sentence(query)
    for as_of in [None, to_stamp(base + timedelta(days=cut)), f"@{cut}"]:
        hits = store.search(q, k=k, as_of=as_of, hybrid=True)
        want, _ = exact(store, embedder, q, 10**6, as_of)
        cosine = dict(want)
        assert len(hits) == min(k, len(want)) and len({h.id for h in hits}) == len(hits)
        assert all(abs(h.score - cosine[h.id]) < 1e-4 for h in hits)
    store.close()
    new_db.drop_all()


def test_hybrid_search_finds_the_memory_that_names_the_thing(tmp_path, embedder):
    """Among memories about the same hobby, the one holding the question's own word ("finish")
    reaches the few an Answer Agent reads, though the embedding ranks it sixth of seven."""
    store = MemoryStore(tmp_path / "h.db", "a", embedder=embedder)
    for text in ["Jon loves reading books every evening", "Jon reads novels before bed",
                 "Jon is reading a lot these days", "Jon enjoys reading on weekends", "Jon started a book club",
                 "Jon's favorite hobby is reading"]:
        store.add(text, at="2023-01-01")
    book = store.add("Jon finished The Lean Startup", at="2023-01-02").memory_id
    question = "What book did Jon finish?"
    dense = [h.id for h in store.search(question, k=7)]
    assert dense.index(book) >= 3  # the embedding alone ranks three or more memories first
    assert book in [h.id for h in store.search(question, k=3, hybrid=True)]


def test_hybrid_search_never_returns_an_erased_text(tmp_path, embedder):
    store = MemoryStore(tmp_path / "e.db", "a", embedder=embedder)
    secret = store.add("Gina's passport number is Zorblax", at="2023-01-01").memory_id
    store.add("Gina likes dancing", at="2023-01-02")
    store.erase(secret, reason="user asked")
    assert [h.text for h in store.search("What is Zorblax?", k=5, hybrid=True)] == ["Gina likes dancing"]
