"""The hnswlib view of a bank: a projection of the log like `replay`, searchable at any time.

One vector per memory version (label = the version's event seq), with the interval in which the
version is alive in both clocks, read from the trigger-kept `versions` table. `search(as_of=T)`
keeps only versions alive at T, without rebuilding anything:
- when few versions are alive at T (under `exact_below`), it scores them all exactly (numpy);
  (bench/bench_search.py measured where exact scoring stops beating the filtered HNSW query)
- otherwise it asks HNSW with a filter on the alive set, widening `ef` as the alive share drops.
The index is saved next to the database with the log position it covers, the hash of the event
there and the file's id; on open (and before every search) it catches up from the log, so it never
answers from a stale state, and an index of another file or another history is rebuilt. An erasure
since the saved position forces a rebuild, so erased vectors do not survive in the file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import hnswlib
import numpy as np

from .clock import Cutoff, parse_cutoff
from .embed import CachedEmbedder, Embedder
from .lexical import hybrid_order

_FAR = np.iinfo(np.int64).max


def _stem(db_path: Path, bank: str, model: str) -> str:
    """Saved indexes sit beside the database: DB.BANK.MODEL.hnsw and DB.BANK.MODEL.hnsw.json."""
    return f"{db_path.name}.{bank}.{model}"


def drop_saved(db_path: Path, bank: str | None = None) -> None:
    """Delete the saved indexes of one bank (any model), or of every bank: they are rebuilt from
    the log on the next search."""
    for path in db_path.parent.glob(_stem(db_path, bank or "*", "*") + ".hnsw*"):
        path.unlink(missing_ok=True)


def _to_us(stamps) -> np.ndarray:
    """Fixed-format UTC stamps -> exact int64 microseconds since the epoch (None -> far future)."""
    arr = np.array([x[:-1] if x else "NaT" for x in stamps], dtype="datetime64[us]").astype(np.int64)
    arr[arr == np.iinfo(np.int64).min] = _FAR
    return arr


@dataclass
class Hit:
    id: str
    text: str
    score: float
    valid_at: str
    seq: int

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "score": self.score, "valid_at": self.valid_at, "seq": self.seq}


class VectorView:
    def __init__(self, conn: sqlite3.Connection, db_path: Path, bank: str, embedder: Embedder, *,
                 exact_below: int = 5_000, M: int = 16, ef_construction: int = 200,
                 progress: Callable[[int, int], None] | None = None, cache: bool = True):
        self.conn, self.bank = conn, bank
        self.embedder = CachedEmbedder(conn, embedder, write=cache)  # a read-only replica reads the cache only
        self.exact_below, self.M, self.ef_construction = exact_below, M, ef_construction
        self.progress = progress
        self.unsaved = 0          # versions added since the last save
        stem = _stem(db_path, bank, embedder.name)
        self.index_path = db_path.with_name(stem + ".hnsw")
        self.meta_path = db_path.with_name(stem + ".hnsw.json")
        self.covered = 0          # log position the index reflects
        self._matrix = np.zeros((0, embedder.dim), dtype=np.float32)  # rows aligned with self.labels
        self.erasures = 0
        self.index: hnswlib.Index | None = None
        self._load_or_rebuild()

    # ---- state -------------------------------------------------------------------------
    def _new_index(self, capacity: int) -> hnswlib.Index:
        index = hnswlib.Index(space="cosine", dim=self.embedder.dim)
        index.init_index(max_elements=max(capacity, 1024), ef_construction=self.ef_construction, M=self.M,
                         random_seed=0)
        return index

    def _log_position(self) -> tuple[int, int]:
        seq = self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE bank = ?", (self.bank,)).fetchone()[0]
        return seq, self._erasures()

    def _erasures(self) -> int:
        """The bank's erasure generation: how many ERASE tombstones its log holds (an index seek)."""
        return self.conn.execute("SELECT COUNT(*) FROM events WHERE bank = ? AND op = 'ERASE'",
                                 (self.bank,)).fetchone()[0]

    def _saved_erasures(self) -> int:
        try:
            return int(json.loads(self.meta_path.read_text()).get("erasures", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            return 0

    def _load_or_rebuild(self) -> None:
        meta = None
        if self.meta_path.exists() and self.index_path.exists():
            try:
                meta = json.loads(self.meta_path.read_text())
            except ValueError:
                meta = None
        ok = (meta and meta.get("model") == self.embedder.name and meta.get("bank") == self.bank
              and meta.get("index_bytes") == self.index_path.stat().st_size
              and meta.get("db_id") == self._db_id() and meta.get("covered_hash") == self._hash_at(meta.get("covered_seq")))
        if ok:
            self.index = hnswlib.Index(space="cosine", dim=self.embedder.dim)
            self.index.load_index(str(self.index_path), max_elements=meta["capacity"])
            self.covered, self.erasures = meta["covered_seq"], meta["erasures"]
            self._load_intervals()
            indexed = self.labels[self.labels <= self.covered]  # the rest comes with the catch-up below
            self._append_rows(self.index.get_items(indexed, return_type="numpy"))
        else:
            self.rebuild(save=False)
        self.refresh()

    def _db_id(self) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'db_id'").fetchone()
        return row[0] if row else None

    def _hash_at(self, seq) -> str | None:
        """The hash of the bank's event at `seq`: a saved index is only reused by the database,
        and the history, it was built from (a new file at the same path has other hashes)."""
        if not isinstance(seq, int) or seq <= 0:
            return None
        row = self.conn.execute("SELECT hash FROM events WHERE bank = ? AND seq = ?", (self.bank, seq)).fetchone()
        return row[0] if row else "missing"

    def rebuild(self, save: bool = True) -> None:
        """Drop the index and embed every version again from the log (cached vectors reused)."""
        self.index = self._new_index(1024)
        self.covered, self.erasures = 0, 0
        self._matrix = self._matrix[:0]
        self._load_intervals()
        if save:
            self.refresh()

    def _load_intervals(self) -> None:
        rows = self.conn.execute(
            "SELECT event_seq, COALESCE(end_seq, ?), start_valid, end_valid FROM versions "
            "WHERE bank = ? ORDER BY event_seq", (_FAR, self.bank)).fetchall()
        self.labels = np.array([r[0] for r in rows], dtype=np.int64)
        self.seq_end = np.array([r[1] for r in rows], dtype=np.int64)
        self.t_start = _to_us([r[2] for r in rows])
        self.t_end = _to_us([r[3] for r in rows])

    SAVE_EVERY = 1000

    def refresh(self) -> int:
        """Catch up with the log; returns how many versions were added. Cheap when current.
        Saves once enough has changed (and on `save()`/close), not after every small step: the
        saved position only decides how much the next open has to catch up."""
        position, erasures = self._log_position()
        purge = erasures != self.erasures
        if purge:  # rebuild without the erased versions, and overwrite the saved file at once
            self.index = self._new_index(1024)
            self.covered = 0
            self._matrix = self._matrix[:0]
        if position == self.covered and erasures == self.erasures:
            return 0
        new = self.conn.execute(
            "SELECT event_seq, text FROM versions WHERE bank = ? AND event_seq > ? ORDER BY event_seq",
            (self.bank, self.covered)).fetchall()
        added = 0
        for start in range(0, len(new), 256):
            chunk = new[start:start + 256]
            vectors = self.embedder.embed([t for _, t in chunk])
            need = self.index.get_current_count() + len(chunk)
            if need > self.index.get_max_elements():
                self.index.resize_index(max(need, 2 * self.index.get_max_elements()))
            self.index.add_items(vectors, np.array([s for s, _ in chunk], dtype=np.int64))
            self._append_rows(vectors)
            added += len(chunk)
            if self.progress:
                self.progress(added, len(new))
        self.covered, self.erasures = position, erasures
        self._load_intervals()
        self.unsaved += added
        if purge or self.unsaved >= self.SAVE_EVERY:
            self.save()
        return added

    def _append_rows(self, vectors: np.ndarray) -> None:
        """Keep a float32 copy of the vectors in label order (new labels always come last, as
        event seqs only grow): exact scoring reads it without copying out of hnswlib."""
        n = len(self._matrix)
        if not hasattr(self, "_buffer") or n + len(vectors) > len(self._buffer) or self._matrix.base is not self._buffer:
            buffer = np.zeros((max(1024, 2 * (n + len(vectors))), self.embedder.dim), dtype=np.float32)
            buffer[:n] = self._matrix
            self._buffer = buffer
        self._buffer[n:n + len(vectors)] = vectors
        self._matrix = self._buffer[:n + len(vectors)]

    def save(self) -> None:
        """Index first, then metadata naming its size: a crash between the two is seen on open.
        Never over a newer erasure generation: a view opened before another process erased from
        the bank still holds the erased vectors, and must not write them back; if an erasure
        lands while it writes, the files it wrote are removed."""
        if (self.unsaved == 0 and self.meta_path.exists()) or self.conn.in_transaction:
            return  # never persist what a transaction might still roll back
        if self._erasures() != self.erasures or self._saved_erasures() > self.erasures:
            return
        tmp = self.index_path.with_suffix(".hnsw.tmp")
        self.index.save_index(str(tmp))
        os.replace(tmp, self.index_path)
        meta = {"model": self.embedder.name, "bank": self.bank, "db_id": self._db_id(),
                "covered_seq": self.covered, "covered_hash": self._hash_at(self.covered),
                "erasures": self.erasures, "count": self.index.get_current_count(),
                "capacity": self.index.get_max_elements(), "index_bytes": self.index_path.stat().st_size}
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.meta_path)
        self.unsaved = 0
        if self._erasures() != self.erasures:  # an erase committed meanwhile; its own cleanup may be done
            self.index_path.unlink(missing_ok=True)
            self.meta_path.unlink(missing_ok=True)

    # ---- search ------------------------------------------------------------------------
    def alive(self, cutoff: Cutoff) -> np.ndarray:
        """Labels of the versions alive at the cutoff (same rule as `replay`)."""
        if cutoff.time is not None:
            t = _to_us([cutoff.time])[0]
            mask = (self.t_start <= t) & (self.t_end > t)
        elif cutoff.seq is not None:
            mask = (self.labels <= cutoff.seq) & (self.seq_end > cutoff.seq)
        else:
            mask = self.seq_end == _FAR
        return self.labels[mask]

    def search(self, query: str, k: int = 10, as_of=None, hybrid: bool = False) -> list[Hit]:
        """The k versions alive at `as_of` closest to the query by cosine, or with `hybrid` the k
        first by the cosine order with its tail filled by a word match (`lexical`), each scored by its cosine."""
        self.refresh()
        cutoff = parse_cutoff(as_of)
        alive = self.alive(cutoff)
        if len(alive) == 0 or k <= 0:
            return []
        q = self.embedder.inner.embed([query])[0]  # queries are not cached: they are not memories
        k = min(k, len(alive))
        if hybrid:
            return self._hybrid(query, q, alive, k)
        if len(alive) < self.exact_below:
            rows = np.searchsorted(self.labels, alive)
            scores = self._matrix[rows] @ q
            top = np.argsort(-scores, kind="stable")[:k]
            found = [(int(alive[i]), float(scores[i])) for i in top]
        else:
            allowed = set(alive.tolist())
            share = len(alive) / max(len(self.labels), 1)
            self.index.set_ef(int(min(4000, max(64, 4 * k) / max(share, 0.02) ** 0.5)))
            labels, distances = self.index.knn_query(q, k=k, filter=allowed.__contains__)
            found = [(int(l), 1.0 - float(d)) for l, d in zip(labels[0], distances[0])]
        return self._hits(found)

    def vectors(self, seqs: Sequence[int]) -> np.ndarray:
        """The stored vectors of these versions (event seqs), in order."""
        self.refresh()
        return self._matrix[np.searchsorted(self.labels, np.asarray(seqs, dtype=self.labels.dtype))]

    def _hybrid(self, query: str, q: np.ndarray, alive: np.ndarray, k: int) -> list[Hit]:
        """Every alive version's cosine (exact: the rows are in memory) and text, ranked by
        `lexical.hybrid_order`."""
        texts = dict(self.conn.execute("SELECT event_seq, text FROM versions WHERE bank = ? AND text IS NOT NULL",
                                       (self.bank,)).fetchall())
        alive = np.array([s for s in alive.tolist() if s in texts], dtype=self.labels.dtype)
        if len(alive) == 0:
            return []
        scores = self._matrix[np.searchsorted(self.labels, alive)] @ q
        order = hybrid_order(query, [texts[int(s)] for s in alive], scores, k)
        return self._hits([(int(alive[i]), float(scores[i])) for i in order])

    def _hits(self, found: list[tuple[int, float]]) -> list[Hit]:
        if not found:
            return []
        rows = {r[0]: r for r in self.conn.execute(
            f"SELECT event_seq, memory_id, text, start_valid FROM versions WHERE event_seq IN ({','.join('?' * len(found))})",
            [s for s, _ in found])}
        return [Hit(id=rows[s][1], text=rows[s][2], score=round(score, 6), valid_at=rows[s][3], seq=s)
                for s, score in found if s in rows]
