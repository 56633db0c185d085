"""Training with the real default model on CPU (integration; CI runs it): a 2-step GRPO run of
the Answer Agent (stopped after one step and resumed) on a tiny LoCoMo-format file the test
writes, exported to GGUF, loaded by llama.cpp, and changing its log-probabilities; rollouts are
the serving call; TRL's path and the SFT baseline still train; the manager reward with the real
frozen answerer."""

from __future__ import annotations

import json

import pytest

from conftest import memstore_cli

pytestmark = pytest.mark.integration

TINY = [{
    "sample_id": "train-1",
    "conversation": {
        "speaker_a": "Alice", "speaker_b": "Bob",
        "session_1_date_time": "10:00 am on 2 January, 2023",
        "session_1": [{"speaker": "Alice", "dia_id": "D1:1", "text": "We adopted a dog named Bella last week!"},
                      {"speaker": "Bob", "dia_id": "D1:2", "text": "I love hiking and painting on weekends."}],
        "session_2_date_time": "4:00 pm on 5 March, 2023",
        "session_2": [{"speaker": "Alice", "dia_id": "D2:1", "text": "I moved to Denver for a new job as a nurse."}],
    },
    "qa": [{"question": "What are Bob's hobbies?", "answer": "hiking, painting", "evidence": ["D1:2"], "category": 1},
           {"question": "What is the name of Alice's dog?", "answer": "Bella", "evidence": ["D1:1"], "category": 4},
           {"question": "Which city did Alice move to?", "answer": "Denver", "evidence": ["D2:1"], "category": 4}],
}]


