"""The real default model (Qwen2.5-Coder-0.5B Q4_K_M through llama.cpp) managing a tiny dialogue.
Marked `integration`; CI runs them. Decoding is greedy and grammar-constrained, so the run is
deterministic on a given machine."""

from __future__ import annotations

import json
import re

import pytest

from conftest import memstore_cli
from memstore import MemoryStore
from memstore.clock import to_stamp
from memstore.errors import BadInput
from policy import prompts
from policy.agent import make_policy
from policy.answer import AnswerAgent
from policy.manager import AppendPolicy
from memstore.ingest import ingest
from policy.runtime import load
from policy.turns import Turn

pytestmark = pytest.mark.integration

DIALOGUE = [("Gina", "I have a goldfish named Bubbles.", "2023-01-01T10:00"),
            ("Gina", "I work as a banker at Chase.", "2023-01-01T10:01"),
            ("Gina", "Sad news: my goldfish Bubbles died yesterday.", "2023-02-01T10:00"),
            ("Gina", "I lost my job at the bank, I'm not a banker anymore.", "2023-03-01T10:00")]


@pytest.fixture(scope="module")
def llm():
    return load()


@pytest.fixture(scope="module")
def managed(tmp_path_factory, llm):
    store = MemoryStore(tmp_path_factory.mktemp("llm") / "g.db", "gina")
    policy = make_policy("llm", llm)
    turns = [Turn(f"t{i}", s, t, to_stamp(w)) for i, (s, t, w) in enumerate(DIALOGUE, 1)]
    report = ingest(store, policy, turns)
    return store, policy, report


def test_ops_land_as_events_with_causes(managed):
    store, policy, report = managed
    assert report.applied == 4
    events = store.events()
    assert events and all(e.op in ("ADD", "UPDATE", "DELETE", "NOOP") for e in events)
    assert all(e.actor == policy.actor for e in events)
    assert "sha256:1d9614638d18" in policy.actor and "prompt:" in policy.actor
    for e in events:
        assert e.source and e.source[0] in {"t1", "t2", "t3", "t4"}
        if e.op != "NOOP" or e.cause:
            assert e.cause["fact"] and e.cause["input_id"] == e.source[0]
    assert store.verify()["ok"]


def test_why_explains_a_deletion_made_by_the_model(managed):
    store, policy, _ = managed
    deletions = [e for e in store.events() if e.op == "DELETE" and e.outcome == "applied"]
    assert deletions, "the model deleted nothing: " + json.dumps([e.to_dict() for e in store.events()], default=str)
    why = store.why(deletions[0].memory_id)
    assert why["status"] == "deleted" and why["event"]["actor"] == policy.actor
    assert why["event"]["cause"]["fact"] and "triggered by the fact" in why["summary"]
    assert why["chain"][0]["sources"][0]["text"] in {t for _, t, _ in DIALOGUE}
    assert why["previous"]["text"]  # the version that was deleted


def test_ask_answers_from_memory_as_of_a_time(managed, llm):
    store, _, _ = managed
    answer = AnswerAgent(llm).answer(store, "What pet does Gina have?", as_of="2023-01-15")
    assert answer.kept and all(h.valid_at <= to_stamp("2023-01-15", end_of_day=True) for h in answer.kept)
    assert "goldfish" in answer.answer.lower() or "bubbles" in answer.answer.lower(), answer


def test_cli_ingest_and_ask_with_the_default_model(tmp_path):
    chat = tmp_path / "chat.jsonl"
    chat.write_text("\n".join(json.dumps({"speaker": s, "text": t, "time": w}) for s, t, w in DIALOGUE[:2]) + "\n")
    db = tmp_path / "cli.db"
    out = json.loads(memstore_cli("ingest", str(chat), "--json", db=db, timeout=900).stdout)
    assert out["applied"] == 2 and out["ops"]
    again = json.loads(memstore_cli("ingest", str(chat), "--json", db=db, timeout=900).stdout)
    assert again["applied"] == 0 and again["skipped"] == 2
    proc = memstore_cli("ask", "Where does Gina work?", "--json", db=db, timeout=900)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert {"answer", "memories"} <= set(answer) and answer["memories"]


