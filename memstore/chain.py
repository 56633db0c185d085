"""Hash chain over the event log, one chain per bank.

Each event's `hash` covers the previous event's hash of the same bank and every column except
the private text, which enters through `content_digest` (sha256 of text, prev_text, reason,
cause). So `erase` can purge the text and the chain still verifies."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping

GENESIS = "0" * 64

CHAINED_COLUMNS = (
    "seq", "event_id", "bank", "memory_id", "op", "outcome",
    "valid_at", "recorded_at", "actor", "source", "content_digest",
)


def _canonical(values: Iterable[Any]) -> bytes:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":")).encode()


def content_digest(values: Iterable[Any]) -> str:
    return hashlib.sha256(_canonical(values)).hexdigest()


def event_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + _canonical(row[c] for c in CHAINED_COLUMNS)).hexdigest()
