"""Dialogue inputs as the serving side sees them: a Turn (one message to observe), a QA (a
question with its gold answer, for the harness and training), and the chat JSONL format, parsed
and validated whole before anything is written. The LoCoMo and LongMemEval loaders live in
evaluation/datasets.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from memstore.clock import to_stamp
from memstore.errors import BadInput


@dataclass(frozen=True)
class Turn:
    input_id: str
    speaker: str
    text: str
    time: str          # memstore stamp
    session: str | None = None
    meta: dict | None = None  # kept with the recorded input (e.g. mem0-style metadata)


@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    category: int
    evidence: tuple[str, ...]
    asked_at: str      # the bank is read as of this time


def windows(turns, n: int, earlier=None) -> dict[str, tuple[tuple[str, str], ...]]:
    """For each of consecutive `turns`, the (speaker, text) of the up to `n` messages of its
    session before it, oldest first: what an extraction reads. `earlier(session, time)` gives
    those recorded before the first of `turns` in a session (none when not given)."""
    seen: dict[str | None, list[tuple[str, str]]] = {}
    out = {}
    for t in turns:
        if t.session not in seen:
            seen[t.session] = list(earlier(t.session, t.time)) if earlier and n else []
        out[t.input_id] = tuple((who or "someone", said) for who, said in seen[t.session][-n:]) if n else ()
        seen[t.session].append((t.speaker, t.text))
    return out


def read_lines(path: Path, what: str = "file") -> list[str]:
    """A user's text file as lines, or a one-line error (missing, not UTF-8)."""
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        raise BadInput(f"no such {what}: {path}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text") from None


def chat_jsonl_turns(path: str | Path) -> list[Turn]:
    """One JSON object per line with `speaker`, `text`, `time` (ISO) and optionally `id`."""
    path = Path(path)
    lines = read_lines(path)
    turns = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) for k in ("speaker", "text", "time")):
            raise BadInput(f"{path}:{n}: expected an object with string fields speaker, text, time")
        try:
            stamp = to_stamp(obj["time"])
        except BadInput as exc:
            raise BadInput(f"{path}:{n}: {exc}") from None
        turns.append(Turn(str(obj.get("id") or f"{path.stem}:{n}"), obj["speaker"], obj["text"], stamp,
                          obj.get("session")))
    if not turns:
        raise BadInput(f"{path}: no messages")
    return turns
