"""Training arguments that cannot work are refused before any model is loaded."""

from __future__ import annotations

import json

import pytest

from memstore.errors import BadInput
from trainer.train import TrainConfig, _check_resumable


def cfg(**kw):
    return TrainConfig(**{"kind": "answer", "algo": "grpo", "data": "x.json", "conversations": ["conv-26"], **kw})


@pytest.mark.parametrize("bad, message", [({"algo": "ppo"}, "PPOTrainer"), ({"algo": "dpo"}, "unknown --algo"),
                                          ({"kind": "judge"}, "manager, answer or extract"), ({"generations": 1}, "--generations"),
                                          ({"kind": "extract", "algo": "sft", "init_adapter": "policy/adapters/extract.gguf"},
                                           "--init-adapter starts a --algo grpo run"),
                                          ({"init_adapter": "no/such.gguf"}, "no such GGUF file"),
                                          ({"kind": "extract", "anchors": 1.0}, "--anchor applies to"),
                                          ({"kind": "extract", "anchors": 11.0, "init_adapter": "policy/adapters/extract.gguf"},
                                           "--anchor must be between")])
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(BadInput, match=message):
        cfg(**bad).check()


def test_extraction_is_trained_with_the_window_its_adapter_is_served_with(tmp_path):
    from policy.prompts import EXTRACT_WINDOW
    assert cfg(kind="extract").extract_window() == EXTRACT_WINDOW
    assert cfg(kind="extract", init_adapter="policy/adapters/extract.gguf").extract_window() == 0  # the shipped SFT's
    assert cfg(kind="extract", init_adapter="policy/adapters/extract.gguf", window=3).extract_window() == 3


def test_resume_only_into_the_same_run(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.json").write_text(json.dumps({"kind": "answer", "algo": "grpo", "learning_rate": 1e-4}))
    _check_resumable(tmp_path, {"kind": "answer", "algo": "grpo", "learning_rate": 1e-4, "max_steps": 40})
    with pytest.raises(BadInput, match="learning_rate"):
        _check_resumable(tmp_path, {"kind": "answer", "algo": "grpo", "learning_rate": 5e-5})


def test_serving_refuses_an_adapter_trained_on_another_base_or_prompt(tmp_path):
    import json
    from types import SimpleNamespace

    from memstore.errors import BadInput
    from policy.agent import adapter_contract, check_contract, shipped_adapter
    from policy.models import QWEN_SHA256
    from policy.prompts import ANSWER_PROMPT_VERSION

    llm = SimpleNamespace(model=SimpleNamespace(sha256=QWEN_SHA256))
    gguf = tmp_path / "a.gguf"
    assert adapter_contract(gguf) == {}  # no export provenance: served unchecked
    (tmp_path / "a.gguf.json").write_text(json.dumps({"config": {"base_sha256": QWEN_SHA256, "memories": 8,
                                                                  "prompt_version": ANSWER_PROMPT_VERSION}}))
    contract = adapter_contract(gguf)
    assert contract["memories"] == 8
    check_contract(contract, llm, "answer", gguf)  # the same base and prompt: served
    with pytest.raises(BadInput, match="trained with manager prompt v0"):
        check_contract({**contract, "prompt_version": "v0"}, llm, "manager", gguf)
    with pytest.raises(BadInput, match="trained on base model sha256 0000"):
        check_contract({**contract, "base_sha256": "0" * 64}, llm, "answer", gguf)
    (tmp_path / "a.gguf.json").write_text("not json")
    with pytest.raises(BadInput, match="is not the JSON"):
        adapter_contract(gguf)
    for kind in ("answer", "manager", "extract"):  # the shipped adapters pass their own check
        check_contract(adapter_contract(shipped_adapter(kind)), llm, kind, shipped_adapter(kind))