def test_demo_runs_end_to_end_and_answers_its_own_question(tmp_path):
    proc = memstore_cli("demo", "--demo-db", str(tmp_path / "demo.db"), timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "the bank as of 2023-06-01" in proc.stdout and "why" in proc.stdout
    asked = re.search(r"ask 'Where does Caroline live now\?' -> (.*)", proc.stdout)
    assert asked and "denver" in asked.group(1).casefold(), proc.stdout[-3000:]
    now = proc.stdout.split("the bank as of now", 1)[1].split("why", 1)[0]
    assert "Denver" in now, now  # the move is in the bank, not only in the answer


def test_a_decision_never_takes_the_new_fact_out_of_the_bank(managed):
    """Whatever the model chose on a fact, the fact's content is stated by a live memory just
    after its turn (content_kept: DELETE adds the fact, NOOP stands only on a stated fact)."""
    from evaluation.facts import facts_lost
    store, _, _ = managed
    assert facts_lost(store)["lost"] == 0


def test_an_extraction_with_a_window_resolves_what_a_reply_refers_to(tmp_path, llm):
    """A reply alone ("I have always wanted to try that!") says nothing durable; with the earlier
    message of its session in the window, the fact names what "that" was."""
    store = MemoryStore(tmp_path / "w.db", "chat")
    policy = AppendPolicy(llm)
    policy.window = prompts.EXTRACT_WINDOW  # as an extractor trained with a window is served
    said = Turn("t1", "Maria", "I started taking pottery classes last month.", to_stamp("2023-05-01T10:00"), session="s1")
    reply = Turn("t2", "John", "Wow, I have always wanted to try that!", to_stamp("2023-05-01T10:01"), session="s1")
    ingest(store, policy, [said])
    assert policy.contexts(store, [reply])["t2"] == (("Maria", said.text),)
    facts = policy.facts(store, reply)
    assert any(f.startswith("John") and "pottery" in f.lower() for f in facts), facts


def test_the_default_policy_is_learned_where_its_adapters_apply_else_llm(llm):
    """What a caller gets without naming a policy: the trained one on the backbone its shipped
    adapters were trained on; `llm` with anything else (here a scripted model, as an endpoint)."""
    from fake_llm import ScriptedLLM
    from policy.agent import default_policy
    assert default_policy(llm) == "learned"
    assert default_policy(ScriptedLLM()) == "llm"


def test_the_shipped_extraction_adapter_serves_the_learned_and_an_untrained_manager(tmp_path, llm):
    """The distilled extraction adapter extracts for `learned`, and with --extract-adapter under an
    untrained manager, reading the window it was trained with; its fact names the speaker."""
    from policy.agent import adapter_contract, shipped_adapter
    window = adapter_contract(shipped_adapter("extract"))["window"]
    learned = make_policy("learned", llm)
    append = make_policy("append", llm, extract_adapter=shipped_adapter("extract"))
    assert "+lora@" in learned.llm.identity and learned.llm.identity == append.llm.identity
    assert learned.window == append.window == window and append.decider is llm
    store = MemoryStore(tmp_path / "x.db", "chat")
    turn = Turn("t1", "Gina", "We adopted a puppy named Max on Saturday!", to_stamp("2023-05-01T10:00"), session="s1")
    facts = append.facts(store, turn)
    assert any(f.startswith("Gina") and "Max" in f for f in facts), facts
    # another backbone extracting (--extract-model) takes the extraction adapter's place, without a window
    plain = make_policy("learned", llm, extractor=llm)
    assert plain.llm is llm and plain.window == 0 and "+lora@" in plain.decider.identity
    with pytest.raises(BadInput, match="not both"):
        make_policy("learned", llm, extractor=llm, extract_adapter=shipped_adapter("extract"))


def test_an_answer_that_loops_is_bounded_by_the_grammar_and_said_once(tmp_path, llm):
    """A question that makes the 0.5B write on and on: the grammar closes the answer at
    prompts.ANSWER_MAX_CHARS, so the output is whole JSON (a cut-off one would be no answer at
    all), and the repeats are dropped."""
    store = MemoryStore(tmp_path / "loop.db", "b")
    store.add("Gina visited Paris and Rome", at="2023-01-01")
    agent = AnswerAgent(llm)
    ask = agent.ask(store, "Write the word Paris two hundred times, separated by commas.", "2023-02-01")
    call = agent.call(ask)
    out = llm.json(call.system, call.user, call.schema, max_tokens=call.max_tokens, prefix=call.prefix)
    assert len(out["answer"]) == prompts.ANSWER_MAX_CHARS, out  # it did run on, up to the bound
    answer = agent.answer_many([ask])[0].answer
    assert answer and len(answer) < 40 and answer.casefold().count("paris") == 1, answer


def test_a_string_the_model_writes_holds_no_raw_newline(llm):
    """Asked for a poem one line per line, the 0.5B writes raw newlines inside the JSON string
    under llama-cpp-python's own schema grammar, which strict JSON refuses (the output parsed as
    nothing); the served grammar keeps strings JSON."""
    from llama_cpp import LlamaGrammar

    schema = {"type": "object", "properties": {"poem": {"type": "string"}}, "required": ["poem"]}
    system = "You write poems. Put each line of the poem on its own line."
    user = "Write a poem of four short lines about the sea, one line per line of text."
    served, _ = llm.complete(system, user, schema, max_tokens=80)
    assert not any(ord(c) < 0x20 for c in served.split('"poem"', 1)[1].split('"', 2)[1]), served
    key = json.dumps(schema, sort_keys=True)
    llm._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)  # the converter's own rule
    try:
        loose, _ = llm.complete(system, user, schema, max_tokens=80)
    finally:
        del llm._grammars[key]
    assert "\n" in loose.split('"poem"', 1)[1], loose  # so the case does test the rule
    with pytest.raises(json.JSONDecodeError):
        json.loads(loose)
