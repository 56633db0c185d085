"""Benchmark datasets: LoCoMo's questions and annotated observations (its turns are read by
policy/inputs.py, as `ingest` reads them) and LongMemEval-format records, parsed and validated
whole before anything is written."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from memstore.clock import to_stamp
from memstore.errors import BadInput
from policy.inputs import read_json
from policy.turns import QA, Turn


DIA_ID = re.compile(r"D(\d+):\d+")  # a LoCoMo turn id: 'D3:12' is message 12 of the third session


def evidence_turns(evidence) -> tuple[str, ...]:
    """The turn ids a LoCoMo question's evidence cites, one per id (a cell can hold several:
    'D8:6; D9:17'); a cell without one adds nothing."""
    return tuple(m.group(0) for e in evidence if isinstance(e, str) for m in DIA_ID.finditer(e))


def evidence_sessions(evidence) -> set[int] | None:
    """Session numbers of the evidence; None when there is none or a cell cannot be read."""
    if not evidence or not all(evidence_turns([e]) for e in evidence):
        return None
    return {int(DIA_ID.match(d).group(1)) for d in evidence_turns(evidence)}


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
        out.append(QA(str(q["question"]), str(q["answer"]), int(q["category"]),
                      evidence_turns(q.get("evidence") or []), end))
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
                cited = item[1] if isinstance(item[1], list) else evidence_turns([str(item[1])])
                target = next((f"{sid}:{d}" for d in cited if f"{sid}:{d}" in known), None)
                if target:
                    out.setdefault(target, []).append(item[0])
    return out


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
