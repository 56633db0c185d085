"""The reference row: a bank built from LoCoMo's own per-session observations, no
model call. Every table then shows what the same Answer Agent does with a clean bank, which
separates a manager's losses from the reader's."""

from __future__ import annotations

from policy.manager import Decision, ManagerPolicy


class ObservationsPolicy(ManagerPolicy):
    """Each turn's annotated observations are its facts, each one ADDed at the turn's time with
    the turn as source, through the same ingest as every manager."""

    name = "observations"

    def __init__(self, observations: dict[str, list[str]]):
        self.observations = observations
        self.llm = self.decider = None
        self.batch, self.extracted_fresh = 1, 0
        self.actor = "policy:observations/locomo-annotations"

    def facts(self, store, turn) -> list[str]:
        return list(self.observations.get(turn.input_id, []))

    def decide(self, fact, candidates, turn) -> Decision:
        return Decision("ADD", text=fact, why="LoCoMo's annotated observation for this turn")
