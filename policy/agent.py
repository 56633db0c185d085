"""The Python API for agents: a store, a manager policy and an answer agent in one object.

    from policy import MemoryAgent
    agent = MemoryAgent("desk.db", bank="alice")   # the trained policy on the local model
    agent.observe("alice", "We adopted a second dog, Bella!", "2023-06-12T10:00")
    agent.ask("How many dogs does Alice have?").answer
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from memstore import MemoryStore

from .answer import Answer, AnswerAgent
from memstore.ingest import ingest
from .expiry import StackPolicy
from .manager import AppendPolicy, HeuristicPolicy, LearnedPolicy, LLMPolicy
from .prompts import ANSWER_PROMPT_VERSION, DECIDE_VERSIONS, EXTRACT_VERSION, EXTRACT_WINDOW
from .runtime import LLM, LlamaCppLLM, load
from .turns import Turn

from memstore.clock import to_stamp
from memstore.errors import BadInput


POLICIES = {p.name: p for p in (AppendPolicy, HeuristicPolicy, StackPolicy, LLMPolicy, LearnedPolicy)}
ADAPTERS = Path(__file__).parent / "adapters"  # the project's own trained adapters (see adapters/README.md)
_served: dict[tuple, LlamaCppLLM] = {}


def shipped_adapter(kind: str) -> Path:
    return ADAPTERS / f"{kind}.gguf"


def adapter_contract(path: Path) -> dict:
    """How an adapter was trained, from the PATH.json that `memstore export` writes beside it
    ({} when there is none: an adapter from elsewhere is served unchecked)."""
    info = Path(str(path) + ".json")
    if not info.is_file():
        return {}
    try:
        return json.loads(info.read_text()).get("config") or {}
    except (json.JSONDecodeError, AttributeError):
        raise BadInput(f"{info} is not the JSON `memstore export` writes") from None


def check_contract(contract: dict, llm: LLM, kind: str, path: Path) -> None:
    """Training and serving are one configuration: an adapter trained on another base model or
    another prompt version is refused, in one line saying which."""
    sha = getattr(getattr(llm, "model", None), "sha256", None)
    if contract.get("base_sha256") and sha and contract["base_sha256"] != sha:
        raise BadInput(f"{path} was trained on base model sha256 {contract['base_sha256'][:12]}..., this backbone is "
                       f"{sha[:12]}...: serve it on the model it was trained on (--model)")
    served = {"answer": (ANSWER_PROMPT_VERSION,), "extract": (EXTRACT_VERSION,)}.get(kind, DECIDE_VERSIONS)  # a manager is served v3
    if contract.get("prompt_version") and contract["prompt_version"] not in served:
        raise BadInput(f"{path} was trained with {kind} prompt {contract['prompt_version']}, serving knows "
                       f"{', '.join(served)}: retrain it (memstore train ...) or serve the matching version")


def with_adapter(llm: LLM, adapter: str | Path | None, kind: str) -> tuple[LLM, dict]:
    """The backbone with a LoRA adapter (default: the shipped one for `kind`), served by llama.cpp,
    and the adapter's training contract (`adapter_contract`)."""
    if not isinstance(llm, LlamaCppLLM):
        raise BadInput("policy 'learned' serves its LoRA adapters through llama.cpp: it needs a local model, not --endpoint")
    path = Path(adapter) if adapter else shipped_adapter(kind)
    if not path.is_file():
        raise BadInput(f"no trained {kind} adapter at {path}: pass one (memstore train {kind} ... && memstore export)")
    contract = adapter_contract(path)
    check_contract(contract, llm, kind, path)
    key = (str(llm.model.path), str(path.resolve()))
    if key not in _served:
        _served[key] = LlamaCppLLM(llm.model, path, reuse_prefix=llm.reuse_prefix)
    return _served[key], contract


def default_policy(llm: LLM) -> str:
    """The policy a caller gets without naming one: the best measured, `learned` (pooled LoCoMo
    dev table, docs/results/locomo.md), where its shipped adapters apply, on the local backbone they
    were trained on (`check_contract` accepts them); else (another model, an endpoint) `llm`."""
    if not isinstance(llm, LlamaCppLLM) or not getattr(llm.model, "sha256", None):
        return "llm"
    for kind in ("extract", "manager", "answer"):
        path = shipped_adapter(kind)
        if not path.is_file():
            return "llm"
        try:
            check_contract(adapter_contract(path), llm, kind, path)
        except BadInput:
            return "llm"
    return "learned"


