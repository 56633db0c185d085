"""Audit tools: counterfactual replay equals a direct ingest of the same inputs, diff names every
differing decision, the timeline PNG is a real picture, and `memstore browse` serves the canned
queries over loopback. (Scripted model for the decisions: these test plumbing, not model quality.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cli.agent_cmds import DEMO_DIALOGUE
from conftest import SHARED_LOCOMO, memstore_cli
from fake_llm import ScriptedLLM
from memstore import MemoryStore
from memstore.clock import to_stamp
from memstore.errors import BadInput
from memstore.ingest import ingest
from policy.agent import make_policy
from policy.inputs import load_turns
from policy.turns import Turn


class UpdatingLLM(ScriptedLLM):
    """Extracts each message as its fact; decides UPDATE of the closest candidate whenever one is
    shown, else ADD, so it disagrees with the heuristic manager on some turns."""

    def _complete(self, system, user, schema, max_tokens, temperature, seed, prefix=""):
        if "New fact" in user and "\n1. " in user:
            return json.dumps({"op": "UPDATE", "target": 1, "text": user.rsplit(": ", 1)[1]}), 10, 10
        return super()._complete(system, user, schema, max_tokens, temperature, seed)


def demo_turns():
    return [Turn(f"demo:{i}", s, t, to_stamp(w)) for i, (s, t, w) in enumerate(DEMO_DIALOGUE, 1)]


def locomo_turns():
    if not SHARED_LOCOMO.exists():
        pytest.skip("LoCoMo dev data not available (../shared)")
    return load_turns(SHARED_LOCOMO, "conv-26")[0][:40]


def by_turn(store: MemoryStore) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for e in store.events():
        for src in e.source:
            out.setdefault(src, []).append((e.op, e.outcome, e.text))
    return out


@pytest.mark.parametrize("make_turns", [demo_turns, locomo_turns], ids=["demo", "locomo-conv-26"])
def test_counterfactual_equals_ingest_and_diff_names_every_difference(tmp_path, make_turns):
    turns, llm, db = make_turns(), UpdatingLLM(), tmp_path / "cf.db"
    source = MemoryStore(db, "heuristic")
    ingest(source, make_policy("heuristic", llm), turns)
    direct = MemoryStore(db, "llm")
    ingest(direct, make_policy("llm", llm), turns)
    before = [(e.seq, e.hash) for e in source.events()]

    manager = make_policy("llm", llm)
    report = source.counterfactual(manager, "cf-llm")
    assert report.applied == len(turns) and manager.extracted_fresh == 0  # facts came from the cache
    cf = MemoryStore(db, "cf-llm")
    strip = lambda evs: [(e.op, e.outcome, e.text, e.prev_text, e.valid_at, e.source, e.cause, e.actor) for e in evs]
    assert strip(cf.events()) == strip(direct.events())
    assert [(m.text, m.valid_at) for m in cf.replay()] == [(m.text, m.valid_at) for m in direct.replay()]
    assert {s for e in cf.events() for s in e.source} <= {i.input_id for i in source.inputs()}
    assert all(i.meta == {"replayed_from": "heuristic"} for i in cf.inputs())
    assert [(e.seq, e.hash) for e in source.events()] == before  # the source bank is never written
    assert source.counterfactual(manager, "cf-llm").skipped == len(turns)  # a rerun resumes: nothing twice

    same = cf.diff("llm")
    assert same["related"] and same["counts"]["turns decided differently"] == 0
    assert same["only_in_a"] == same["only_in_b"] == []

    d = source.diff("llm")
    a, b = by_turn(source), by_turn(direct)
    differing = {t.input_id for t in turns if a.get(t.input_id) != b.get(t.input_id)}
    assert differing and {x["input"]["input_id"] for x in d["decisions"]} == differing
    assert d["counts"]["turns decided differently"] == len(differing) == sum(d["kinds"].values())
    texts_a, texts_b = {m.text.lower() for m in source.replay()}, {m.text.lower() for m in direct.replay()}
    assert {m["text"].lower() for m in d["only_in_a"]} == texts_a - texts_b
    assert {m["text"].lower() for m in d["only_in_b"]} == texts_b - texts_a
    first = d["decisions"][0]
    assert first["a"] and first["b"] and first["input"]["text"] and first["a"][0]["reason"]


def test_counterfactual_until_and_refusals(tmp_path):
    db, llm = tmp_path / "cf.db", UpdatingLLM()
    source = MemoryStore(db, "heuristic")
    ingest(source, make_policy("heuristic", llm), demo_turns())
    early = source.counterfactual(make_policy("llm", llm), "early", until="2023-06-30")
    assert early.applied == 5
    MemoryStore(db, "busy").add("something else")
    for into, until, words in [("busy", None, "already holds"), ("heuristic", None, "another bank"),
                               ("ok", "@3", "time"), ("bad bank!", None, "bank name")]:
        with pytest.raises(BadInput, match=words):
            source.counterfactual(make_policy("llm", llm), into, until=until)
    with pytest.raises(BadInput, match="no recorded inputs"):
        MemoryStore(db, "busy").counterfactual(make_policy("llm", llm), "x")
    unrelated = source.diff("busy")
    assert not unrelated["related"] and unrelated["only_in_b"][0]["text"] == "something else"
    # the CLI refuses before any model loads, in one line
    proc = memstore_cli("counterfactual", "--from", "heuristic", "--policy", "llm", "--into", "busy", db=db)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "already holds" in proc.stderr
    out = memstore_cli("diff", "heuristic", "early", "--json", db=db)
    assert out.returncode == 0 and json.loads(out.stdout)["related"] is True


def test_timeline_png(tmp_path):
    import matplotlib.image as mpimg

    db = tmp_path / "t.db"
    store = MemoryStore(db, "t")
    dog = store.add("Caroline has a dog named Max", at="2023-05-08")
    store.update(dog.memory_id, "Caroline has two dogs, Max and Bella", at="2023-06-12")
    home = store.add("Caroline lives in Boston", at="2023-05-08")
    store.delete(home.memory_id, at="2023-07-20")
    store.restore(home.memory_id, at="2023-08-01")
    secret = store.add("Caroline's PIN is xyzzy-4321", at="2023-05-09")
    store.erase(secret.memory_id, reason="privacy")
    for i in range(40):
        store.add(f"filler memory number {i}", at=f"2023-{5 + i % 4:02d}-{1 + i % 27:02d}")
    store.close()

    out = tmp_path / "timeline.png"
    proc = memstore_cli("--bank", "t", "timeline", "--out", str(out), db=db)
    assert proc.returncode == 0, proc.stderr
    img = mpimg.imread(out)
    assert img.shape[0] > 800 and img.shape[1] > 1200  # 43 rows are tall enough to read
    rgb = (img[..., :3] * 255).astype(int)
    assert (rgb.sum(axis=2) < 600).mean() > 0.02  # not a blank page
    for color in [(0x98, 0xdf, 0x8a), (0xae, 0xc7, 0xe8), (0xd6, 0x27, 0x28)]:  # ADD bar, UPDATE bar, DELETE mark
        assert (np.abs(rgb - np.array(color)).sum(axis=2) < 30).sum() > 20, color

    one = tmp_path / "one.png"
    proc = memstore_cli("timeline", "--bank", "t", "--memory", dog.memory_id, "--out", str(one), "--json", db=db)
    assert proc.returncode == 0 and json.loads(proc.stdout)["rows"] == 1
    small = mpimg.imread(one)
    assert small.shape[0] < img.shape[0] / 3
    assert "xyzzy" not in proc.stdout
    for args, words in [(["--memory", "mdeadbeef00"], "no memory"), (["--since", "soon"], "timestamp")]:
        bad = memstore_cli("timeline", "--bank", "t", "--out", str(tmp_path / "x.png"), *args, db=db)
        assert bad.returncode == 1 and words in bad.stderr and not (tmp_path / "x.png").exists()
    bad = memstore_cli("timeline", "--bank", "t", "--out", str(tmp_path / "x.txt"), db=db)
    assert bad.returncode == 1 and ".png" in bad.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("datasette", path=str(Path(sys.executable).parent)) is None,
                    reason="the [browse] extra (Datasette) is not installed")
def test_browse_serves_canned_queries_on_loopback(tmp_path):
    db = tmp_path / "audit.db"
    store = MemoryStore(db, "demo")
    dog = store.add("Caroline has a dog named Max", at="2023-05-08")
    store.update(dog.memory_id, "Caroline has two dogs, Max and Bella", at="2023-06-12")
    home = store.add("Caroline lives in Boston", at="2023-05-08")
    store.delete(home.memory_id, at="2023-06-20", reason="by mistake")
    store.restore(home.memory_id, at="2023-06-21")
    secret = store.add("Caroline's PIN is xyzzy-4321", at="2023-05-09")
    store.erase(secret.memory_id, reason="privacy")
    store.close()
    port = free_port()
    exe = shutil.which("memstore", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen([exe, "--db", str(db), "browse", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ), start_new_session=True)
    base = f"http://127.0.0.1:{port}/audit"
    try:
        def get(path):
            with urllib.request.urlopen(base + path, timeout=10) as r:
                return json.loads(r.read())
        deadline = time.time() + 90
        while True:
            try:
                rows = get("/bank_as_of.json?bank=demo&as_of=2023-06-01&_shape=array")
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        assert sorted(r["text"] for r in rows) == ["Caroline has a dog named Max", "Caroline lives in Boston"]
        later = get("/bank_as_of.json?bank=demo&as_of=2023-07-01&_shape=array")
        assert "Caroline has two dogs, Max and Bella" in {r["text"] for r in later}
        with MemoryStore(db, "demo") as reread:  # any way of writing the time: the bank `replay` shows
            for when in ("2023-06-12T00:00", "2023-06-12", "2023-06-12 09:30+02:00", "2023-06-11T23:59:59"):
                shown = get(f"/bank_as_of.json?bank=demo&as_of={urllib.parse.quote(when)}&_shape=array")
                assert sorted(r["text"] for r in shown) == sorted(m.text for m in reread.replay(when)), when
        assert get("/bank_as_of.json?bank=demo&as_of=soon&_shape=array") == []
        hist = get(f"/memory_history.json?bank=demo&memory_id={dog.memory_id}&_shape=array")
        assert [h["op"] for h in hist] == ["ADD", "UPDATE"]
        why = get(f"/why.json?bank=demo&memory_id={dog.memory_id}&_shape=array")
        assert why[0]["op"] == "UPDATE"
        undone = get(f"/why.json?bank=demo&memory_id={home.memory_id}&_shape=array")
        assert [r["op"] for r in undone] == ["DELETE", "RESTORE"] and undone[0]["reason"] == "by mistake"
        tables = {t["name"]: t for t in get(".json")["tables"]}
        assert tables["versions_rtree"]["hidden"] and not tables["events"]["hidden"]
        erased = get(f"/memory_history.json?bank=demo&memory_id={secret.memory_id}&_shape=array")
        assert "xyzzy" not in json.dumps(erased) and erased[-1]["op"] == "ERASE"
        everything = get("/events.json?_shape=array&_size=max")
        assert "xyzzy" not in json.dumps(everything)
        now = get("/bank_as_of.json?bank=demo&as_of=&_shape=array")  # empty: now, as `replay`
        with MemoryStore(db, "demo") as reread:
            assert sorted(r["text"] for r in now) == sorted(m.text for m in reread.replay())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            front = r.read().decode()
        for link in ("/audit/bank_as_of", "/audit/memory_history", "/audit/why", "/audit/bank_as_of?bank=demo&amp;as_of="):
            assert f'href="{link}' in front, link
        if shutil.which("chromium"):  # a real browser: the front page and one query, rendered
            for name, url in (("front", f"http://127.0.0.1:{port}/"),
                              ("query", base + "/bank_as_of?bank=demo&as_of=2023-07-01")):
                shot = tmp_path / f"{name}.png"
                dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                      "--window-size=1200,900", f"--screenshot={shot}", "--dump-dom", url],
                                     capture_output=True, text=True, timeout=120)
                assert dom.returncode == 0 and shot.stat().st_size > 10_000, dom.stderr[-2000:]
                if name == "front":
                    assert "Bank as of a time" in dom.stdout and "versions_rtree" not in dom.stdout
                else:
                    assert "Caroline has two dogs, Max and Bella" in dom.stdout and "xyzzy" not in dom.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_timeline_axis_and_counts_follow_what_the_memories_say(tmp_path):
    from memstore.timeline import timeline
    with MemoryStore(tmp_path / "t.db", "t") as store:
        dog = store.add("Caroline has a dog named Max", at="2023-05-08")
        store.update(dog.memory_id, "Caroline has two dogs", at="2023-06-12")
        store.delete(dog.memory_id, at="2023-07-01")
        store.restore(dog.memory_id)  # undated: stamped now, years after the history
        store.add("Caroline lives in Boston", at="2023-05-09")
        whole = timeline(store, tmp_path / "a.png")
        assert whole["axis"][1].startswith("2023-") and whole["events"] == 5
        early = timeline(store, tmp_path / "b.png", until="2023-06-01")
        assert early["events"] == 2  # the two ADDs; the update, delete and restore came later
