"""Dialogue inputs as the serving side sees them: a Turn (one message to observe), a QA (a
question with its gold answer, for the harness and training), and the window of earlier messages
an extraction reads. The file formats a user feeds to `ingest` are parsed in policy/inputs.py."""

from __future__ import annotations

from dataclasses import dataclass


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


def read_text(text: str, context) -> str:
    """The words an extraction read: its message and the window's messages (what a fact must be
    grounded in, policy/facts.py)."""
    return " ".join([text, *(said for _, said in context)])
