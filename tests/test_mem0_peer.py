"""mem0 side by side (issue 14): the events mem0 reports land in a memstore bank turn by turn and
a resumed run does not ask mem0 again (plumbing, a scripted stand-in for mem0's `Memory`); then
the real mem0 library with llama-cpp-python's server on the local model (integration)."""

from __future__ import annotations

import importlib.util
import json
import socket

import pytest

from conftest import memstore_cli
from memstore import MemoryStore
from memstore.ingest import ingest
from policy.turns import Turn

if importlib.util.find_spec("mem0") is None:  # found, not imported: telemetry is switched off first
    pytest.skip("the [peers] extra (install.sh installs it)", allow_module_level=True)

from evaluation.mem0_peer import Mem0Policy  # noqa: E402
from fake_llm import ScriptedLLM  # noqa: E402


class ScriptedMem0:
    """Answers `add` with scripted result lists, one per call; records what it was asked."""

    def __init__(self, results):
        self.results, self.asked = list(results), []

    def add(self, messages, user_id, metadata):
        self.asked.append(messages[0]["content"])
        return {"results": self.results.pop(0)}


ENDPOINT = "http://127.0.0.1:9/v1"  # never called: the scripted mem0 stands in
TURNS = [Turn("t:1", "Gina", "I have a goldfish named Bubbles.", "2023-01-02T10:00:00Z"),
         Turn("t:2", "Gina", "Bubbles died; I got a cat, Tom.", "2023-03-05T16:00:00Z"),
         Turn("t:3", "Jon", "Nice weather.", "2023-03-05T16:00:01Z")]


def test_mem0_events_become_bank_events_and_resume(tmp_path):
    script = [[{"id": "a", "event": "ADD", "memory": "Gina has a goldfish named Bubbles"}],
              [{"id": "a", "event": "DELETE", "memory": "Gina has a goldfish named Bubbles"},
               {"id": "b", "event": "ADD", "memory": "Gina has a cat named Tom"}],
              []]
    policy = Mem0Policy(ScriptedLLM(), tmp_path / "mem0", "tiny", ENDPOINT)
    policy.mem = ScriptedMem0(script)
    with MemoryStore(tmp_path / "b.db", "mem0") as store:
        ingest(store, policy, TURNS[:2])
        assert policy.mem.asked == ["[2023-01-02] Gina: I have a goldfish named Bubbles.",
                                    "[2023-03-05] Gina: Bubbles died; I got a cat, Tom."]
        assert [m.text for m in store.replay()] == ["Gina has a cat named Tom"]
        ops = [(e.op, (e.cause or {}).get("mem0_id")) for e in store.events()]
        assert ops == [("ADD", "a"), ("DELETE", "a"), ("ADD", "b")]

        # a run killed after mem0 answered turn 3 but before its transaction: the journal has it
        policy.facts(store, TURNS[2])
    resumed = Mem0Policy(ScriptedLLM(), tmp_path / "mem0", "tiny", ENDPOINT)
    resumed.mem = ScriptedMem0([])  # asking again would fail
    with MemoryStore(tmp_path / "b.db", "mem0") as store:
        report = ingest(store, resumed, TURNS)
        assert (report.skipped, report.applied) == (2, 1)
        assert store.events()[-1].op == "NOOP"
    stats = json.loads((tmp_path / "mem0" / "stats.json").read_text())
    assert stats["turns"] == 3 and stats["turns_without_memory"] == 1
    assert stats["events"] == {"ADD": 2, "DELETE": 1} and stats["calls_failed"] == 0


def test_endpoint_without_mem0_is_refused(tmp_path):
    proc = memstore_cli("bench", "locomo", "--data", str(tmp_path / "x.json"), "--policy", "append",
                        "--endpoint", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "o"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("memstore: error:")


@pytest.mark.integration
def test_real_mem0_on_the_local_model(tmp_path):
    """Two turns through the real mem0 and llama-cpp-python's server on the default model: the
    bank holds what mem0 reported, each event citing mem0's id, and the server is gone after."""
    from policy.runtime import load
    llm = load()
    policy = Mem0Policy(llm, tmp_path / "mem0", "tiny")
    with MemoryStore(tmp_path / "b.db", "mem0") as store:
        try:
            ingest(store, policy, TURNS[:2])
            url = policy.url
        finally:
            policy.close()
        journal = [json.loads(l) for l in (tmp_path / "mem0" / "journal.jsonl").read_text().splitlines()]
        reported = [e for rec in journal for e in rec["events"]]
        mem0_events = [e for e in store.events() if e.op != "NOOP"]
        assert [(e.op, e.cause["mem0_id"]) for e in mem0_events] == [(r["event"], r["id"]) for r in reported]
        assert all(e.actor.startswith("policy:mem0/mem0ai==2.2.1/llama.cpp:") for e in store.events())
    stats = json.loads((tmp_path / "mem0" / "stats.json").read_text())
    assert stats["turns"] == 2 and stats["calls_failed"] == 0
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # the server was stopped
