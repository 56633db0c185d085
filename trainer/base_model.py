"""The serving GGUF loaded into transformers for training (dequantized by transformers' GGUF
reader, so the trained LoRA sits on exactly the weights llama.cpp serves), and a small folder with
its config and tokenizer that the GGUF LoRA converter needs (no weights, no model hub)."""

from __future__ import annotations

from pathlib import Path

from policy.models import ModelFile, cache_dir, sha256_file


def load(model: ModelFile, dtype: str = "float32"):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model.path.parent), gguf_file=model.path.name)
    net = AutoModelForCausalLM.from_pretrained(str(model.path.parent), gguf_file=model.path.name,
                                               dtype=getattr(torch, dtype))
    # transformers marks a GGUF-loaded model as quantized although its weights are dequantized
    # fp32 tensors; the mark makes Trainer refuse it and would leak into the exported config.
    net.is_quantized, net.hf_quantizer = False, None
    if hasattr(net.config, "quantization_config"):
        del net.config.quantization_config
    net.config.architectures = net.config.architectures or [type(net).__name__]  # the converter routes on it
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return net, tokenizer


def config_dir(model: ModelFile, net=None, tokenizer=None) -> Path:
    """config.json + tokenizer files of the base, written once (from a loaded model when given)."""
    sha = (model.sha256 or sha256_file(model.path))[:12]
    target = cache_dir().parent / "hf-config" / f"{model.name}-{sha}"
    if (target / "config.json").exists() and (target / "tokenizer_config.json").exists():
        return target
    if net is None or tokenizer is None:
        net, tokenizer = load(model)
    target.mkdir(parents=True, exist_ok=True)
    net.config.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
