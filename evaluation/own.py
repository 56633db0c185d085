"""A user's own workflow as training and evaluation data: the inputs recorded in their bank, and
their own questions in a small JSONL format.

One question per line:
    {"question": "How many ACME shares do we hold?", "answer": "150", "asked_at": "2025-03-02T09:00",
     "evidence": ["desk:17"], "category": 4}
`question`, `answer` (non-empty strings) and `asked_at` (ISO date or datetime: the bank is read as
of then) are required. `evidence` lists the ids of recorded inputs the answer rests on (what the
manager's training rewards the ops of; without it a question only trains the Answer Agent).
`category` picks LoCoMo's scoring rule (1 multi-hop: a comma-separated list, 2 temporal,
3 open-domain, 4 single-hop: plain token F1; default 4). The file is validated whole before any
work starts: every bad line is reported, none is skipped.

The source bank is never written: training reads a snapshot of its file (`snapshot`), the
benchmark builds its banks in a file of its own, seeded with the source's extracted facts."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Iterable

from memstore import MemoryStore
from memstore.clock import to_stamp
from memstore.errors import BadInput, StoreUnavailable
from policy.inputs import read_lines
from policy.turns import QA

FIELDS = {"question", "answer", "asked_at", "evidence", "category"}
CATEGORIES = (1, 2, 3, 4)


def load_qa(path: str | Path) -> list[QA]:
    path = Path(path)
    lines = read_lines(path, "QA file")
    out, errors, seen = [], [], {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(_qa(json.loads(line)))
        except json.JSONDecodeError as exc:
            errors.append(f"line {n}: not JSON ({exc.msg})")
            continue
        except BadInput as exc:
            errors.append(f"line {n}: {exc}")
            continue
        key = (out[-1].question, out[-1].asked_at)
        if key in seen:
            errors.append(f"line {n}: the same question at the same time as line {seen[key]}")
        seen.setdefault(key, n)
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise BadInput(f"{path}: {len(errors)} bad line(s): {'; '.join(errors[:3])}{more}")
    if not out:
        raise BadInput(f"{path}: no questions")
    return out


def _qa(obj) -> QA:
    if not isinstance(obj, dict):
        raise BadInput("expected a JSON object")
    unknown = sorted(set(obj) - FIELDS)
    if unknown:
        raise BadInput(f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(FIELDS))})")
    for key in ("question", "answer", "asked_at"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise BadInput(f"{key!r} must be a non-empty string")
    asked = to_stamp(obj["asked_at"])
    evidence = obj.get("evidence", [])
    if not isinstance(evidence, list) or not all(isinstance(e, str) and e for e in evidence):
        raise BadInput("'evidence' must be a list of recorded input ids (strings)")
    category = obj.get("category", 4)
    if isinstance(category, bool) or category not in CATEGORIES:
        raise BadInput(f"'category' must be one of {', '.join(map(str, CATEGORIES))}, not {category!r}")
    return QA(obj["question"].strip(), obj["answer"].strip(), category, tuple(evidence), asked)


def from_locomo(data: str | Path, conversation: str) -> list[dict]:
    """A LoCoMo conversation's questions in this format (evidence as the input ids `memstore
    ingest` records for it, `conv-26:D1:3`), to treat it as a user's own bank and questions."""
    from policy.inputs import locomo_conversations, locomo_turns
    from .datasets import locomo_qa
    sample = locomo_conversations(data, [conversation])[0]
    turns = locomo_turns(sample)
    known = {t.input_id for t in turns}
    return [{"question": q.question, "answer": q.answer, "asked_at": q.asked_at, "category": q.category,
             "evidence": [f"{conversation}:{e}" for e in q.evidence if f"{conversation}:{e}" in known]}
            for q in locomo_qa(sample, turns)]


def check_evidence(qas: Iterable[QA], store: MemoryStore) -> None:
    """Every evidence id must be an input recorded in the bank."""
    known = {i.input_id for i in store.inputs()}
    missing = sorted({e for qa in qas for e in qa.evidence} - known)
    if missing:
        raise BadInput(f"evidence names {len(missing)} input(s) not recorded in bank {store.bank!r}: "
                       f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")


def split(qas: list[QA], val_fraction: float, seed: int = 0) -> tuple[list[QA], list[QA]]:
    """(train, held out): a fixed share of the questions, chosen by a seeded hash of each question
    (not its position), so adding questions to the file keeps the earlier ones on their side."""
    if not 0 <= val_fraction < 1:
        raise BadInput(f"--val-fraction must be in [0, 1), not {val_fraction}")
    key = lambda qa: hashlib.sha256(f"{seed}|{qa.question}|{qa.asked_at}".encode()).hexdigest()  # noqa: E731
    n_val = round(len(qas) * val_fraction)
    held = {id(qa) for qa in sorted(qas, key=key)[:n_val]}
    return [qa for qa in qas if id(qa) not in held], [qa for qa in qas if id(qa) in held]


def open_bank(db: str | Path, bank: str) -> MemoryStore:
    store = MemoryStore(db, bank, create=False)
    if not store.inputs():
        store.close()
        raise BadInput(f"bank {bank!r} in {db} has no recorded inputs to learn from")
    return store


def turns(store: MemoryStore) -> list:
    """The bank's recorded inputs in their order, as turns (erased ones have no text: skipped)."""
    return [i for i in store.inputs() if not i.erased]


def _read_only(db: Path) -> sqlite3.Connection:
    if not db.is_file():
        raise StoreUnavailable(f"no memstore database at {db}")
    return sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True)


def snapshot(db: str | Path, dest: Path) -> Path:
    """A consistent copy of the source file (SQLite's backup API over a read-only connection),
    made once: a resumed run keeps training on the copy it started with."""
    if dest.exists():
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    src = _read_only(Path(db))
    try:
        with sqlite3.connect(tmp) as dst:
            src.backup(dst)
        dst.close()
    finally:
        src.close()
    tmp.replace(dest)
    return dest


def seed_facts(db: str | Path, store: MemoryStore) -> int:
    """Copy the source file's extracted facts into `store`'s file: replaying the inputs through
    other policies then extracts nothing again (same model and prompt version)."""
    src = _read_only(Path(db))
    try:
        with store.transaction():
            return store.copy_fact_cache(src)
    finally:
        src.close()
