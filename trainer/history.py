"""Replayed histories: the training conversations ingested once into a store of their own, so
that every rollout can read the bank as it stood at any turn (the "temporal memory bank"); or a
user's own bank, whose log already is one (`from_bank`).

The history is built by a non-learned manager (`heuristic` by default: fast once facts are
extracted) and kept under the cache folder, keyed by the data file's sha256 and the conversation,
so the manager and answer trainings share it and a rerun reuses it (ingest is resumable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from memstore import MemoryStore
from policy.agent import make_policy
from memstore.ingest import ingest
from policy.models import cache_dir, sha256_file
from policy.runtime import LLM
from evaluation import own
from policy.inputs import locomo_conversations, locomo_turns
from evaluation.datasets import locomo_observations, locomo_qa
from policy.turns import QA, Turn


@dataclass
class History:
    conversation: str
    store: MemoryStore
    turns: list[Turn]
    questions: list[QA]
    evidence_prefix: str = ""  # evidence id -> input id: LoCoMo's dia ids are "D1:3", inputs "conv-26:D1:3"
    observations: dict[str, list[str]] = field(default_factory=dict)  # input id -> annotated facts (LoCoMo's)

    def evidence_input(self, evidence: str) -> str:
        return self.evidence_prefix + evidence


def conversation(data: str | Path, name: str) -> tuple[list[Turn], list[QA], dict[str, list[str]]]:
    """A LoCoMo conversation's turns, questions and annotated observations by turn."""
    sample = locomo_conversations(data, [name])[0]
    turns = locomo_turns(sample)
    return turns, locomo_qa(sample, turns), locomo_observations(sample, turns)


def build(data: str | Path, name: str, llm: LLM, *, bank_policy: str = "heuristic", root: Path | None = None,
          progress: Callable[[int, int, str], None] | None = None) -> History:
    turns, questions, observations = conversation(data, name)
    root = root or cache_dir().parent / "histories"
    root.mkdir(parents=True, exist_ok=True)
    store = MemoryStore(root / f"{name}-{sha256_file(Path(data))[:12]}.db", bank_policy)
    ingest(store, make_policy(bank_policy, llm), turns, progress=progress)
    return History(name, store, turns, questions, f"{name}:", observations)


def from_bank(db: str | Path, bank: str, questions: list[QA], copy: Path) -> History:
    """A user's own bank as the replayed history: its recorded inputs are the turns, its
    own log is the temporal bank. Read from `copy`, a snapshot of the file (evaluation.own), so
    training never writes the source (the fact cache fills the copy)."""
    own.snapshot(db, copy)
    store = own.open_bank(copy, bank)
    own.check_evidence(questions, store)
    return History(bank, store, own.turns(store), questions)
