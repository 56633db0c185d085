"""Ingest plumbing: resumable, nothing applied twice, a kill loses at most the turn in flight,
malformed files change nothing. (Scripted LLM: these test the plumbing, not model quality.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import memstore_cli
from fake_llm import ScriptedLLM
from memstore import MemoryStore
from memstore.errors import BadInput
from policy.agent import make_policy
from policy.prompts import PROMPT_VERSION
from memstore.ingest import ingest
from policy.inputs import load_turns


TESTS = Path(__file__).resolve().parent


def write_chat(path, n=6):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"speaker": "Jon", "text": f"Jon fact number {i}", "time": f"2023-01-{1 + i:02d}T10:00:00"}) + "\n")
    return path


def test_ingest_is_resumable_and_never_applies_twice(tmp_path):
    turns, _ = load_turns(write_chat(tmp_path / "chat.jsonl"))
    store = MemoryStore(tmp_path / "i.db", "b")
    policy = make_policy("append", ScriptedLLM())
    first = ingest(store, policy, turns[:4])
    assert (first.applied, first.skipped) == (4, 0)
    second = ingest(store, policy, turns)
    assert (second.applied, second.skipped) == (2, 4)
    assert sorted(m.text for m in store.replay()) == sorted(f"Jon fact number {i}" for i in range(6))
    evs = store.events()
    assert all(e.actor == policy.actor and e.cause["fact"] and e.source for e in evs)
    assert policy.extracted_fresh == 6
    # another policy replayed over the same history reuses the cached facts
    other = make_policy("heuristic", ScriptedLLM())
    ingest(MemoryStore(tmp_path / "i.db", "b2"), other, turns)
    assert other.extracted_fresh == 0


KILLED = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[3])
    from fake_llm import ScriptedLLM
    from memstore import MemoryStore
    from policy.agent import make_policy
    from memstore.ingest import ingest
    from policy.inputs import load_turns
    turns, _ = load_turns(sys.argv[1])
    store = MemoryStore(sys.argv[2], "b")
    policy = make_policy("append", ScriptedLLM())
    real = policy.apply_turn
    def dying(store, turn, facts):
        events = real(store, turn, facts)
        if turn.input_id.endswith(":4"):
            os.kill(os.getpid(), signal.SIGKILL)  # mid-transaction of turn 4
        return events
    policy.apply_turn = dying
    ingest(store, policy, turns)
""")


def test_kill_loses_at_most_the_turn_in_flight(tmp_path):
    chat = write_chat(tmp_path / "chat.jsonl")
    proc = subprocess.run([sys.executable, "-c", KILLED, str(chat), str(tmp_path / "k.db"), str(TESTS)])
    assert proc.returncode == -9
    store = MemoryStore(tmp_path / "k.db", "b")
    assert [i.input_id for i in store.inputs()] == ["chat:1", "chat:2", "chat:3"]
    assert len(store.replay()) == 3 and store.verify()["ok"]
    turns, _ = load_turns(chat)
    report = ingest(store, make_policy("append", ScriptedLLM()), turns)
    assert (report.applied, report.skipped) == (3, 3) and len(store.replay()) == 6


@pytest.mark.parametrize("content, needle", [
    ('{"speaker": "a", "text": "x", "time": "2023-01-01"}\n{not json\n', "chat.jsonl:2: not JSON"),
    ('{"speaker": "a", "text": "x", "time": "someday"}\n', "bad timestamp"),
    ('{"speaker": "a", "time": "2023-01-01"}\n', "expected an object with string fields"),
    ("", "no messages"),
])
def test_malformed_chat_files_change_nothing(tmp_path, content, needle):
    db = tmp_path / "m.db"
    assert memstore_cli("add", "kept", "--at", "2023-01-01", db=db).returncode != 0  # no db yet
    memstore_cli("init", db=db)
    memstore_cli("add", "kept", "--at", "2023-01-01", db=db)
    bad = tmp_path / "chat.jsonl"
    bad.write_text(content)
    proc = memstore_cli("ingest", str(bad), "--policy", "append", db=db)
    assert proc.returncode == 1 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    stats = json.loads(memstore_cli("stats", "--json", db=db).stdout)
    assert stats["events"] == 1 and stats["inputs"] == 0


def test_malformed_locomo_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('[{"sample_id": "c1"}]')
    with pytest.raises(BadInput, match="LoCoMo format"):
        load_turns(bad)
    bad.write_text(json.dumps([{"sample_id": "c1", "conversation": {"session_1_date_time": "yesterday", "session_1": []}}]))
    with pytest.raises(BadInput, match="bad LoCoMo session time"):
        load_turns(bad)
    two = [{"sample_id": f"c{i}", "conversation": {"session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [{"speaker": "A", "dia_id": "D1:1", "text": "hi"}]}} for i in range(2)]
    bad.write_text(json.dumps(two))
    with pytest.raises(BadInput, match="pick one with --conversation"):
        load_turns(bad)
    turns, sample = load_turns(bad, "c1")
    assert turns[0].input_id == "c1:D1:1" and turns[0].time.startswith("2023-05-08T13:56:00")


def test_bench_task_keeps_a_killed_ingest_time_and_refuses_another_model(tmp_path):
    """run_task (behind `memstore bench`): a kill mid-ingest keeps the time spent so far, and a
    resume with another backbone is refused before it touches the bank."""
    from evaluation.harness import Task, run_task

    turns, _ = load_turns(write_chat(tmp_path / "chat.jsonl", n=12))
    task = Task("t", turns, [])

    def kill_at_11(phase, n, total):
        if phase == "ingest" and n == 11:
            raise KeyboardInterrupt

    llm = ScriptedLLM()
    with pytest.raises(KeyboardInterrupt):
        run_task(task, "append", llm, llm, tmp_path, progress=kill_at_11)
    timing = json.loads((tmp_path / "answers" / "t.append.timing.json").read_text())
    assert timing["ingest_s"] > 0 and timing["manager"].endswith(f"fake:scripted/prompt:{PROMPT_VERSION}")
    other = ScriptedLLM()
    other.identity = "fake:other"
    with pytest.raises(BadInput, match="use another --out"):
        run_task(task, "append", other, other, tmp_path)
    store = MemoryStore(tmp_path / "t.db", "append")
    assert store.conn.execute("SELECT count(*) FROM inputs").fetchone()[0] == 11
    store.close()
    assert run_task(task, "append", llm, llm, tmp_path) == []  # the same model resumes
    store = MemoryStore(tmp_path / "t.db", "append")
    assert store.conn.execute("SELECT count(*) FROM inputs").fetchone()[0] == 12
