"""Benchmark datasets: LoCoMo (JSON) and LongMemEval-format records, parsed and validated whole
before anything is written (a malformed file changes nothing in the store); `load_turns` also
takes the chat JSONL format (policy/turns.py), for `memstore ingest`."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

from memstore.clock import to_stamp
from memstore.errors import BadInput
from policy.turns import QA, Turn, chat_jsonl_turns


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


def evidence_sessions(evidence) -> set[int] | None:
    """Session numbers of evidence ids like 'D3:12' (some cells hold several: 'D8:6; D9:17');
    None when there is none or one cannot be read."""
    found = [re.findall(r"D(\d+):\d+", e) for e in evidence if isinstance(e, str)]
    numbers = {int(n) for f in found for n in f}
    return numbers if numbers and all(found) and len(found) == len(evidence) else None


def locomo_qa(sample: dict, turns: list[Turn], sessions: int | None = None) -> list[QA]:
    """Questions with a gold answer (category 5, adversarial, has none and is left out), asked as
    of the end of the given turns; with `sessions`, only those whose evidence all lies in the
    first `sessions` sessions (a question without readable evidence is left out then)."""
    end = turns[-1].time
    out = []
    for q in sample.get("qa", []):
        if q.get("category") == 5 or "answer" not in q:
            continue
        if sessions is not None:
            where = evidence_sessions(q.get("evidence") or [])
            if where is None or max(where) > sessions:
                continue
        out.append(QA(str(q["question"]), str(q["answer"]), int(q["category"]), tuple(q.get("evidence", [])), end))
    return out


def locomo_observations(sample: dict, turns: list[Turn]) -> dict[str, list[str]]:
    """LoCoMo's own annotated observations, per turn they cite (input id -> facts), for the
    turns given: the reference bank of `--policy observations`. An observation citing no turn
    among them is left out."""
    sid, known = sample.get("sample_id", "conv"), {t.input_id for t in turns}
    out: dict[str, list[str]] = {}
    for per_speaker in (sample.get("observation") or {}).values():
        for items in (per_speaker or {}).values():
            for item in items or []:
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                    continue
                cited = item[1] if isinstance(item[1], list) else re.findall(r"D\d+:\d+", str(item[1]))
                target = next((f"{sid}:{d}" for d in cited if f"{sid}:{d}" in known), None)
                if target:
                    out.setdefault(target, []).append(item[0])
    return out


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


LME_TIME = "%Y/%m/%d (%a) %H:%M"


def parse_lme_time(text: str) -> datetime:
    try:
        return datetime.strptime(str(text).strip(), LME_TIME)
    except ValueError:
        raise BadInput(f"bad LongMemEval date {text!r} (expected like '2023/05/20 (Sat) 02:21')") from None


def longmemeval_records(path: str | Path) -> list[tuple[str, list[Turn], QA]]:
    """LongMemEval JSON: records with question, answer, question_type, question_date,
    haystack_sessions (lists of {role, content}) and haystack_dates. Each record is its own
    bank; its question is answered as of question_date."""
    data = read_json(path)
    need = ("question", "answer", "question_type", "question_date", "haystack_sessions", "haystack_dates")
    if not isinstance(data, list) or not data or not all(isinstance(r, dict) and all(k in r for k in need) for r in data):
        raise BadInput(f"{path} is not in LongMemEval format (records with {', '.join(need)})")
    out = []
    for n, rec in enumerate(data):
        rid = str(rec.get("question_id", n))
        if len(rec["haystack_sessions"]) != len(rec["haystack_dates"]):
            raise BadInput(f"record {rid}: haystack_sessions and haystack_dates differ in length")
        turns = []
        for s, (session, date) in enumerate(zip(rec["haystack_sessions"], rec["haystack_dates"])):
            when = parse_lme_time(date)
            for i, msg in enumerate(session):
                if not isinstance(msg, dict) or not isinstance(msg.get("content"), str):
                    raise BadInput(f"record {rid} session {s} message {i}: expected role and content")
                turns.append(Turn(f"lme-{rid}:s{s}:{i}", str(msg.get("role", "user")), msg["content"],
                                  to_stamp(when + timedelta(seconds=i)), f"lme-{rid}:s{s}"))
        qa = QA(str(rec["question"]), str(rec["answer"]), rec["question_type"], (),
                to_stamp(parse_lme_time(rec["question_date"])))
        out.append((f"lme-{rid}", turns, qa))
    return out
