"""Plain records handed out by the store: one event, one memory (a projected version), one input."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple


def _json_or_none(value: str | None) -> Any:
    return None if value is None else json.loads(value)


@dataclass(frozen=True)
class Event:
    seq: int
    event_id: str
    bank: str
    memory_id: str
    op: str
    outcome: str
    text: str | None
    prev_text: str | None
    valid_at: str
    recorded_at: str
    actor: str
    reason: str | None
    source: list[str] = field(default_factory=list)
    cause: dict | None = None
    erased: bool = False
    hash: str = ""

    @classmethod
    def from_row(cls, row: "sqlite3.Row | dict") -> "Event":
        return cls(
            seq=row["seq"], event_id=row["event_id"], bank=row["bank"], memory_id=row["memory_id"],
            op=row["op"], outcome=row["outcome"], text=row["text"], prev_text=row["prev_text"],
            valid_at=row["valid_at"], recorded_at=row["recorded_at"], actor=row["actor"],
            reason=row["reason"], source=json.loads(row["source"]), cause=_json_or_none(row["cause"]),
            erased=bool(row["erased"]), hash=row["hash"],
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["id"] = self.memory_id
        return d


class Memory(NamedTuple):
    """One live memory as a projection shows it: its current version's text and provenance.
    A NamedTuple because replays build 10^4 of them at a time."""

    id: str
    text: str
    valid_at: str
    seq: int
    op: str
    actor: str
    reason: str | None

    @classmethod
    def from_row(cls, row: "sqlite3.Row | dict") -> "Memory":
        return cls(row["memory_id"], row["text"], row["valid_at"], row["seq"], row["op"], row["actor"], row["reason"])

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


@dataclass(frozen=True)
class Input:
    """One raw input (a dialogue turn or message) as it came in, before any policy saw it."""

    seq: int
    input_id: str
    bank: str
    speaker: str | None
    text: str | None
    time: str
    session: str | None
    meta: dict | None
    erased: bool

    @classmethod
    def from_row(cls, row: "sqlite3.Row | dict") -> "Input":
        return cls(seq=row["seq"], input_id=row["input_id"], bank=row["bank"], speaker=row["speaker"],
                   text=row["text"], time=row["time"], session=row["session"],
                   meta=_json_or_none(row["meta"]), erased=bool(row["erased"]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
