"""The files a user feeds to `memstore ingest`, parsed and validated whole before anything is
written (a malformed file changes nothing in the store): chat JSONL (one message a line:
`speaker`, `text`, `time`, optional `id` and `session`) and LoCoMo JSON (a conversation's sessions
of turns). The benchmark side of LoCoMo (questions, observations) is in evaluation/datasets.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from memstore.clock import to_stamp
from memstore.errors import BadInput

from .turns import Turn


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


LOCOMO_TIME = "%I:%M %p on %d %B, %Y"


def parse_locomo_time(text: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), LOCOMO_TIME)
    except ValueError:
        raise BadInput(f"bad LoCoMo session time {text!r} (expected like '1:56 pm on 8 May, 2023')") from None


def read_json(path: str | Path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BadInput(f"no such file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path} is not valid JSON ({exc})") from None


def locomo_samples(path: str | Path) -> list[dict]:
    data = read_json(path)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(s, dict) and "conversation" in s for s in data):
        raise BadInput(f"{path} is not in LoCoMo format (a list of samples with 'conversation')")
    return data


def locomo_turns(sample: dict, sessions: int | None = None) -> list[Turn]:
    """Turns in order, of the first `sessions` sessions (all when None). All turns of a session
    share its timestamp in LoCoMo; turn i gets i seconds added so that the as-of clock orders them."""
    conv = sample["conversation"]
    sid = sample.get("sample_id", "conv")
    turns: list[Turn] = []
    n = 1
    while f"session_{n}" in conv and (sessions is None or n <= sessions):
        when = parse_locomo_time(conv.get(f"session_{n}_date_time", ""))
        for i, t in enumerate(conv[f"session_{n}"]):
            if not isinstance(t, dict) or not all(isinstance(t.get(k), str) for k in ("speaker", "dia_id", "text")):
                raise BadInput(f"{sid} session {n} turn {i}: expected speaker, dia_id and text strings")
            text = t["text"]
            if t.get("blip_caption"):
                text += f" [shares a photo: {t['blip_caption']}]"
            turns.append(Turn(f"{sid}:{t['dia_id']}", t["speaker"], text, to_stamp(when + timedelta(seconds=i)),
                              f"{sid}:session_{n}"))
        n += 1
    if not turns:
        raise BadInput(f"{sid}: no sessions found")
    return turns


def locomo_conversations(path: str | Path, ids: list[str] | None = None) -> list[dict]:
    """The samples named by `ids` (all when None), in that order; an unknown id is one error
    naming the ones the file has. The one place a conversation is picked by id."""
    samples = locomo_samples(path)
    if ids is None:
        return samples
    by_id = {s.get("sample_id"): s for s in samples}
    missing = [c for c in ids if c not in by_id]
    if missing:
        raise BadInput(f"no conversation {', '.join(map(str, missing))} in {path} (has {', '.join(map(str, by_id))})")
    return [by_id[c] for c in ids]


def load_turns(path: str | Path, conversation: str | None = None) -> tuple[list[Turn], dict | None]:
    """Turns of a chat JSONL file, or of one LoCoMo sample (returned too, for its QA)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return chat_jsonl_turns(path), None
    if conversation is not None:
        sample = locomo_conversations(path, [conversation])[0]
        return locomo_turns(sample), sample
    samples = locomo_samples(path)
    if len(samples) > 1:
        ids = ", ".join(str(s.get("sample_id")) for s in samples)
        raise BadInput(f"{path} holds {len(samples)} conversations ({ids}): pick one with --conversation")
    return locomo_turns(samples[0]), samples[0]
