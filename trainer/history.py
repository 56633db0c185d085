"""Replayed histories: the training conversations ingested once into a store of their own, so
that every rollout can read the bank as it stood at any turn (the "temporal memory bank").

The history is built by a non-learned manager (`heuristic` by default: fast once facts are
extracted) and kept under the cache folder, keyed by the data file's sha256 and the conversation,
so the manager and answer trainings share it and a rerun reuses it (ingest is resumable)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from memstore import MemoryStore
from policy.agent import make_policy
from memstore.ingest import ingest
from policy.models import cache_dir, sha256_file
from policy.runtime import LLM
from evaluation.datasets import locomo_conversations, locomo_qa, locomo_turns
from policy.turns import QA, Turn


@dataclass
class History:
    conversation: str
    store: MemoryStore
    turns: list[Turn]
    questions: list[QA]

    def turn_of(self, dia_id: str) -> Turn | None:
        return self._by_id.get(f"{self.conversation}:{dia_id}")

    def __post_init__(self):
        self._by_id = {t.input_id: t for t in self.turns}


def conversation(data: str | Path, name: str) -> tuple[list[Turn], list[QA]]:
    sample = locomo_conversations(data, [name])[0]
    turns = locomo_turns(sample)
    return turns, locomo_qa(sample, turns)


def build(data: str | Path, name: str, llm: LLM, *, bank_policy: str = "heuristic", root: Path | None = None,
          progress: Callable[[int, int, str], None] | None = None) -> History:
    turns, questions = conversation(data, name)
    root = root or cache_dir().parent / "histories"
    root.mkdir(parents=True, exist_ok=True)
    store = MemoryStore(root / f"{name}-{sha256_file(Path(data))[:12]}.db", bank_policy)
    ingest(store, make_policy(bank_policy, llm), turns, progress=progress)
    return History(name, store, turns, questions)
