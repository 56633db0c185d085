"""The GRPO loop's parts (trainer/grpo.py) on a tiny random Qwen2 in torch (plumbing: no claim
rests on it): group advantages and dynamic sampling, the epoch schedule a resumed run continues,
and that the shared-prompt log-probabilities equal a plain forward pass of each whole sequence."""

from __future__ import annotations

import types

import pytest

from trainer.grpo import group_advantages, schedule, total_steps


def test_equal_rewards_have_no_advantage_and_are_dropped():
    assert group_advantages([0.5, 0.5, 0.5, 0.5]) is None
    adv = group_advantages([1.0, 0.0, 0.0, 1.0])
    assert adv == pytest.approx([1.0, -1.0, -1.0, 1.0], abs=1e-3)
    assert sum(group_advantages([0.2, 0.9, 0.4])) == pytest.approx(0.0, abs=1e-9)


def test_schedule_visits_every_example_once_per_epoch_and_is_deterministic():
    n, per = 7, 2
    steps = [schedule(n, s, per, seed=3) for s in range(7)]  # 14 slots = 2 epochs
    flat = [i for s in steps for i in s]
    assert sorted(flat[:7]) == list(range(7)) and sorted(flat[7:]) == list(range(7))
    assert flat[:7] != flat[7:]  # each epoch has its own order
    assert schedule(n, 4, per, seed=3) == steps[4]  # a resumed run picks up the same examples
    cfg = types.SimpleNamespace(epochs=2.0, prompts_per_step=2, max_steps=99)
    assert total_steps(cfg, 7) == 7
    assert total_steps(types.SimpleNamespace(epochs=0, prompts_per_step=1, max_steps=5), 7) == 5


@pytest.fixture(scope="module")
def learner():
    torch = pytest.importorskip("torch")
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from trainer.grpo import Learner
    from trainer.train import TrainConfig

    torch.manual_seed(0)
    net = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128))
    tokenizer = types.SimpleNamespace(convert_tokens_to_ids=lambda t: 63, eos_token_id=63)
    cfg = TrainConfig(kind="answer", algo="grpo", data="-", conversations=[], lora_layers=2, lora_r=4)
    out = Learner(net, tokenizer, cfg)
    for p in out.params:  # LoRA B starts at zero; make the adapter matter
        torch.nn.init.normal_(p, std=0.2)
    return out


def test_shared_prompt_logprobs_equal_a_plain_forward_of_each_sequence(learner):
    import torch
    prompt = [5, 9, 11, 3, 7, 2]
    completions = [[4, 8, 15], [16, 23], [42, 1, 2, 3]]
    logp, mask = learner.logprobs(prompt, completions)
    for i, c in enumerate(completions):
        ids = torch.tensor([prompt + c])
        full = torch.log_softmax(learner.model(input_ids=ids).logits[0], -1)
        want = [full[len(prompt) - 1 + j, t].item() for j, t in enumerate(c)]
        assert logp[i, :len(c)].tolist() == pytest.approx(want, abs=1e-4)
        assert mask[i].tolist() == [1.0] * len(c) + [0.0] * (4 - len(c))


def test_the_group_loss_pushes_up_the_better_completion(learner):
    import torch
    prompt, good, bad = [5, 9, 11, 3], [4, 8], [16, 23]
    before = learner.logprobs(prompt, [good, bad])[0].sum(-1).detach()
    opt = torch.optim.SGD(learner.params, lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        learner.group_loss(prompt, [good, bad], [1.0, -1.0]).backward()
        opt.step()
    after = learner.logprobs(prompt, [good, bad])[0].sum(-1).detach()
    assert after[0] > before[0] and after[1] < before[1]
