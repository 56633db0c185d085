"""Hash chain over the event log, one chain per bank.

Each event's `hash` covers the previous event's hash of the same bank and every column except
the private text, which enters through `content_digest` (sha256 of a random per-event salt and
text, prev_text, reason, cause). So `erase` can purge the text, and the salt with it, and the chain
still verifies, while the digest left behind can no longer be matched against guesses of the text.

The recorded inputs (dialogue turns) form a second chain per bank: each input's `hash` covers the
previous input's, its id, bank, time, session, recording time and its (salted) content digest;
and every event carries the hash of the bank's newest input when it was appended (`inputs_head`),
inside its own hash. So an anchor on an event covers the inputs recorded before it as well.

With a secret key (MEMSTORE_KEY, or a key file named by MEMSTORE_KEY_FILE) the chain is an
HMAC-SHA256 chain, and the inputs' digests are HMACs too: a writer without the key cannot append
an event, rewrite history or forge an ERASE tombstone that `verify` accepts. A file is keyed when
it is created with a key (the key's id, not the key, is kept in its `meta` table)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterable, Mapping

GENESIS = "0" * 64

CHAINED_COLUMNS = (
    "seq", "event_id", "bank", "memory_id", "op", "outcome",
    "valid_at", "recorded_at", "actor", "source", "content_digest",
)
# Events written since schema 4 also chain the input chain's head (older ones have it NULL, and
# their hash was made without it: which form applies is itself fixed by the hash).
BOUND_COLUMNS = CHAINED_COLUMNS + ("inputs_head",)
INPUT_CHAINED_COLUMNS = ("seq", "input_id", "bank", "time", "session", "recorded_at", "content_digest")


# one encoder for every digest: json.dumps with options builds a new encoder per call (a few µs
# an event on the append path); the bytes are the same
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _canonical(values: Iterable[Any]) -> bytes:
    return _ENCODER.encode(list(values)).encode()


def new_salt() -> str:
    """128 random bits: with the salt purged, a digest cannot be matched by trying texts."""
    return secrets.token_hex(16)


def _digest(data: bytes, key: bytes | None) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest() if key else hashlib.sha256(data).hexdigest()


def content_digest(values: Iterable[Any], key: bytes | None = None, salt: str | None = None) -> str:
    """Digest of private content; `salt` None is the unsalted form of rows written before schema 4."""
    data = _canonical(values)
    return _digest(data if salt is None else salt.encode() + b"\n" + data, key)


def event_hash(prev_hash: str, row: Mapping[str, Any], key: bytes | None = None) -> str:
    columns = CHAINED_COLUMNS if row.get("inputs_head") is None else BOUND_COLUMNS
    return _digest(prev_hash.encode() + b"\n" + _canonical(row[c] for c in columns), key)


def input_hash(prev_hash: str, row: Mapping[str, Any], key: bytes | None = None) -> str:
    return _digest(b"input\n" + prev_hash.encode() + b"\n" + _canonical(row[c] for c in INPUT_CHAINED_COLUMNS), key)


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
