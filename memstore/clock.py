"""The as-of clock. Every timestamp is stored as fixed-width ISO-8601 UTC text with microseconds,
so that SQL compares them as strings in time order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timezone

from .errors import BadInput

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # for parsing; writing goes through format_stamp
MAX_SEQ = 2**63 - 1  # SQLite's largest integer
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STORED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", re.ASCII)  # a stamp as format_stamp writes it


def format_stamp(value: datetime) -> str:
    """A UTC datetime as the log stores it: always 27 characters, the year zero-padded (strftime's
    %Y writes year 999 as '999', which would sort after '2023')."""
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:" \
           f"{value.second:02d}.{value.microsecond:06d}Z"


def now_stamp() -> str:
    return format_stamp(datetime.now(timezone.utc))


def to_stamp(value: str | datetime | date | None, *, end_of_day: bool = False) -> str:
    """Normalise a user timestamp. A bare date means its start, or its end with `end_of_day`
    (so `replay --as-of 2023-05-08` includes what was observed during that day).
    Naive datetimes are taken as UTC."""
    if value is None:
        return now_stamp()
    if not isinstance(value, (str, date)):  # datetime is a date
        raise BadInput(f"bad timestamp {value!r}: expected an ISO date or datetime string, a date or a datetime")
    if isinstance(value, str):
        text = value.strip()
        if _STORED.fullmatch(text):  # already stored form (imports, replays): check it is a real time, keep it
            try:
                datetime.fromisoformat(text)
                return text
            except ValueError:
                pass  # fall through to the one-line error below
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
    try:
        return format_stamp(value.astimezone(timezone.utc))
    except OverflowError:
        raise BadInput(f"timestamp {value.isoformat()} falls outside years 0001-9999 once converted to UTC") from None


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
    if isinstance(value, str) and value.strip().startswith("@"):
        digits = value.strip()[1:]
        if not digits.isascii() or not digits.isdigit():
            raise BadInput(f"bad log position {value!r}: expected @SEQ such as @42")
        return Cutoff(seq=min(int(digits), MAX_SEQ))  # past the end of the log is the whole log
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise BadInput(f"bad log position {value}: positions start at 0")
        return Cutoff(seq=min(value, MAX_SEQ))
    return Cutoff(time=to_stamp(value, end_of_day=True))
