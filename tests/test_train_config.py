"""Training arguments that cannot work are refused before any model is loaded."""

from __future__ import annotations

import json

import pytest

from memstore.errors import BadInput
from trainer.train import TrainConfig, _check_resumable


def cfg(**kw):
    return TrainConfig(**{"kind": "answer", "algo": "grpo", "data": "x.json", "conversations": ["conv-26"], **kw})


@pytest.mark.parametrize("bad, message", [({"algo": "ppo"}, "PPOTrainer"), ({"algo": "dpo"}, "unknown --algo"),
                                          ({"kind": "judge"}, "manager or answer"), ({"generations": 1}, "--generations")])
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(BadInput, match=message):
        cfg(**bad).check()


def test_resume_only_into_the_same_run(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.json").write_text(json.dumps({"kind": "answer", "algo": "grpo", "learning_rate": 1e-4}))
    _check_resumable(tmp_path, {"kind": "answer", "algo": "grpo", "learning_rate": 1e-4, "max_steps": 40})
    with pytest.raises(BadInput, match="learning_rate"):
        _check_resumable(tmp_path, {"kind": "answer", "algo": "grpo", "learning_rate": 5e-5})