def train_tiny(tmp_path, name: str, *args: str, timeout: float = 1500):
    """`memstore train answer` on the tiny file; asserts it succeeded; returns the run folder."""
    data = tmp_path / "tiny.json"
    data.write_text(json.dumps(TINY))
    out = tmp_path / name
    proc = memstore_cli("train", "answer", "--data", str(data), "--conversations", "train-1", "--out", str(out),
                        *args, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def logprobs(model_path: str, **kw) -> list[float]:
    from llama_cpp import Llama
    llm = Llama(model_path=model_path, logits_all=True, verbose=False, seed=0, **kw)
    out = llm.create_completion("Question: What is the name of Alice's dog?\nAnswer:", max_tokens=6,
                                temperature=0, logprobs=1)
    return [float(x) for x in out["choices"][0]["logprobs"]["token_logprobs"]]


def test_grpo_runs_resumes_and_exports_an_adapter_llama_cpp_serves(tmp_path):
    """memstore's loop: one step, then the same command with two steps resumes from the checkpoint."""
    args = ["--algo", "grpo", "--val", "train-1", "--val-examples", "2", "--generations", "4", "--lr", "2e-3",
            "--save-every", "1"]
    out = train_tiny(tmp_path, "run", *args, "--max-steps", "1")
    assert json.loads((out / "grpo_state" / "progress.json").read_text())["step"] == 1
    train_tiny(tmp_path, "run", *args, "--max-steps", "2")
    config = json.loads((out / "config.json").read_text())
    assert len(config["data_sha256"]) == 64 and len(config["base_sha256"]) == 64 and config["examples"] == 3
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps] == [1, 2]  # the second run did step 2 only
    assert all(r["samples"] == 4 and r["groups"] == 1 and r["rollout_s"] > 0 for r in steps)
    result = json.loads((out / "result.json").read_text())
    assert all(0.0 <= p["reward"] <= 1.0 for p in result["curve"]) and result["steps"] == 2
    assert result["validation"]["n"] == 2
    assert (out / "reward_curve.png").stat().st_size > 1000

    gguf = tmp_path / "answer.gguf"
    proc = memstore_cli("export", str(out), "--gguf", str(gguf), timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if not any(r["dropped"] == 0 for r in steps):
        pytest.skip("every group had equal rewards: nothing was learned (rare with 4 samples at temperature 1)")
    from policy.models import qwen
    base = logprobs(str(qwen().path))
    tuned = logprobs(str(qwen().path), lora_path=str(gguf))
    assert max(abs(a - b) for a, b in zip(base, tuned)) > 1e-3, (base, tuned)

    # the learned policy serves it through llama.cpp
    from policy.agent import make_answerer
    from policy.runtime import load
    agent = make_answerer("learned", load(), gguf)
    assert "+lora@sha256:" in agent.llm.identity


def test_a_rollout_is_the_serving_call(tmp_path):
    """Training's prompt is serving's: the greedy rollout of an answer example is the Answer
    Agent's output for that question, and sampled rollouts repeat with their seeds."""
    from memstore import MemoryStore
    from policy.answer import AnswerAgent
    from policy.models import qwen
    from policy.runtime import load
    from policy.turns import QA
    from trainer.grpo import Rollouts
    from trainer.history import History
    from trainer.rollouts import answer_examples

    store = MemoryStore(tmp_path / "h.db", "b")
    store.add("Alice adopted a dog named Bella", at="2023-01-02")
    store.add("Bob loves hiking and painting", at="2023-01-02")
    qa = QA("What is the name of Alice's dog?", "Bella", 4, ("D1:1",), "2023-02-01T00:00:00.000000Z")
    served_agent = AnswerAgent(load(), k=8)
    row = answer_examples(History("c", store, [], [qa]), served_agent)[0]
    rollouts = Rollouts(qwen(), None)
    served = served_agent.answer(store, qa.question, as_of=qa.asked_at)
    assert json.loads(rollouts.greedy(row, row["max_tokens"]))["answer"].strip() == served.answer
    first = rollouts.sample(row, 3, row["max_tokens"], seed=11)
    assert rollouts.sample(row, 3, row["max_tokens"], seed=11) == first
    assert all(not cut for _, cut in first)


def test_the_update_sees_the_tokens_llama_cpp_sampled_from():
    """The torch side's prompt tokens (transformers, the GGUF's chat template) are llama.cpp's for
    the same serving messages."""
    from transformers import AutoTokenizer

    from policy import prompts
    from policy.models import qwen
    from policy.runtime import load
    from trainer.grpo import prompt_ids

    model = qwen()
    tokenizer = AutoTokenizer.from_pretrained(str(model.path.parent), gguf_file=model.path.name)
    user = prompts.answer_user("What is the name of Alice's dog?", "2023-02-01", [("Alice adopted Bella", "2023-01-02")])
    messages = [{"role": "system", "content": prompts.ANSWER_SYSTEM}, {"role": "user", "content": user}]
    served = load().prompt_tokens(prompts.ANSWER_SYSTEM, user)
    assert prompt_ids(tokenizer, messages) == served


def test_trl_grpo_path_still_trains(tmp_path):
    """TRL's GRPOTrainer, kept as the path bench/bench_train.py measures against."""
    out = train_tiny(tmp_path, "trl", "--algo", "grpo-trl", "--max-steps", "1", "--generations", "2")
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert [p["step"] for p in json.loads((out / "result.json").read_text())["curve"]] == [1]


def test_export_refuses_a_folder_without_adapter(tmp_path):
    proc = memstore_cli("export", str(tmp_path), "--gguf", str(tmp_path / "x.gguf"))
    assert proc.returncode != 0 and "no trained adapter" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_ppo_is_refused_with_a_reason(tmp_path):
    proc = memstore_cli("train", "manager", "--algo", "ppo", "--data", str(tmp_path / "x.json"), "--out", str(tmp_path))
    assert proc.returncode != 0 and "PPOTrainer" in proc.stderr


def test_real_answerer_scores_a_deletion_of_the_needed_fact_lower(tmp_path):
    from memstore import MemoryStore
    from memstore.fork import Fork
    from policy.answer import AnswerAgent
    from policy.runtime import load
    from trainer.rewards import ForkAnswerer, manager_reward

    store = MemoryStore(tmp_path / "r.db", "b")
    ids = [store.add("Jon lost his job as a banker on 19 January, 2023", at="2023-01-19").memory_id,
           store.add("Gina opened an online clothing store", at="2023-03-16").memory_id,
           store.add("Jon is starting a dance studio", at="2023-01-20").memory_id]
    questions = [["When did Jon lose his job as a banker?", "19 January, 2023", 2, "2023-08-01T00:00:00.000000Z"]]
    answerer = ForkAnswerer(AnswerAgent(load(), k=3))
    common = dict(fact="Jon is looking for a studio space", day="2023-01-25", bank=Fork(store, "2023-04-01"),
                  candidate_ids=[ids[0], ids[2]], questions=questions, answerer=answerer)
    keep = manager_reward([{"content": '{"op": "ADD"}'}], **common)
    delete = manager_reward([{"content": '{"op": "DELETE", "target": 1}'}], **common)
    assert keep > delete, (keep, delete)


def test_sft_baseline_clones_best_samples(tmp_path):
    out = train_tiny(tmp_path, "sft", "--algo", "sft", "--max-steps", "1", "--generations", "4")
    rows = [json.loads(line) for line in (out / "sft_data.jsonl").read_text().splitlines()]
    assert rows and all(r["prompt"].endswith('{"answer": "') for r in rows)  # the served key order
    assert all(json.loads('{"answer": "' + r["completion"]).keys() == {"answer", "relevant"} for r in rows)
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert json.loads((out / "result.json").read_text())["curve"][0]["loss"] >= 0


def own_bank(tmp_path):
    """TINY's dialogue as a user's own bank (ingested by the real model) and its questions in the
    own-QA format."""
    chat, qa, db = tmp_path / "chat.jsonl", tmp_path / "qa.jsonl", tmp_path / "desk.db"
    conv = TINY[0]["conversation"]
    rows = [{"id": f"t:{m['dia_id']}", "speaker": m["speaker"], "text": m["text"], "time": when}
            for key, when in (("session_1", "2023-01-02T10:00"), ("session_2", "2023-03-05T16:00")) for m in conv[key]]
    chat.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qa.write_text("".join(json.dumps({"question": q["question"], "answer": q["answer"], "asked_at": "2023-04-01",
                                      "category": q["category"], "evidence": [f"t:{e}" for e in q["evidence"]]}) + "\n"
                          for q in TINY[0]["qa"]))
    proc = memstore_cli("--bank", "alice", "ingest", str(chat), "--policy", "heuristic", db=db, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return db, qa


def test_train_from_bank_runs_resumes_and_never_writes_the_bank(tmp_path):
    from conftest import dump
    db, qa = own_bank(tmp_path)
    before = dump(db)
    out = tmp_path / "run"
    args = ["train", "answer", "--from-bank", "alice", "--db", str(db), "--qa", str(qa), "--val-fraction", "0.34",
            "--generations", "4", "--lr", "2e-3", "--save-every", "1", "--out", str(out)]
    for steps in ("1", "2"):
        proc = memstore_cli(*args, "--max-steps", steps, timeout=1500)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["questions"] == {"train": 2, "held_out": 1} and len(config["qa_sha256"]) == 64
    assert config["from_bank"] == "alice" and config["bank_anchor"].count(":") == 1
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    result = json.loads((out / "result.json").read_text())
    assert result["validation"]["n"] == 1 and "held out" in result["validation"]["conversation"]
    assert dump(db) == before  # trained on a snapshot: the user's bank is untouched


def test_bench_own_prints_policies_with_paired_intervals(tmp_path):
    from conftest import dump
    db, qa = own_bank(tmp_path)
    before = dump(db)
    out = tmp_path / "own"
    proc = memstore_cli("bench", "own", "--db", str(db), "--bank", "alice", "--qa", str(qa), "--policy",
                        "heuristic,stack,llm", "--expire-after", "hiking=30", "--judge", "qwen", "--out", str(out),
                        timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "minus the best baseline" in proc.stdout and "95% interval" in proc.stdout
    paired = json.loads((out / "paired.json").read_text())
    assert paired["questions"] == 3 and {r["policy"] for r in paired["rows"]} | {paired["best_baseline"]} == \
        {"heuristic", "stack", "llm"}
    assert (out / "paired_f1.png").stat().st_size > 1000 and dump(db) == before
    # the stack expired the hiking memory (observed 2 January, rule 30 days) by the questions' time
    from memstore import MemoryStore
    with MemoryStore(out / "alice.db", "stack") as bank:
        assert any(e.op == "DELETE" and "rule hiking=30" in (e.reason or "") for e in bank.events())
        assert not any("hiking" in m.text.lower() for m in bank.replay(as_of="2023-04-01"))


def test_extraction_grpo_starts_from_the_shipped_sft_adapter(tmp_path):
    """`train extract --algo grpo --init-adapter`: the LoRA starts as the GGUF's (with a zero
    learning rate the adapter it exports after a step is the shipped one, tensor for tensor),
    rewarded through forks of the tiny history, with the window the adapter is served with."""
    import numpy as np
    from gguf import GGUFReader

    from policy.agent import shipped_adapter

    data = tmp_path / "tiny.json"
    data.write_text(json.dumps(TINY))
    out = tmp_path / "extract"
    proc = memstore_cli("train", "extract", "--algo", "grpo", "--init-adapter", str(shipped_adapter("extract")),
                        "--data", str(data), "--conversations", "train-1", "--out", str(out), "--max-steps", "1",
                        "--generations", "2", "--lr", "0", timeout=1500)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "extract" and config["window"] == 0 and config["examples"] == 3
    assert config["prompt_version"] == json.loads(
        (shipped_adapter("extract").parent / "extract.gguf.json").read_text())["config"]["prompt_version"]
    step = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert step["samples"] == 2 and step["groups"] == 1
    tensors = lambda path: {t.name: np.array(t.data) for t in GGUFReader(str(path)).tensors}  # noqa: E731
    shipped, exported = tensors(shipped_adapter("extract")), tensors(out / "rollout.gguf")
    assert shipped.keys() == exported.keys()
    assert all(np.array_equal(shipped[k], exported[k]) for k in shipped)


def test_anchored_extraction_grpo_trains_on_uncited_turns_against_the_starting_facts(tmp_path):
    """`--anchor 1`: an uncited turn joins the examples, and every example's reference is what the
    starting adapter writes for its turn (greedy through llama.cpp, serving's parser), kept in
    OUT/reference_facts.json so a resumed run does not extract again."""
    import copy

    from policy.agent import shipped_adapter
    from policy.models import sha256_file

    tiny = copy.deepcopy(TINY)
    tiny[0]["conversation"]["session_2"].append({"speaker": "Bob", "dia_id": "D2:2",
                                                 "text": "Congrats! I started a pottery class yesterday."})
    data = tmp_path / "tiny.json"
    data.write_text(json.dumps(tiny))
    out = tmp_path / "anchored"
    args = ["train", "extract", "--algo", "grpo", "--init-adapter", str(shipped_adapter("extract")), "--data", str(data),
            "--conversations", "train-1", "--out", str(out), "--generations", "2", "--lr", "0", "--anchor", "1"]
    proc = memstore_cli(*args, "--max-steps", "1", timeout=1500)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["examples"] == 4  # three cited turns and the uncited one
    saved = json.loads((out / "reference_facts.json").read_text())
    assert saved["adapter"] == sha256_file(shipped_adapter("extract")) and len(saved["facts"]) == 4
    assert all(isinstance(f, list) and all(isinstance(x, str) for x in f) for f in saved["facts"].values())
    assert any(saved["facts"].values())  # the shipped adapter writes facts for some of these turns
    pottery = saved["facts"]["train-1:D2:2"]
    assert not any("yesterday" in f for f in pottery)  # the one parser dated it
    stamp = (out / "reference_facts.json").stat().st_mtime_ns
    proc = memstore_cli(*args, "--max-steps", "2", timeout=1500)  # resumes: the references are not extracted again
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (out / "reference_facts.json").stat().st_mtime_ns == stamp
