"""`memstore bench facts`: how good the extracted facts are, per extractor, against LoCoMo's
annotated observations: the fast signal for work on extraction (the answer metrics of `bench
locomo` stay the judge).

Per turn with annotated observations, an observation is *recalled* when a fact extracted from that
turn or a neighbour (the turn before or after: annotators and models split a thought across turns
differently) states it: the embeddings reach `SAME_FACT` cosine, the matcher the manager and the
"facts lost" count use, checked against hand labels (`check_threshold`). Also: the share of
extracted facts that match no observation of their turn's neighbourhood, facts per turn, the
share of the model's own facts that were noise (what the parser drops), a hallucination proxy
(facts naming a proper noun or number found neither in the turn, its window, its date nor the
speakers' names) and the prompt tokens an extraction reads beyond the system prompt."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memstore import MemoryStore
from memstore.embed import CachedEmbedder, default_embedder
from memstore.errors import BadInput
from policy.facts import SAME_FACT, is_noise
from policy.agent import adapter_contract
from policy.manager import AppendPolicy
from policy.prompts import EXTRACT_SYSTEM, EXTRACT_WINDOW, spoken_date
from policy.times import resolve_times

from policy.inputs import locomo_turns

from .datasets import locomo_observations

NEIGHBOURS = 1  # turns either side whose facts may state a turn's observation
PAIRS = Path(__file__).parent / "data" / "fact_pairs.jsonl"
_MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}


_DATE = re.compile(r"\b(?:\d{1,2} )?(?:January|February|March|April|May|June|July|August|September|October|"
                   r"November|December),? (?P<year>(?:19|20)\d\d)\b")


@dataclass
class FactsReport:
    extractor: str
    conversation: str
    turns: int = 0
    observations: int = 0
    recalled: int = 0
    facts: int = 0
    unmatched: int = 0
    raw: int = 0
    noise: int = 0
    invented: int = 0
    context_tokens: int = 0
    extract_s: float = 0.0
    examples: list = field(default_factory=list)
    pairs: list = field(default_factory=list)  # each observation with its closest fact: what labels check

    def row(self) -> dict:
        per = lambda a, b: round(100 * a / b, 1) if b else 0.0  # noqa: E731
        return {"extractor": self.extractor, "conversation": self.conversation, "turns": self.turns,
                "observations": self.observations, "recall %": per(self.recalled, self.observations),
                "unmatched %": per(self.unmatched, self.facts), "facts/turn": round(self.facts / max(self.turns, 1), 2),
                "noise %": per(self.noise, self.raw), "invented %": per(self.invented, self.facts),
                "tokens/turn": round(self.context_tokens / max(self.turns, 1), 1),
                "extract min": round(self.extract_s / 60, 2)}


def invented(fact: str, sources: str) -> bool:
    """True when the fact names a proper noun or number that its sources do not contain. A name
    is a capitalised word after the first (sentences start with one anyway) or the first when it
    is no common word; a number is any run of digits."""
    years = set(re.findall(r"\b(?:19|20)\d\d\b", sources))
    fact = _DATE.sub(lambda m: "" if m.group("year") in years else m.group(0), fact)  # a date it resolved
    words = re.findall(r"[A-Za-z][A-Za-z'-]*|\d+", fact)
    known = {w.casefold().removesuffix("'s") for w in re.findall(r"[A-Za-z][A-Za-z'-]*|\d+", sources)}
    for i, w in enumerate(words):
        base = w.casefold().removesuffix("'s")
        if base in known or base in _MONTHS:
            continue
        if w.isdigit() or (w[0].isupper() and i > 0):
            return True
    return False


def extract_turns(store: MemoryStore, policy, turns, progress=None) -> tuple[dict[str, list[str]], dict[str, tuple]]:
    """Facts of every turn, in order, each read after the turns before it are recorded (its
    window), and the window each one read."""
    out, contexts, done = {}, {}, 0
    window = max(1, getattr(policy, "batch", 1))
    for start in range(0, len(turns), window):
        chunk = turns[start:start + window]
        if len(chunk) > 1:
            policy.prefetch(store, chunk)
        for turn in chunk:
            contexts.update(policy.contexts(store, [turn]))
            out[turn.input_id] = policy.facts(store, turn)
            with store.transaction():
                store.record_input(turn.speaker, turn.text, turn.time, input_id=turn.input_id, session=turn.session)
            done += 1
            if progress:
                progress(done, len(turns))
    return out, contexts


def measure(name: str, policy, sample: dict, db: Path, progress=None) -> FactsReport:
    """One extractor on one conversation. `db` keeps the recorded turns and the fact cache, so a
    second run (or another extractor on the same model and prompt) extracts nothing again."""
    turns = locomo_turns(sample)
    sid = str(sample.get("sample_id", "conv"))
    observations = locomo_observations(sample, turns)
    store = MemoryStore(db, f"facts.{re.sub(r'[^A-Za-z0-9_.-]', '_', sid)}.{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"[:64])
    try:
        t0 = time.perf_counter()
        facts, contexts = extract_turns(store, policy, turns, progress)
        seconds = time.perf_counter() - t0
        rep = FactsReport(name, sid, turns=len(turns), extract_s=seconds)
        embed = CachedEmbedder(store.conn, default_embedder()).embed
        index = {t.input_id: i for i, t in enumerate(turns)}
        names = {t.speaker for t in turns}
        count = getattr(policy.llm, "prompt_tokens", None)
        system_tokens = len(count(EXTRACT_SYSTEM, "")) if count else 0  # the same for every turn
        for t in turns:
            context = contexts.get(t.input_id, ())
            raw = store.cached_facts(*policy._key(t, context)) or []
            rep.raw += len(raw)
            rep.noise += sum(is_noise(f, names) for f in raw)
            if count:
                call = policy.extract_call(t, context)
                rep.context_tokens += len(count(call.system, call.user)) - system_tokens
        for t in turns:
            i = index[t.input_id]
            near = turns[max(0, i - NEIGHBOURS): i + NEIGHBOURS + 1]
            mine, obs = facts[t.input_id], observations.get(t.input_id, [])
            near_facts = [f for n in near for f in facts[n.input_id]]
            near_obs = [o for n in near for o in observations.get(n.input_id, [])]
            rep.facts += len(mine)
            # the dates the turn's relative times point at are the turn's, not invented (the parser writes them)
            window_text = " ".join([t.text, resolve_times(t.text, t.time[:10]), t.speaker, spoken_date(t.time[:10]), t.time[:10]]
                                   + [f"{w} {s}" for w, s in contexts.get(t.input_id, ())] + list(names))
            rep.invented += sum(invented(f, window_text) for f in mine)
            if mine:
                sims = embed(mine) @ embed(near_obs).T if near_obs else np.zeros((len(mine), 0))
                best = sims.max(axis=1) if near_obs else np.zeros(len(mine))
                rep.unmatched += int((best < SAME_FACT).sum())
            if obs:
                rep.observations += len(obs)
                sims = embed(obs) @ embed(near_facts).T if near_facts else np.zeros((len(obs), 0))
                best = sims.max(axis=1) if near_facts else np.zeros(len(obs))
                rep.recalled += int((best >= SAME_FACT).sum())
                for j, row in enumerate(sims):
                    if len(near_facts):
                        rep.pairs.append({"conversation": sid, "turn": t.input_id.split(":", 1)[1], "observation": j,
                                          "fact": near_facts[int(row.argmax())], "cosine": round(float(row.max()), 3)})
                if len(rep.examples) < 40:
                    rep.examples.append({"turn": t.input_id, "text": t.text[:300], "observations": obs, "facts": mine,
                                         "best": [round(float(b), 3) for b in best]})
        return rep
    finally:
        store.close()


def facts_lost(store: MemoryStore) -> dict:
    """Facts a manager decided on whose content no live memory states just after their turn (best
    match below SAME_FACT): what decisions took out of the bank. A DELETE or NOOP that kept nothing
    counts, and so does a fact a later fact of the same turn overwrote (the turn's events share its
    time, so the bank as of it holds them all). Each fact counts once, by its first event."""
    decided = lost = 0
    seen = set()
    for ev in store.events():
        fact = (ev.cause or {}).get("fact") if isinstance(ev.cause, dict) else None
        if not fact or ev.outcome != "applied" or (fact, ev.valid_at) in seen:
            continue
        seen.add((fact, ev.valid_at))
        decided += 1
        hits = store.search(fact, k=1, as_of=ev.valid_at)
        lost += not (hits and hits[0].score >= SAME_FACT)
    return {"decided": decided, "lost": lost}


def check_threshold(embed, pairs: list[dict], threshold: float = SAME_FACT) -> dict:
    """Agreement of `cosine >= threshold` with hand labels: pairs of {"a", "b", "same"}."""
    if not pairs:
        raise BadInput("no labelled pairs")
    a = embed([p["a"] for p in pairs])
    b = embed([p["b"] for p in pairs])
    cos = (a * b).sum(axis=1)
    said = cos >= threshold
    gold = np.array([bool(p["same"]) for p in pairs])
    tp, fp = int((said & gold).sum()), int((said & ~gold).sum())
    fn, tn = int((~said & gold).sum()), int((~said & ~gold).sum())
    best = max(((t, float(((cos >= t) == gold).mean())) for t in np.arange(0.4, 0.95, 0.05)), key=lambda x: x[1])
    return {"pairs": len(pairs), "threshold": threshold, "agreement %": round(100 * (tp + tn) / len(pairs), 1),
            "precision %": round(100 * tp / max(tp + fp, 1), 1), "recall %": round(100 * tp / max(tp + fn, 1), 1),
            "best threshold": round(best[0], 2), "best agreement %": round(100 * best[1], 1)}


def load_pairs(path: Path, samples: list[dict]) -> list[dict]:
    """Hand-labelled pairs. The file holds our extractor's fact and a reference to the
    observation (conversation, turn, index) so that no dataset text is copied into the repo."""
    by_id = {str(s.get("sample_id")): s for s in samples}
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        p = json.loads(line)
        sample = by_id.get(p["conversation"])
        if sample is None:
            continue
        obs = locomo_observations(sample, locomo_turns(sample)).get(f"{p['conversation']}:{p['turn']}", [])
        if p["observation"] >= len(obs):
            raise BadInput(f"{path}:{n}: turn {p['turn']} has {len(obs)} observation(s)")
        out.append({"a": p["fact"], "b": obs[p["observation"]], "same": p["same"]})
    return out


def extractor(spec: str, llm_for):
    """An extractor by name: `base` (the prompt with the two earlier messages on the backbone),
    `nowindow` (the same prompt without them: how the plain backbone is served), `adapter=PATH`
    (an extraction LoRA adapter, reading the window it was trained with), `model=NAME` (another
    backbone, served without a window). `llm_for(model, adapter)` loads (and shares) the models."""
    policy = AppendPolicy(llm_for(None, None))
    if spec == "base":
        policy.window = EXTRACT_WINDOW
        return policy
    if spec == "nowindow":
        return policy
    key, _, value = spec.partition("=")
    if key == "adapter" and value:
        policy = AppendPolicy(llm_for(None, value))
        policy.window = adapter_contract(Path(value)).get("window", EXTRACT_WINDOW)  # as trained
        return policy
    if key == "model" and value:
        return AppendPolicy(llm_for(value, None))
    raise BadInput(f"unknown extractor {spec!r}: base, nowindow, adapter=PATH or model=NAME")
