"""Relative times made absolute against the day a message was said: "yesterday" in a message of
8 May, 2023 is "on 7 May, 2023".

A memory outlives the message it came from: read weeks later, "Gina adopted a dog last week" says
nothing about when, and a small reader cannot do the date arithmetic from the memory's own date.
So the one parser of extracted facts (policy.facts.clean_facts) writes every relative expression
of a fact as the absolute time it points at, and training's observation targets are dated the
same way (`when_said`). Each meaning starts with the preposition it needs ("on 7 May, 2023", "in
April, 2023"), which replaces the expression's place in the sentence; after a preposition of its
own ("since yesterday") the meaning's is dropped ("since 7 May, 2023")."""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from typing import Callable

from .prompts import spoken_date

_WEEKDAYS = [d.casefold() for d in calendar.day_name]
_NUMBERS = {"a few": 3, "a couple of": 2, "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
            "few": 3, "couple of": 2}  # longer phrases first: "a few" is not "a"
HAS_DATE = re.compile(r"\b(19|20)\d\d\b|\b(" + "|".join(calendar.month_name[1:]) + r")\b")
_DAY = re.compile(r"\b\d{1,2} (?:" + "|".join(calendar.month_name[1:]) + r"),? \d{4}\b")
_OWN_PREPOSITION = re.compile(r"\b(since|until|till|from|by|before|after|of)\s+$", re.I)


def _month(d: date, delta: int) -> date:
    m = d.month - 1 + delta
    return date(d.year + m // 12, m % 12 + 1, 1)


def _ago(n: int, unit: str, day: date) -> str:
    if unit == "day":
        return f"on {spoken_date(str(day - timedelta(days=n)))}"
    if unit == "week":
        return f"in the week of {spoken_date(str(day - timedelta(weeks=n)))}"
    if unit == "month":
        return f"in {_month(day, -n).strftime('%B, %Y')}"
    return f"in {day.year - n}"


def _last_weekday(name: str, day: date) -> str:
    back = (day.weekday() - _WEEKDAYS.index(name)) % 7 or 7
    return f"on {spoken_date(str(day - timedelta(days=back)))}"


def _rules(day: date) -> list[tuple[re.Pattern, Callable[[re.Match], str]]]:
    """(expression, its meaning said on `day`); earlier rules win where two overlap."""
    said = spoken_date(str(day))
    fixed = [
        *((rf"\b(?:{words})\b", f"on {spoken_date(str(day + timedelta(days=shift)))}")
          for words, shift in (("yesterday", -1), ("today|this morning|tonight", 0), ("tomorrow", 1))),
        *((rf"\b(?:{words})\b", f"{meaning} {said}")
          for words, meaning in (("last weekend", "on the weekend before"),
                                 ("next weekend|this weekend", "on the weekend after"),
                                 ("last week", "in the week before"), ("next week", "in the week after"))),
        *((rf"\b{words} month\b", f"in {_month(day, shift).strftime('%B, %Y')}")
          for words, shift in (("last", -1), ("next", 1), ("this", 0))),
        *((rf"\b{words} year\b", f"in {day.year + shift}") for words, shift in (("last", -1), ("next", 1))),
    ]
    numbers = "|".join(_NUMBERS)
    return [
        *((re.compile(p, re.I), lambda m, meaning=meaning: meaning) for p, meaning in fixed),
        (re.compile(rf"\b(\d+|{numbers}) (day|week|month|year)s? ago\b", re.I),
         lambda m: _ago(int(m.group(1)) if m.group(1).isdigit() else _NUMBERS[m.group(1).casefold()],
                        m.group(2).casefold(), day)),
        (re.compile(r"\blast (" + "|".join(_WEEKDAYS) + r")\b", re.I),
         lambda m: _last_weekday(m.group(1).casefold(), day)),
    ]


def when_said(text: str, day: date) -> str | None:
    """The absolute time a message's first relative expression points at; None when it has none."""
    for pattern, meaning in _rules(day):
        if m := pattern.search(text):
            return meaning(m)
    return None


def days_named(text: str) -> set[str]:
    """The absolute days a text names ("on 7 May, 2023" -> {"7 May 2023"}), as `resolve_times` writes them."""
    return {d.replace(",", "") for d in _DAY.findall(text)}


def resolve_times(fact: str, day: str | date) -> str:
    """`fact` with each relative expression written as the absolute time it points at, said on
    `day` (a date or ISO text)."""
    day = day if isinstance(day, date) else date.fromisoformat(str(day)[:10])
    for pattern, meaning in _rules(day):
        def absolute(m: re.Match, meaning=meaning) -> str:
            text = meaning(m)
            if _OWN_PREPOSITION.search(m.string[:m.start()]):
                text = text.split(" ", 1)[1]
            return text
        fact = pattern.sub(absolute, fact)
    return fact
