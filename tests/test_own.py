"""A user's own workflow (issue 18): the QA format's errors, the held-out split, the expiry stack
honoured by `replay --as-of` (and undone by `restore`), and training data read from a bank
without writing it. Plumbing only: facts come from the scripted LLM."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import dump, memstore_cli
from fake_llm import ScriptedLLM
from memstore import MemoryStore
from memstore.clock import to_stamp
from memstore.errors import BadInput
from memstore.ingest import ingest
from evaluation import own
from policy.agent import make_policy
from policy.answer import AnswerAgent
from policy.turns import Turn

GOOD = {"question": "How many ACME shares do we hold?", "answer": "150 shares", "asked_at": "2025-03-02T09:00",
        "evidence": ["desk:1"], "category": 4}


def write(tmp_path, *rows) -> str:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_qa_format_reads_a_good_file(tmp_path):
    qas = own.load_qa(write(tmp_path, GOOD, {"question": "Who covers BOLT?", "answer": "Raj", "asked_at": "2025-01-02"}))
    assert [q.question for q in qas] == [GOOD["question"], "Who covers BOLT?"]
    assert qas[0].evidence == ("desk:1",) and qas[0].asked_at == to_stamp("2025-03-02T09:00")
    assert qas[1].category == 4 and qas[1].evidence == ()  # the defaults: plain F1, no evidence


@pytest.mark.parametrize("row, message", [
    ("{not json", "not JSON"),
    ([1, 2], "expected a JSON object"),
    ({**GOOD, "answer": ""}, "'answer' must be a non-empty string"),
    ({k: v for k, v in GOOD.items() if k != "asked_at"}, "'asked_at' must be a non-empty string"),
    ({**GOOD, "asked_at": "next tuesday"}, "line 1"),
    ({**GOOD, "evidence": "desk:1"}, "'evidence' must be a list"),
    ({**GOOD, "category": 5}, "'category' must be one of 1, 2, 3, 4"),
    ({**GOOD, "category": True}, "'category' must be one of"),
    ({**GOOD, "qestion": "typo"}, "unknown field(s) qestion"),
])
def test_qa_format_errors_name_the_line(tmp_path, row, message):
    with pytest.raises(BadInput, match="qa.jsonl: 1 bad line") as err:
        own.load_qa(write(tmp_path, row))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_qa_format_is_validated_whole(tmp_path):
    path = write(tmp_path, GOOD, {**GOOD, "category": 9}, GOOD, "", "[]")
    with pytest.raises(BadInput) as err:
        own.load_qa(path)
    msg = str(err.value)
    assert "3 bad line(s)" in msg and "line 2" in msg and "line 3: the same question at the same time as line 1" in msg
    with pytest.raises(BadInput, match="no questions"):
        own.load_qa(write(tmp_path, ""))
    with pytest.raises(BadInput, match="no such QA file"):
        own.load_qa(tmp_path / "missing.jsonl")


def test_split_is_seeded_disjoint_and_stable_when_questions_are_added(tmp_path):
    rows = [{**GOOD, "question": f"q{i}?"} for i in range(40)]
    qas = own.load_qa(write(tmp_path, *rows))
    train, held = own.split(qas, 0.25, seed=0)
    assert len(held) == 10 and len(train) == 30 and not {q.question for q in train} & {q.question for q in held}
    assert own.split(qas, 0.25, seed=0) == (train, held)
    assert own.split(qas, 0.25, seed=1)[1] != held
    assert own.split(qas, 0.0) == (qas, [])
    with pytest.raises(BadInput, match="--val-fraction"):
        own.split(qas, 1.0)


# ---- the expiry stack ---------------------------------------------------------------------

DESK = [("Dana", "Raj set a price target of $55 on DYNO.", "2025-01-10T09:00"),
        ("Dana", "We hold 200 shares of ACME.", "2025-01-11T09:00"),
        ("Raj", "The coffee machine is broken.", "2025-03-01T09:00")]


def desk_turns():
    return [Turn(f"desk:{i}", s, t, to_stamp(w)) for i, (s, t, w) in enumerate(DESK, 1)]


def test_expiry_is_a_dated_delete_that_replay_as_of_honours_and_restore_undoes(tmp_path):
    db = tmp_path / "desk.db"
    store = MemoryStore(db, "stack")
    ingest(store, make_policy("stack", ScriptedLLM(), expire_after=["price target=30"]), desk_turns())
    target = next(m for m in store.replay(as_of="2025-01-12") if "price target" in m.text)
    deleted = [e for e in store.events() if e.op == "DELETE"]
    # written when the bank was next touched (the 1 March turn), dated at the expiry: 9 Feb 09:00
    assert [(e.memory_id, e.valid_at[:16], e.source) for e in deleted] == [(target.id, "2025-02-09T09:00", ["desk:3"])]
    assert "rule price target=30" in deleted[0].reason and deleted[0].actor.startswith("policy:stack[price target=30]")

    def texts(as_of):
        proc = memstore_cli("--bank", "stack", "replay", "--as-of", as_of, "--json", db=db)
        assert proc.returncode == 0, proc.stderr
        return [m["text"] for m in json.loads(proc.stdout)]
    assert any("price target" in t for t in texts("2025-02-09T08:59"))
    assert not any("price target" in t for t in texts("2025-02-09T09:00"))
    assert any("200 shares" in t for t in texts("2025-03-02"))  # no rule matches it: kept
    store.restore(target.id, reason="still our target")
    assert any("price target" in m.text for m in store.replay())
    store.close()


def test_stack_expires_by_the_last_question_and_refuses_bad_rules():
    store = MemoryStore(":memory:", "stack")
    policy = make_policy("stack", ScriptedLLM(), expire_after=["*=30"])
    ingest(store, policy, desk_turns()[:1])
    assert store.replay(as_of="2025-03-01")  # nothing touched the bank since: not yet expired
    policy.expire(store, "2025-03-01")
    assert store.replay(as_of="2025-03-01") == [] and len(store.replay(as_of="2025-02-01")) == 1
    for bad in (["nodays"], ["x=0"], ["(=3"], ["=5"]):
        with pytest.raises(BadInput, match="bad expiry rule"):
            make_policy("stack", ScriptedLLM(), expire_after=bad)
    with pytest.raises(BadInput, match="needs its expiry rules"):
        make_policy("stack", ScriptedLLM())


# ---- training data from a bank -------------------------------------------------------------

def test_training_history_from_a_bank_never_writes_the_source(tmp_path):
    from trainer import history, rollouts
    from policy.manager import LLMPolicy

    db = tmp_path / "desk.db"
    turns = [Turn("desk:0", "Dana", "We hold 100 shares of ACME.", to_stamp("2025-01-05"))] + desk_turns()
    with MemoryStore(db, "desk") as store:
        ingest(store, make_policy("append", ScriptedLLM()), turns)
    before, digest = dump(db), hashlib.sha256(db.read_bytes()).hexdigest()
    qas = own.load_qa(write(tmp_path, {"question": "How many ACME shares do we hold?", "answer": "200",
                                       "asked_at": "2025-01-12", "evidence": ["desk:2"]},
                            {"question": "How many ACME shares did we hold on 6 January?", "answer": "100",
                             "asked_at": "2025-01-06", "evidence": ["desk:0"]}))
    (tmp_path / "run").mkdir()
    h = history.from_bank(db, "desk", qas, tmp_path / "run" / "source.db")
    assert [t.input_id for t in h.turns] == ["desk:0", "desk:1", "desk:2", "desk:3"]
    answer_rows = rollouts.answer_examples(h, AnswerAgent(llm=None))  # retrieval only: no model call
    assert "200 shares of ACME" in answer_rows[0]["messages"][1]["content"]
    llm = ScriptedLLM()
    llm.identity = "fake:other-model"  # facts not in the cache: extracted again, into the copy
    manager_rows = rollouts.manager_examples(h, LLMPolicy(llm))
    assert len(manager_rows) == 1 and manager_rows[0]["fact"] == "Dana said: We hold 200 shares of ACME."  # attributed, not bent into "Dana hold"
    assert "100 shares of ACME" in manager_rows[0]["messages"][1]["content"]  # the bank as of just before
    # the candidate's own question was asked before this turn: no op here can change its answer
    assert [q[0] for q in json.loads(manager_rows[0]["questions"])] == ["How many ACME shares do we hold?"]
    h.store.close()
    assert dump(db) == before and hashlib.sha256(db.read_bytes()).hexdigest() == digest
    with pytest.raises(BadInput, match="not recorded in bank 'desk'"):
        history.from_bank(db, "desk", own.load_qa(write(tmp_path, {**GOOD, "evidence": ["desk:99"]})),
                          tmp_path / "run" / "source.db")


def test_bench_own_and_train_from_bank_refuse_bad_input_in_one_line(tmp_path):
    db = tmp_path / "desk.db"
    with MemoryStore(db, "desk") as store:
        ingest(store, make_policy("append", ScriptedLLM()), desk_turns())
    good = write(tmp_path, {**GOOD, "evidence": ["desk:2"]})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n')
    cases = [
        (["bench", "own", "--db", str(db), "--bank", "desk", "--qa", str(bad), "--out", str(tmp_path / "o")], "bad line"),
        (["bench", "own", "--db", str(db), "--bank", "nobody", "--qa", good, "--out", str(tmp_path / "o")],
         "no recorded inputs"),
        (["bench", "own", "--db", str(db), "--bank", "desk", "--qa", good, "--policy", "stack",
          "--out", str(tmp_path / "o")], "needs its expiry rules"),
        (["bench", "own", "--db", str(db), "--bank", "desk", "--qa", good, "--policy", "llm", "--expire-after", "*=3",
          "--out", str(tmp_path / "o")], "--expire-after applies to --policy stack only"),
        (["bench", "own", "--db", str(tmp_path / "none.db"), "--bank", "desk", "--qa", good, "--out", str(tmp_path / "o")],
         "holds a run on another database"),
        (["bench", "own", "--db", str(tmp_path / "none.db"), "--bank", "desk", "--qa", good, "--out", str(tmp_path / "o2")],
         "no memstore database"),
        (["train", "answer", "--from-bank", "desk", "--qa", good, "--out", str(tmp_path / "r")], "--from-bank needs --db"),
        (["train", "answer", "--from-bank", "desk", "--db", str(db), "--qa", good, "--val-fraction", "1.5",
          "--out", str(tmp_path / "r")], "--val-fraction"),
        (["train", "answer", "--out", str(tmp_path / "r")], "give --data"),
    ]
    for args, message in cases:
        proc = memstore_cli(*args, timeout=60)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
    with MemoryStore(db, "desk") as store:
        assert len(store.inputs()) == 3
