#!/usr/bin/env bash
# One install command for a fresh machine: a venv in .venv with everything memstore needs.
# torch goes first, pinned to the CPU wheel on disk (any other spec pulls GBs of CUDA);
# llama-cpp-python has no wheel on PyPI and compiles here (~7 min once; pip caches the wheel).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

# Run a pip step, hiding the noise of this machine's offline index mirrors but never its failures.
quiet() {
  local log; log=$(mktemp)
  if "$@" >"$log" 2>&1; then grep -v "is ignored" "$log" | tail -n 2 || true
  else grep -v "is ignored" "$log" >&2; echo "install.sh: failed: $*" >&2; return 1; fi
}

[ -x .venv/bin/python ] || "$PY" -m venv .venv
quiet .venv/bin/pip install -q torch==2.13.0
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}" quiet .venv/bin/pip install -q -e ".[dev,browse,peers]"
.venv/bin/python -c "import memstore, llama_cpp, torch, hnswlib, duckdb"
echo "memstore installed in .venv (activate with: source .venv/bin/activate)"
