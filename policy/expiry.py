"""The competent heuristic stack a learned policy has to beat on a user's own tasks: dated entries
(every memory keeps its observation date in the answer prompt, as always), recency-weighted
retrieval (the answerer's `recency_weight`) and scheduled expiry, on top of `heuristic`'s
duplicate and supersede rules.

Expiry rules are `KIND=DAYS`: a memory whose text matches KIND (a word or regular expression,
case-insensitive; `*` matches every memory) expires DAYS after its current version was observed
(an UPDATE restarts the clock); the first matching rule wins. An expiry is an ordinary DELETE
event, dated at the moment of expiry, written when the bank is next touched at or after that
moment (the next turn, or `expire(store, until)`): so `replay --as-of` honours it, `why` explains
it (actor, rule) and `restore` undoes it. Nothing is ever dated after the newest turn seen, so a
later turn can still update a memory whose expiry has not come yet."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from memstore import MemoryStore
from memstore.clock import STAMP_FORMAT, format_stamp, to_stamp
from memstore.errors import BadInput, InvalidOperation
from memstore.records import Event

from .manager import HeuristicPolicy
from .turns import Turn


@dataclass(frozen=True)
class Rule:
    kind: str
    days: float

    def matches(self, text: str) -> bool:
        return self.kind == "*" or re.search(self.kind, text, re.I) is not None

    def __str__(self) -> str:
        return f"{self.kind}={self.days:g}"


def parse_rules(specs: Sequence[str]) -> list[Rule]:
    """`["position=30", "*=365"]` -> rules, in order; a bad one is a one-line error."""
    rules = []
    for spec in specs:
        kind, sep, days = str(spec).rpartition("=")
        try:
            n = float(days)
        except ValueError:
            n = -1.0
        if not sep or not kind.strip() or not (0 < n <= 100_000):
            raise BadInput(f"bad expiry rule {spec!r}: write KIND=DAYS, e.g. guidance=90 or '*=365' (DAYS > 0)")
        kind = kind.strip()
        if kind != "*":
            try:
                re.compile(kind)
            except re.error as exc:
                raise BadInput(f"bad expiry rule {spec!r}: KIND is not a valid pattern ({exc})") from None
        rules.append(Rule(kind, n))
    return rules


def require_rules(specs: Sequence[str]) -> list[Rule]:
    """The stack's rules; none at all is refused (the stack without expiry is `heuristic`)."""
    rules = parse_rules(specs)
    if not rules:
        raise BadInput("policy 'stack' needs its expiry rules: --expire-after KIND=DAYS (e.g. '*=365')")
    return rules


def _after(stamp: str, days: float) -> str:
    return format_stamp(datetime.strptime(stamp, STAMP_FORMAT) + timedelta(days=days))


class StackPolicy(HeuristicPolicy):
    name = "stack"

    def __init__(self, llm, decider=None, *, expire_after: Sequence[str] = ()):
        self.rules = require_rules(expire_after)
        super().__init__(llm, decider)
        self.actor = self.actor.replace("policy:stack/", f"policy:stack[{','.join(map(str, self.rules))}]/", 1)

    def rule_for(self, text: str) -> Rule | None:
        return next((r for r in self.rules if r.matches(text)), None)

    def expire(self, store: MemoryStore, until, source: Sequence[str] = ()) -> list[Event]:
        """DELETE every memory live at `until` whose rule says it expired by then, dated at its
        expiry (in the caller's transaction, if any)."""
        until = to_stamp(until)
        events = []
        for m in store.replay(as_of=until):
            rule = self.rule_for(m.text)
            if rule is None:
                continue
            due = _after(m.valid_at, rule.days)
            if due > until:
                continue
            try:
                events.append(store.delete(m.id, at=due, actor=self.actor, source=source,
                                           reason=f"stack: expired, rule {rule} (observed {m.valid_at[:10]})",
                                           cause={"rule": str(rule), "expired_at": due}))
            except InvalidOperation:
                continue  # a version dated after `until` exists (written out of order): its clock runs instead
        return events

    def apply_turn(self, store: MemoryStore, turn: Turn, facts: list[str]) -> list[Event]:
        """Expire what is due by this turn first, so its facts are decided against the live bank."""
        return self.expire(store, turn.time, source=[turn.input_id]) + super().apply_turn(store, turn, facts)
