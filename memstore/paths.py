"""Where memstore keeps files it can rebuild or re-assemble (models, saved vector indexes of a
PostgreSQL database): $MEMSTORE_CACHE, else ~/.cache/memstore."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("MEMSTORE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "memstore"))
