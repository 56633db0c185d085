"""`memstore export DIR --gguf PATH`: a trained peft LoRA adapter -> a GGUF LoRA that llama.cpp
loads as a LoRA adapter at run time (so `--policy learned` is served without transformers).

The converter is llama.cpp's own `convert_lora_to_gguf.py` with its `gguf-py` and `conversion`
package, taken from the llama-cpp-python sdist of the version we build (no model hub: the base
model's config and tokenizer come from trainer.base_model.config_dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from memstore.errors import BadInput
from policy.models import cache_dir, resolve, sha256_file

LLAMA_CPP_PYTHON = "0.3.36"
_MEMBERS = ("convert_lora_to_gguf.py", "convert_hf_to_gguf.py", "gguf-py/", "conversion/")


def converter() -> Path:
    """The vendored llama.cpp folder holding the converter, fetched once from PyPI's sdist."""
    root = cache_dir().parent / "llama-convert" / LLAMA_CPP_PYTHON
    if (root / "convert_lora_to_gguf.py").exists() and (root / "done").exists():
        return root
    sdists = cache_dir().parent / "sdist"
    sdist = sdists / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    if not sdist.exists():
        sdists.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
               f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", str(sdists)]
        if subprocess.run(cmd, capture_output=True, text=True).returncode != 0 or not sdist.exists():
            raise BadInput(f"could not download the llama-cpp-python {LLAMA_CPP_PYTHON} sdist (for its GGUF converter)")
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as tar:
        for m in tar.getmembers():
            rel = m.name[len(prefix):] if m.name.startswith(prefix) else None
            if rel and m.isfile() and rel.startswith(_MEMBERS):
                m.name = rel
                tar.extract(m, root, filter="data")
    (root / "done").write_text(LLAMA_CPP_PYTHON)
    return root


def export(run_dir: str | Path, gguf: str | Path, outtype: str = "f16") -> Path:
    run_dir, gguf = Path(run_dir), Path(gguf)
    adapter = run_dir / "adapter" if (run_dir / "adapter").is_dir() else run_dir
    if not (adapter / "adapter_config.json").exists():
        raise BadInput(f"no trained adapter in {run_dir} (expected adapter/adapter_config.json)")
    from trainer.base_model import config_dir

    model = None
    cfg_path = run_dir / "config.json"
    if cfg_path.exists():
        model = json.loads(cfg_path.read_text()).get("model")
    base = config_dir(resolve(model))
    tool = converter()
    gguf.parent.mkdir(parents=True, exist_ok=True)
    tmp = gguf.with_name(gguf.name + ".partial")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tool / "gguf-py"), str(tool)])}
    proc = subprocess.run([sys.executable, str(tool / "convert_lora_to_gguf.py"), "--base", str(base),
                           "--outtype", outtype, "--outfile", str(tmp), str(adapter)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BadInput(f"GGUF conversion failed: {last}")
    tmp.replace(gguf)
    provenance(run_dir, gguf)
    return gguf


def provenance(run_dir: Path, gguf: Path) -> Path:
    """PATH.json next to the GGUF: how it was trained and what it scored, so a shipped adapter
    explains itself."""
    info: dict = {"gguf_sha256": sha256_file(gguf)}
    for name in ("config.json", "result.json"):
        if (run_dir / name).exists():
            info[name.removesuffix(".json")] = json.loads((run_dir / name).read_text())
    out = gguf.with_name(gguf.name + ".json")
    out.write_text(json.dumps(info, indent=2))
    return out


# GGUF tensor name -> peft module name, for the projections trainer.lora adapts.
_GGUF_MODULES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
                 "attn_output": "self_attn.o_proj"}


def gguf_lora_weights(gguf: str | Path) -> tuple[dict, float]:
    """The inverse of `export`: a GGUF LoRA's tensors as a peft state dict (`lora_A`/`lora_B`
    weights by module) and its alpha, so a training run can start from an adapter that was shipped
    as GGUF only (GRPO of extraction starts from its SFT adapter)."""
    import gguf as gguf_py
    import numpy as np
    import torch

    try:
        reader = gguf_py.GGUFReader(str(gguf))
    except (OSError, ValueError) as e:
        raise BadInput(f"{gguf} is not a GGUF file: {e}") from None
    alpha = reader.fields.get("adapter.lora.alpha")
    if alpha is None:
        raise BadInput(f"{gguf} is not a LoRA adapter (no adapter.lora.alpha)")
    weights = {}
    for t in reader.tensors:
        parts = t.name.split(".")  # blk.N.attn_q.weight.lora_a
        if len(parts) != 5 or parts[0] != "blk" or parts[2] not in _GGUF_MODULES or parts[4] not in ("lora_a", "lora_b"):
            raise BadInput(f"{gguf}: tensor {t.name} is not one trainer.lora adapts")
        name = f"base_model.model.model.layers.{parts[1]}.{_GGUF_MODULES[parts[2]]}.lora_{parts[4][-1].upper()}.weight"
        shape = [int(x) for x in reversed(t.shape)]  # GGUF lists dimensions innermost first
        weights[name] = torch.from_numpy(np.asarray(t.data, dtype=np.float32).reshape(shape).copy())
    return weights, float(alpha.parts[alpha.data[0]][0])


def load_gguf_lora(model, gguf: str | Path) -> None:
    """Set a peft LoRA model's adapter to a GGUF LoRA's weights; refused in one line when its rank,
    alpha or adapted modules differ from the model's configuration."""
    import peft

    weights, alpha = gguf_lora_weights(gguf)
    config = model.peft_config["default"]
    own = {k.replace(".default", "") for k in peft.get_peft_model_state_dict(model)}
    rank = next((w.shape[0] for k, w in weights.items() if ".lora_A." in k), 0)  # lora_A: (rank, inputs)
    if set(weights) != own or rank != config.r or alpha != config.lora_alpha:
        raise BadInput(f"{gguf} is a LoRA of rank {rank}, alpha {alpha:g} on {len(weights) // 2} modules; this run "
                       f"trains rank {config.r}, alpha {config.lora_alpha:g} on {len(own) // 2}: "
                       "give the same --lora-layers it was trained with")
    result = peft.set_peft_model_state_dict(model, weights)
    if getattr(result, "unexpected_keys", None):
        raise BadInput(f"{gguf}: tensors the model does not have: {result.unexpected_keys[:3]}")
