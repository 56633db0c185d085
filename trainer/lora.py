"""The LoRA that every trainer fits: rank r on the attention projections of the top layers."""

from __future__ import annotations


def lora(net, cfg):
    """`cfg`: a training configuration with `lora_r` and `lora_layers` (trainer.train.TrainConfig)."""
    from peft import LoraConfig
    n = net.config.num_hidden_layers
    return LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      layers_to_transform=list(range(max(n - cfg.lora_layers, 0), n)))
