"""The as-of clock. Every timestamp is stored as fixed-width ISO-8601 UTC text with microseconds,
so that SQL compares them as strings in time order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timezone

from .errors import BadInput

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def now_stamp() -> str:
    return datetime.now(timezone.utc).strftime(STAMP_FORMAT)


def to_stamp(value: str | datetime | date | None, *, end_of_day: bool = False) -> str:
    """Normalise a user timestamp. A bare date means its start, or its end with `end_of_day`
    (so `replay --as-of 2023-05-08` includes what was observed during that day).
    Naive datetimes are taken as UTC."""
    if value is None:
        return now_stamp()
    if isinstance(value, str):
        text = value.strip()
        try:
            if _DATE_ONLY.match(text):
                value = date.fromisoformat(text)
            else:
                value = datetime.fromisoformat(text)
        except ValueError:
            raise BadInput(f"bad timestamp {value!r}: expected an ISO date or datetime such as 2023-05-08 or 2023-05-08T13:56:00") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time.max if end_of_day else time.min)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime(STAMP_FORMAT)


@dataclass(frozen=True)
class Cutoff:
    """Where a projection stops: at a time (`valid_at <= time`) or at a log position (`seq <= seq`)."""

    time: str | None = None
    seq: int | None = None

    def describe(self) -> str:
        if self.seq is not None:
            return f"@{self.seq}"
        return self.time or "now"


def parse_cutoff(value: str | int | datetime | date | Cutoff | None) -> Cutoff:
    """`None` is 'everything', `@N` or an int is a log position, anything else a time."""
    if value is None:
        return Cutoff()
    if isinstance(value, Cutoff):
        return value
    if isinstance(value, int):
        return Cutoff(seq=value)
    if isinstance(value, str) and value.strip().startswith("@"):
        digits = value.strip()[1:]
        if not digits.isdigit():
            raise BadInput(f"bad log position {value!r}: expected @SEQ such as @42")
        return Cutoff(seq=int(digits))
    return Cutoff(time=to_stamp(value, end_of_day=True))
