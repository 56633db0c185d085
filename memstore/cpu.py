"""How many CPU threads the models may use (llama.cpp, torch for embeddings and training)."""

from __future__ import annotations

import os


def threads() -> int:
    """MEMSTORE_THREADS, else every core. Two jobs sharing a small machine should split the
    cores: oversubscribed threads spin and run ~3x slower."""
    return int(os.environ.get("MEMSTORE_THREADS") or 0) or os.cpu_count() or 1
