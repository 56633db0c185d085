"""Memory Manager policies: each turn -> facts -> one op per fact on the bank as of that turn.

All policies share the backbone: the same LLM extracts facts (cached by input, model and prompt
version), the same vector view retrieves related memories as of the turn's time, and every
decision is appended as an event with the policy's actor, the fact as cause, and the turn as
source. They differ only in `decide`:
- `append`    every fact is ADDed (plain RAG);
- `heuristic` near-duplicates are skipped, a close memory about the same subject is superseded;
- `llm`       the model picks ADD/UPDATE/DELETE/NOOP, UPDATE/DELETE only among the candidates
              (the Mem0-style pipeline, untrained);
- `learned`   the same with a trained LoRA adapter, served by llama.cpp."""

from __future__ import annotations

import re
from dataclasses import dataclass

from memstore import MemoryStore
from memstore.clock import to_stamp
from memstore.records import Event
from memstore.store import fact_key
from memstore.vector_view import Hit

from . import prompts
from .facts import SAME_FACT, clean_facts, content_stems
from .runtime import LLM, LLMError
from .times import days_named
from .turns import Turn, read_text, windows


@dataclass(frozen=True)
class Decision:
    op: str
    target: Hit | None = None
    text: str | None = None
    why: str = ""


class ManagerPolicy:
    name = "base"
    k = 5            # related memories retrieved per fact
    # Earlier messages of the session an extraction reads. 0 for the plain backbone: on conv-30
    # the two-message window gave the untrained 0.5B the same recall of the annotated observations
    # (61.5% vs 60.4%), more unmatched facts and 1.8x the extraction time (docs/results/facts.md);
    # an extraction adapter is served with the window it was trained on (policy/agent.py).
    window = 0
    min_score = 0.35  # below this cosine similarity a memory is not "related" and is not shown:
                      # a 0.5B model otherwise UPDATEs whatever candidate 1 happens to be

    def __init__(self, llm: LLM, decider: LLM | None = None):
        """`llm` extracts facts (the cache is keyed by its identity); `decider` (default: the same
        model) makes the decisions: the learned policy decides with its LoRA adapter but shares the
        base model's extracted facts. Every manager is served the one decision prompt,
        `prompts.PROMPT_VERSION`, whichever its adapter was trained on (checked when it is loaded)."""
        self.llm, self.decider = llm, decider or llm
        self.actor = f"policy:{self.name}/{self.decider.identity}/prompt:{prompts.PROMPT_VERSION}"
        self.extracted_fresh = 0  # extraction calls actually made (the rest came from the cache)
        self.batch = getattr(llm, "batch", 1)  # turns extracted together (ingest's prefetch window)
        self._prefetched: dict[str, list[str] | None] = {}

    # ---- facts ---------------------------------------------------------------------------
    def contexts(self, store: MemoryStore, turns: list[Turn]) -> dict[str, tuple[tuple[str, str], ...]]:
        """For each of consecutive `turns`, the earlier messages of its session that its
        extraction reads: those recorded in the bank, then those among `turns` before it."""
        return windows(turns, self.window, lambda session, time: store.earlier_inputs(session, time, self.window))

    def extract_call(self, turn: Turn, context: tuple) -> prompts.ModelCall:
        return prompts.extract_call(turn.speaker, turn.text, turn.time[:10], context)

    def _key(self, turn: Turn, context: tuple) -> tuple[str, str, str]:
        return (fact_key(turn.speaker, turn.text, turn.time), self.llm.identity, prompts.extract_version(context))

    def _keep(self, store: MemoryStore, turn: Turn, context: tuple, out: dict | None) -> list[str]:
        """The facts of one extraction output. The model's own strings are cached (the parser can
        change without extracting again; `bench facts` measures what it drops); a cut-off output
        counts as "nothing durable" and is not cached (a rerun retries it)."""
        if out is None:
            return []
        raw = [f for f in out.get("facts", []) if isinstance(f, str)]
        self.extracted_fresh += 1
        store.cache_facts(*self._key(turn, context), raw)
        return self._clean(turn, context, raw)

    @staticmethod
    def _clean(turn: Turn, context: tuple, raw: list[str]) -> list[str]:
        return clean_facts({"facts": raw}, turn.speaker, {who for who, _ in context}, turn.time[:10],
                           said=read_text(turn.text, context))

    def prefetch(self, store: MemoryStore, turns: list[Turn]) -> None:
        """Extract the facts of several upcoming turns in one batched call (extraction does not
        depend on the bank); `facts` then finds them. Called by ingest a window ahead."""
        contexts = self.contexts(store, turns)
        todo = [t for t in turns if t.input_id not in self._prefetched
                and store.cached_facts(*self._key(t, contexts[t.input_id])) is None]
        if len(todo) < 2:
            return
        calls = [self.extract_call(t, contexts[t.input_id]) for t in todo]
        outs = self.llm.json_many(calls[0].system, [c.user for c in calls], calls[0].schema, max_tokens=calls[0].max_tokens)
        for turn, out in zip(todo, outs):
            self._prefetched[turn.input_id] = self._keep(store, turn, contexts[turn.input_id], out)

    def facts(self, store: MemoryStore, turn: Turn) -> list[str]:
        if turn.input_id in self._prefetched:
            return self._prefetched.pop(turn.input_id)
        context = self.contexts(store, [turn])[turn.input_id]
        cached = store.cached_facts(*self._key(turn, context))
        if cached is not None:
            return self._clean(turn, context, cached)
        call = self.extract_call(turn, context)
        try:
            out = self.llm.json(call.system, call.user, call.schema, max_tokens=call.max_tokens)
        except LLMError:
            out = None
        return self._keep(store, turn, context, out)

    # ---- decisions -----------------------------------------------------------------------
    def decide(self, fact: str, candidates: list[Hit], turn: Turn) -> Decision:
        raise NotImplementedError

    def apply_turn(self, store: MemoryStore, turn: Turn, facts: list[str]) -> list[Event]:
        """Decide and append, fact by fact, inside the caller's transaction: a later fact of the
        turn sees what an earlier one changed."""
        base = dict(at=turn.time, actor=self.actor, source=[turn.input_id])
        if not facts:
            return [store.noop(reason=f"{self.name}: no durable facts in this turn", **base)]
        events = []
        for fact in facts:
            candidates = [h for h in store.search(fact, k=self.k, as_of=turn.time) if h.score >= self.min_score] \
                if store.last_seq() else []
            d = self.decide(fact, candidates, turn)
            cause = {"fact": fact, "input_id": turn.input_id}
            for op, memory_id, text, note in content_kept(d.op, d.target.id if d.target else "", d.text, fact,
                                                          candidates[0].score if candidates else 0.0,
                                                          d.target.text if d.target else "",
                                                          fresh=bool(d.target) and same_time(d.target.valid_at, turn.time)):
                events.append(store.apply(op, memory_id, text, reason=f"{self.name}: {d.why}{note}", cause=cause, **base))
        return events


