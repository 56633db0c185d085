"""`memstore export DIR --gguf PATH`: a trained peft LoRA adapter -> a GGUF LoRA that llama.cpp
loads through `lora_path` (so `--policy learned` is served without transformers).

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