def make_policy(name: str, llm: LLM, adapter: str | Path | None = None, *,
                expire_after: tuple[str, ...] | list[str] = (), extract_adapter: str | Path | None = None,
                extractor: LLM | None = None):
    """A manager policy on the backbone `llm`; `learned` decides with a LoRA adapter (`adapter`,
    default the shipped one) and extracts facts with its extraction adapter (`extract_adapter`,
    default the shipped one where there is one, else the plain backbone); `stack` expires memories
    by its `expire_after` rules (policy/expiry.py). `extractor`: another backbone that extracts the
    facts (served without a window, like the plain backbone), while `llm` decides (for `learned`,
    in place of its extraction adapter); for append, heuristic and llm, `extract_adapter` does the
    same with an extraction adapter on the backbone (what the trained facts are worth under an
    untrained manager)."""
    if name not in POLICIES:
        raise BadInput(f"unknown policy {name!r}: choose from {', '.join(POLICIES)}")
    other_extraction = extractor is not None or bool(extract_adapter)
    if extractor is not None and extract_adapter:
        raise BadInput("give --extract-model or --extract-adapter, not both")
    if other_extraction and name == "stack":
        raise BadInput("--extract-model and --extract-adapter apply to the append, heuristic, llm and learned policies")
    if other_extraction and name != "learned":
        window = 0
        if extract_adapter:
            extractor, contract = with_adapter(llm, extract_adapter, "extract")
            window = contract.get("window", EXTRACT_WINDOW)
        policy = POLICIES[name](extractor, decider=llm)
        policy.window = window
        return policy
    if name == "stack":
        return StackPolicy(llm, expire_after=expire_after)
    if name != "learned":
        if adapter:
            raise BadInput("--adapter applies to --policy learned only")
        return POLICIES[name](llm)
    decider, _ = with_adapter(llm, adapter, "manager")
    window = 0
    if extractor is None and (extract_adapter or shipped_adapter("extract").is_file()):
        extractor, extract_contract = with_adapter(llm, extract_adapter, "extract")
        window = extract_contract.get("window", EXTRACT_WINDOW)
    policy = POLICIES[name](extractor or llm, decider=decider)
    policy.window = window
    return policy


def make_answerer(name: str, llm: LLM, adapter: str | Path | None = None, k: int | None = None) -> AnswerAgent:
    """The Answer Agent that goes with a policy: `learned` answers with its trained adapter and,
    unless `k` says otherwise, shows the number of memories it was trained with (else the default, 10)."""
    if name == "learned":
        llm, contract = with_adapter(llm, adapter, "answer")
        if k is None:
            k = contract.get("memories")
    elif adapter:
        raise BadInput("--answer-adapter applies to --policy learned only")
    k = AnswerAgent.DEFAULT_K if k is None else k
    if not 1 <= k <= 200:
        raise BadInput(f"--memories must be between 1 and 200, not {k}")
    return AnswerAgent(llm, k=k, recency_weight=0.05 if name in ("heuristic", "stack") else 0.0)


class MemoryAgent:
    def __init__(self, path="memstore.db", bank: str = "default", *, policy: str | None = None,
                 model: str | None = None, adapter: str | None = None, answer_adapter: str | None = None,
                 endpoint: str | None = None, llm: LLM | None = None, store: MemoryStore | None = None,
                 memories: int | None = None, expire_after: tuple[str, ...] = ()):
        """`policy`: append | heuristic | stack | llm | learned; default `default_policy`."""
        self.store = store or MemoryStore(path, bank)
        self.llm = llm or load(model, endpoint=endpoint)
        policy = policy or default_policy(self.llm)
        self.policy = make_policy(policy, self.llm, adapter, expire_after=expire_after)
        self.answerer = make_answerer(policy, self.llm, answer_adapter, k=memories)

    def observe(self, speaker: str, text: str, time=None, *, message_id: str | None = None,
                meta: dict | None = None):
        """Record one message (with optional `meta`, kept on its input) and let the manager turn
        it into memory ops; returns the events."""
        if not isinstance(text, str) or not text.strip():
            raise BadInput("observe needs a non-empty message")
        turn = Turn(message_id or uuid.uuid4().hex, speaker, text, to_stamp(time), meta=meta)
        before = self.store.last_seq()
        ingest(self.store, self.policy, [turn])
        return [e for e in self.store.events(before) if e.source == [turn.input_id]]

    def ask(self, question: str, as_of=None) -> Answer:
        return self.answerer.answer(self.store, question, as_of=as_of)

    def search(self, query: str, k: int = 10, as_of=None, hybrid: bool = False):
        """`MemoryStore.search` over the agent's bank (`ask` reads the hybrid order)."""
        return self.store.search(query, k=k, as_of=as_of, hybrid=hybrid)

    def close(self) -> None:
        self.store.close()