def content_kept(op: str, target: str, text: str | None, fact: str, closest: float,
                 memory: str = "", fresh: bool = False) -> list[tuple[str, str, str | None, str]]:
    """The ops that carry out a decision on `fact` without losing what it says: (op, memory id,
    text, note for the reason). A DELETE ends the contradicted memory and ADDs the fact ("Caroline
    moved to Denver" must not leave the bank knowing less about where she lives); a NOOP stands only
    when a memory states the fact (its closest candidate at `closest` cosine reaches SAME_FACT, the
    threshold `bench facts` checks by hand), else the fact is ADDed; an UPDATE's text keeps only
    what the fact or the updated `memory` says (`grounded`).
    An UPDATE or DELETE ends what the memory said, so it stands only where the memory can have
    stopped being true; otherwise the fact is ADDed beside it (`outlives`): when the memory was
    written by an earlier fact of the same turn (`fresh`: one message does not contradict itself)
    and when the memory and the fact are events of different days (both happened).
    Done in code because the small models choose DELETE and NOOP where nothing is stated yet,
    UPDATE the closest memory whatever it is about, and copy notes from the prompt's example into
    UPDATE texts. Serving and the manager's training reward both apply decisions through here."""
    if op in ("UPDATE", "DELETE") and target and (why := outlives(fact, memory, fresh)):
        return [("ADD", "", fact, f" ({op} overruled: {why})")]
    if op == "DELETE" and target:
        return [("DELETE", target, None, ""), ("ADD", "", fact, " (the fact that ended the memory is kept)")]
    if op == "NOOP" and closest < SAME_FACT:
        return [("ADD", "", fact, f" (NOOP overruled: no memory states the fact, closest {closest:.2f})")]
    if op == "ADD":
        return [("ADD", "", fact, "")]
    if op == "UPDATE" and text:
        kept = grounded(text, fact, memory)
        if kept != text:
            return [(op, target, kept, f" (the model wrote {text!r}: cut to what the fact or the memory states)")]
    return [(op, target, text, "")]


