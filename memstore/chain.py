"""Hash chain over the event log, one chain per bank.

Each event's `hash` covers the previous event's hash of the same bank and every column except
the private text, which enters through `content_digest` (sha256 of text, prev_text, reason,
cause). So `erase` can purge the text and the chain still verifies.

With a secret key (MEMSTORE_KEY, or a key file named by MEMSTORE_KEY_FILE) the chain is an
HMAC-SHA256 chain, and the inputs' digests are HMACs too: a writer without the key cannot append
an event, rewrite history or forge an ERASE tombstone that `verify` accepts. A file is keyed when
it is created with a key (the key's id, not the key, is kept in its `meta` table)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

GENESIS = "0" * 64

CHAINED_COLUMNS = (
    "seq", "event_id", "bank", "memory_id", "op", "outcome",
    "valid_at", "recorded_at", "actor", "source", "content_digest",
)


# one encoder for every digest: json.dumps with options builds a new encoder per call (a few µs
# an event on the append path); the bytes are the same
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _canonical(values: Iterable[Any]) -> bytes:
    return _ENCODER.encode(list(values)).encode()


def content_digest(values: Iterable[Any], key: bytes | None = None) -> str:
    data = _canonical(values)
    return hmac.new(key, data, hashlib.sha256).hexdigest() if key else hashlib.sha256(data).hexdigest()


def event_hash(prev_hash: str, row: Mapping[str, Any], key: bytes | None = None) -> str:
    data = prev_hash.encode() + b"\n" + _canonical(row[c] for c in CHAINED_COLUMNS)
    return hmac.new(key, data, hashlib.sha256).hexdigest() if key else hashlib.sha256(data).hexdigest()


def load_key(key: str | bytes | None = None) -> bytes | None:
    """The chain key: the argument, else $MEMSTORE_KEY, else the contents of $MEMSTORE_KEY_FILE."""
    if key is None:
        if os.environ.get("MEMSTORE_KEY"):
            key = os.environ["MEMSTORE_KEY"]
        elif os.environ.get("MEMSTORE_KEY_FILE"):
            from .errors import BadInput
            try:
                key = Path(os.environ["MEMSTORE_KEY_FILE"]).read_bytes().strip()
            except OSError as exc:
                raise BadInput(f"cannot read the key file MEMSTORE_KEY_FILE: {exc.strerror}") from None
    if isinstance(key, str):
        key = key.encode()
    return key or None


def key_id(key: bytes) -> str:
    """What the file keeps to recognise its key without holding it."""
    return hmac.new(key, b"memstore chain key id", hashlib.sha256).hexdigest()[:16]
