"""Copy every bank of one database into a new one, on either engine (SQLite <-> PostgreSQL),
chain and all: the events and inputs row for row (seqs, hashes, salts and erasures as they are),
the derived caches (embeddings, extracted facts) and the chain key's id; the projection is then
rebuilt from the copied log. Every bank's head (seq, hash) must come out equal and the copy must
verify, or nothing is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .audit import head
from .errors import BadInput, StoreUnavailable
from .store import MemoryStore

_EVENTS = ("seq", "event_id", "bank", "memory_id", "op", "outcome", "text", "prev_text", "valid_at", "recorded_at",
           "actor", "reason", "source", "cause", "content_digest", "erased", "prev_hash", "hash", "salt", "inputs_head")
_INPUTS = ("seq", "input_id", "bank", "speaker", "text", "time", "session", "meta", "recorded_at", "content_digest",
           "erased", "salt", "prev_hash", "hash")
_CACHES = {"embeddings": ("model", "text_hash", "vector"),
           "fact_cache": ("input_key", "model", "prompt_version", "facts")}
CHUNK = 2000


def _copy(src, dst, table: str, columns: tuple[str, ...], order: str = "") -> int:
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    cur = src.conn.execute(f"SELECT {', '.join(columns)} FROM {table} {order}")
    n = 0
    while rows := cur.fetchmany(CHUNK):
        dst.conn.executemany(insert, [tuple(r) for r in rows])
        n += len(rows)
    return n


def migrate(source: str | Path, target: str | Path, *, timeout: float = 10.0,
            progress: Callable[[str], None] | None = None) -> dict:
    src = MemoryStore(source, create=False, timeout=timeout)
    try:
        if not src.banks():
            raise BadInput(f"{src.engine.label} holds no bank to copy")
        dst = MemoryStore(target, create=True, timeout=timeout)
        try:
            if dst.banks() or dst.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]:
                raise BadInput(f"{dst.engine.label} already holds banks: migrate copies into a new, empty database")
            with dst.transaction():
                dst.engine.bulk_start()  # the projection is rebuilt once, below, not per copied event
                counts = {}
                for table, columns, order in (("inputs", _INPUTS, "ORDER BY seq"), ("events", _EVENTS, "ORDER BY seq"),
                                              *((t, c, "") for t, c in _CACHES.items())):
                    if progress:
                        progress(table)
                    counts[table] = _copy(src, dst, table, columns, order)
                key_id = src.conn.execute("SELECT value FROM meta WHERE key = 'chain_key_id'").fetchone()
                if key_id and not dst.keyed:
                    dst.conn.execute("INSERT INTO meta VALUES ('chain_key_id', ?)", (key_id[0],))
                dst.engine.after_copy()
                dst.engine.repair()
        finally:
            dst.engine.bulk_cleanup()
            dst.close()
        # a fresh open of the copy, with the source's key: every head equal, and it verifies
        copy = MemoryStore(target, create=False, timeout=timeout, key=src.key)
        try:
            heads = {bank: head(src, bank)["anchor"] for bank in src.banks()}
            for bank, anchor in heads.items():
                if head(copy, bank)["anchor"] != anchor:
                    raise StoreUnavailable(f"bank {bank!r}: the copy's head differs from the source's")
            check = copy.verify(all_banks=True, deep=True) if src.key is not None or not src.keyed else {"ok": None}
            if check["ok"] is False:
                raise StoreUnavailable(f"the copy does not verify: {check['problem']}")
            return {"source": src.engine.label, "target": copy.engine.label, "banks": heads, **counts,
                    "verified": check["ok"]}
        finally:
            copy.close()
    finally:
        src.close()