def outlives(fact: str, memory: str, fresh: bool) -> str:
    """Why `memory` stays true beside `fact` ("" when the fact may end it)."""
    if fresh:
        return "the memory comes from the same turn"
    if (was := days_named(memory)) and (now := days_named(fact)) and not was & now:
        return "the memory and the fact are events of different days"
    return ""


def same_time(a: str, b: str) -> bool:
    return to_stamp(a) == to_stamp(b)


_NOTE = re.compile(r"\s*\(([^()]*)\)\s*[.!]?\s*$")


def grounded(text: str, fact: str, memory: str) -> str:
    """An UPDATE's text without what neither source states. A trailing note in parentheses with a
    content word in neither the fact nor the memory is cut ("... (moved from Paris)", "(updated)":
    the trained manager copies the decision prompt's example); a text that still brings words of
    its own is replaced by the fact, which is what the turn said."""
    sources = content_stems(fact) | content_stems(memory)
    while (m := _NOTE.search(text)) and content_stems(m.group(1)) - sources:
        text = text[:m.start()].rstrip()
    return text if text and not (content_stems(text) - sources) else fact


class AppendPolicy(ManagerPolicy):
    name = "append"

    def decide(self, fact, candidates, turn):
        return Decision("ADD", text=fact, why="every fact is added")


class HeuristicPolicy(ManagerPolicy):
    """A competent non-learned stack. `same subject` = the same leading name; `same attribute` is
    approximated by embedding similarity (>= SUPERSEDE) to the closest memory."""

    name = "heuristic"
    DUPLICATE, SUPERSEDE = 0.92, 0.75

    @staticmethod
    def subject(text: str) -> str:
        return text.split(" ", 1)[0].strip(",.'s").lower()

    def decide(self, fact, candidates, turn):
        top = candidates[0] if candidates else None
        if top and top.score >= self.DUPLICATE:
            return Decision("NOOP", target=top, why=f"near-duplicate of {top.id} (similarity {top.score:.2f})")
        if top and top.score >= self.SUPERSEDE and self.subject(fact) == self.subject(top.text):
            return Decision("UPDATE", target=top, text=fact,
                            why=f"supersedes {top.id}: same subject, similarity {top.score:.2f}")
        return Decision("ADD", text=fact, why="new fact" + (f" (closest similarity {top.score:.2f})" if top else ""))


def same_text(a: str, b: str) -> bool:
    """Equal up to case, spacing and final punctuation."""
    norm = lambda t: " ".join(t.casefold().split()).rstrip(".!")  # noqa: E731
    return norm(a) == norm(b)


class LLMPolicy(ManagerPolicy):
    name = "llm"

    def shortcut(self, fact: str, candidates: list[Hit]) -> Decision | None:
        """Where the schema leaves no real choice, no model call: nothing related above the floor
        (UPDATE and DELETE need a candidate; NOOP would drop a new fact) is an ADD, and a memory
        stating the fact word for word makes it a NOOP."""
        if not candidates:
            return Decision("ADD", text=fact, why=f"no memory related above similarity {self.min_score}: "
                                                  "added without a model call")
        same = next((h for h in candidates if same_text(h.text, fact)), None)
        if same is not None:
            return Decision("NOOP", target=same, why=f"{same.id} states the fact word for word: no model call")
        return None

    def decision_call(self, fact: str, candidates: list[Hit]) -> prompts.ModelCall:
        """The decision's model call: one place for serving (`decide`) and training's rollouts."""
        return prompts.ModelCall(prompts.DECIDE_SYSTEM, prompts.decide_user(fact, [h.text for h in candidates]),
                                 prompts.decide_schema(len(candidates)), prompts.DECIDE_MAX_TOKENS,
                                 prompts.DECIDE_PREFIX)

    def decide(self, fact, candidates, turn):
        if d := self.shortcut(fact, candidates):
            return d
        try:
            call = self.decision_call(fact, candidates)
            out = self.decider.json(call.system, call.user, call.schema, max_tokens=call.max_tokens, prefix=call.prefix)
        except LLMError as exc:
            return Decision("NOOP", why=f"no usable decision from the model ({exc})")
        op = out.get("op", "NOOP")
        target = candidates[out["target"] - 1] if out.get("target") and op in ("UPDATE", "DELETE") else None
        text = fact if op == "ADD" else (out.get("text") or fact).strip() if op == "UPDATE" else None
        where = f" candidate {out['target']} ({target.id}, similarity {target.score:.2f})" if target else ""
        return Decision(op, target=target, text=text, why=f"model chose {op}{where}")


class LearnedPolicy(LLMPolicy):
    name = "learned"

