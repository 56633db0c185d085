"""mem0's Python API on the event-sourced store, so an agent written for mem0 switches by changing
one import: `from integrations.mem0 import Memory`.

What it keeps from mem0: the methods (`add / search / get_all / get / update / delete / delete_all
/ history / reset`), their arguments (mem0 1.x's top-level `user_id=` and 2.x's `filters=` both
work, `limit=` and `top_k=` both work) and their return shapes (`{"results": [...]}`, items with
`id`, `memory`, `hash`, `metadata`, `created_at`, `updated_at`, the scope ids, `score` on search).
Input errors are `ValueError`s, as mem0's are.

What it adds: nothing is ever lost. `update`, `delete`, `delete_all` and `reset` append events to
the log, so `restore(id)` brings a deleted memory back and `history(id)` shows every version;
`as_of=` on `search` and `get_all` reads the bank as it was at a time; `why(id)` explains a
memory; `timestamp=` on `add` says when a message was said (the as-of clock).

Scoping: each (user_id, agent_id, run_id) triple is one bank of the file, named by `scope_bank`:
`u:alice`, `u:alice.a:planner`, `r:run-7`... (ids of letters, digits, `_` and `-`), or, for other
ids (e-mails, spaces, long ids), `h:` + a sha256 prefix of the triple. The mapping is one-to-one;
`bank=` reaches any bank directly. Ids are per bank: an id given with a scope is looked up in that
bank only (another bank's id reads as unknown); without a scope, the bank holding it is found.

`infer=True` (the default, as in mem0) turns each message into memory ops through a Memory
Manager policy (by default `learned` on the local model, `llm` with another model or an endpoint:
`policy.agent.default_policy`; the model loads on first use, and only there)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from memstore.clock import to_stamp
from memstore.errors import BadInput, NotFound
from memstore.args import check_bank
from memstore.store import MemoryStore

from .banks import Banks

SCOPE_KEYS = ("user_id", "agent_id", "run_id")
_PREFIX = {"user_id": "u", "agent_id": "a", "run_id": "r"}
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]+")  # fullmatch
_ROLES = ("user", "assistant", "system")
_CHANGES = ("ADD", "UPDATE", "DELETE")


def scope_bank(user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None) -> str:
    """The bank of a mem0 scope (see the module docstring); at least one id is required."""
    ids = _ids(user_id, agent_id, run_id)
    if not ids:
        raise BadInput("one of user_id, agent_id or run_id is required")
    readable = ".".join(f"{_PREFIX[k]}:{v}" for k, v in ids.items())
    if all(_PLAIN_ID.fullmatch(v) for v in ids.values()) and len(readable) <= 64:
        return readable
    digest = hashlib.sha256(json.dumps([user_id, agent_id, run_id]).encode()).hexdigest()
    return "h:" + digest[:40]


def _ids(user_id, agent_id, run_id) -> dict[str, str]:
    out = {}
    for key, value in zip(SCOPE_KEYS, (user_id, agent_id, run_id)):
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # mem0 turns integer ids (database keys) into strings
        if not isinstance(value, str) or not value.strip():
            raise BadInput(f"{key} must be a non-empty string")
        if any(c.isspace() for c in value):
            # mem0 trims outer spaces; here " alice" is refused rather than folded into "alice"'s memories
            raise BadInput(f"{key} {value!r} contains whitespace: ids are one word")
        out[key] = value
    return out


def _messages(messages: Any) -> list[dict]:
    """mem0's accepted shapes (a string, a message dict, a list of them), validated whole."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    elif isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list) or not messages:
        raise BadInput("messages must be a string, a message dict or a non-empty list of message dicts")
    for n, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise BadInput(f"malformed message list: item {n} is not a dict with 'role' and 'content'")
        if msg.get("role") not in _ROLES:
            raise BadInput(f"malformed message list: item {n} has role {msg.get('role')!r}, expected user, assistant or system")
        if not isinstance(msg.get("content"), str) or not msg["content"].strip():
            raise BadInput(f"malformed message list: item {n} has no text content")
        if msg.get("name") is not None and (not isinstance(msg["name"], str) or not msg["name"].strip()):
            raise BadInput(f"malformed message list: item {n} has a bad name")
    return messages


def _metadata(metadata: Any) -> dict | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise BadInput("metadata must be a dict")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError):
        raise BadInput("metadata must be JSON-serialisable") from None
    return metadata


_OPS = {"eq": lambda v, c: v == c, "ne": lambda v, c: v != c,
        "in": lambda v, c: v in c, "nin": lambda v, c: v not in c,
        "gt": lambda v, c: _ordered(v, c) and v > c, "gte": lambda v, c: _ordered(v, c) and v >= c,
        "lt": lambda v, c: _ordered(v, c) and v < c, "lte": lambda v, c: _ordered(v, c) and v <= c,
        "contains": lambda v, c: isinstance(v, (str, list)) and c in v,
        "icontains": lambda v, c: isinstance(v, str) and isinstance(c, str) and c.casefold() in v.casefold()}
_LOGIC = ("AND", "OR", "NOT")


def _ordered(value: Any, cond: Any) -> bool:
    """Comparable for gt/gte/lt/lte: two numbers or two strings (a missing key never matches)."""
    number = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)  # noqa: E731
    return (number(value) and number(cond)) or (isinstance(value, str) and isinstance(cond, str))


def _matches(value: Any, cond: Any) -> bool:
    """One metadata condition of mem0's filter language (checked by `_check_filter`): a value,
    '*', or operators (eq, ne, in, nin, gt, gte, lt, lte, contains, icontains), all of which must hold."""
    if cond == "*":
        return True  # as mem0: the wildcard matches every memory, with or without the key
    if not isinstance(cond, dict):
        return value == cond
    return all(_OPS[op](value, arg) for op, arg in cond.items())


def _check_filter(filters: dict) -> None:
    """Refuse a malformed filter up front, whatever the memories (a typo must not pass silently
    on an empty bank); `_matches` then only evaluates."""
    for key, cond in filters.items():
        if key in _LOGIC:
            if not isinstance(cond, list) or not cond or not all(isinstance(c, dict) for c in cond):
                raise BadInput(f"{key} takes a non-empty list of filter dicts")
            for sub in cond:
                _check_filter(sub)
        elif isinstance(cond, dict):
            for op, arg in cond.items():
                if op not in _OPS:
                    raise BadInput(f"unsupported filter operator {op!r}: use a value, '*', {', '.join(_OPS)}")
                if op in ("in", "nin") and not isinstance(arg, list):
                    raise BadInput(f"filter operator {op!r} takes a list")


def _filter_holds(metadata: dict, filters: dict) -> bool:
    """mem0's filter dict on a memory's metadata: every key's condition, AND / OR / NOT of lists."""
    for key, cond in filters.items():
        if key == "AND" and not all(_filter_holds(metadata, c) for c in cond):
            return False
        if key == "OR" and not any(_filter_holds(metadata, c) for c in cond):
            return False
        if key == "NOT" and any(_filter_holds(metadata, c) for c in cond):
            return False
        if key not in _LOGIC and not _matches(metadata.get(key), cond):
            return False
    return True


def _lift_scope(filters: dict) -> dict:
    """Scope ids written inside a top-level AND ({"AND": [{"user_id": "alice"}, ...]}) moved up
    beside the other keys, where the scope is read from."""
    conds = filters.get("AND")
    if not isinstance(conds, list):
        return filters
    out, rest = {k: v for k, v in filters.items() if k != "AND"}, []
    for cond in conds:
        if isinstance(cond, dict) and len(cond) == 1 and next(iter(cond)) in SCOPE_KEYS:
            key, value = next(iter(cond.items()))
            if key in out and out[key] != value:
                raise BadInput(f"{key} given twice with different values")
            out[key] = value
        else:
            rest.append(cond)
    if rest:
        out["AND"] = rest
    return out


class Memory:
    """mem0's `Memory` over one memstore database file (see the module docstring).

    >>> m = Memory("agent.db")
    >>> m.add("I'm vegetarian and allergic to nuts.", user_id="alice", infer=False)
    >>> m.search("what can alice eat?", filters={"user_id": "alice"})["results"][0]["memory"]
    """

    def __init__(self, path: str = "memstore.db", *, policy: str | None = None, model: str | None = None,
                 endpoint: str | None = None, llm: Any = None, timeout: float = 10.0):
        self.path = path
        self.banks = Banks(path, policy=policy, model=model, endpoint=endpoint, llm=llm, timeout=timeout)

    # mem0 config keys accepted by from_config; only "llm" is used (see from_config)
    _MEM0_KEYS = {"vector_store", "llm", "embedder", "graph_store", "reranker", "history_db_path", "version",
                  "custom_fact_extraction_prompt", "custom_update_memory_prompt", "custom_instructions"}

    @classmethod
    def from_config(cls, config_dict: dict) -> "Memory":
        """mem0's constructor from a config dict. memstore keeps its own store and search (SQLite
        log, hnswlib over MiniLM), so `vector_store`, `embedder`, `graph_store` and `reranker` are
        accepted and not used; an `llm` with an OpenAI-compatible base URL (`openai_base_url`,
        `lmstudio_base_url`, `vllm_base_url`) and `model` serves the Memory
        Manager for `infer=True`, else the local model does. The file is `memstore.path`, else
        `history_db_path`, else ./memstore.db; `memstore.policy` picks the manager."""
        if not isinstance(config_dict, dict):
            raise BadInput("from_config takes a dict (mem0's config)")
        unknown = set(config_dict) - cls._MEM0_KEYS - {"memstore"}
        if unknown:
            raise BadInput(f"unknown config key(s) {', '.join(sorted(unknown))}: mem0's keys or 'memstore'")
        own = config_dict.get("memstore") or {}
        llm = ((config_dict.get("llm") or {}).get("config") or {}) if isinstance(config_dict.get("llm"), dict) else {}
        if not isinstance(own, dict) or not isinstance(llm, dict):
            raise BadInput("config 'memstore' and 'llm.config' must be dicts")
        endpoint = next((llm[k] for k in ("openai_base_url", "lmstudio_base_url", "vllm_base_url")
                         if llm.get(k)), None)
        path = own.get("path") or config_dict.get("history_db_path") or "memstore.db"
        return cls(path, policy=own.get("policy"), model=llm.get("model") if endpoint else own.get("model"),
                   endpoint=endpoint)

    # ---- plumbing --------------------------------------------------------------------------
    def _scope(self, user_id=None, agent_id=None, run_id=None, filters=None, bank=None,
               required: bool = True) -> tuple[str | None, dict, dict]:
        """(bank, scope ids, metadata filters) from top-level ids, `filters` or `bank`."""
        if filters is not None and not isinstance(filters, dict):
            raise BadInput("filters must be a dict")
        filters = _lift_scope(dict(filters or {}))
        _check_filter(filters)
        for key in SCOPE_KEYS:
            if key in filters:
                top = {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}[key]
                if top is not None and top != filters[key]:
                    raise BadInput(f"{key} given twice with different values")
        user_id = filters.pop("user_id", user_id)
        agent_id = filters.pop("agent_id", agent_id)
        run_id = filters.pop("run_id", run_id)
        ids = _ids(user_id, agent_id, run_id)
        if bank is not None:
            if ids:
                raise BadInput("pass either bank= or user_id/agent_id/run_id, not both")
            return check_bank(bank), ids, filters
        if not ids:
            if required:
                raise BadInput("one of user_id, agent_id or run_id is required (or bank=)")
            return None, ids, filters
        return scope_bank(**ids), ids, filters

    def _locate(self, memory_id: str, **scope) -> MemoryStore:
        """The store of the bank holding `memory_id`: the scope's bank if one is given, else the
        one bank of the file that has it."""
        if not isinstance(memory_id, str) or not memory_id.strip():
            raise BadInput("memory_id must be a non-empty string")
        bank, _, _ = self._scope(**scope, required=False)
        if bank is None:
            banks = [r[0] for r in self._root().conn.execute(
                "SELECT DISTINCT bank FROM events WHERE memory_id = ?", (memory_id,))]
            if len(banks) > 1:
                raise BadInput(f"memory {memory_id!r} exists in {len(banks)} banks: pass user_id/agent_id/run_id or bank=")
            if not banks:
                raise NotFound(f"no memory {memory_id!r}")
            bank = banks[0]
        store = self.banks.store(bank)
        if store._current(memory_id) is None:
            raise NotFound(f"no memory {memory_id!r} in bank {bank!r}")
        return store

    def _root(self) -> MemoryStore:
        return self.banks.first()

    def _provenance(self, store: MemoryStore, seq: int) -> tuple[dict | None, dict, str | None]:
        """(metadata, scope ids, role of the message) of a memory version: from the event written
        by this API, or from the recorded inputs a policy's decision came from."""
        row = store.conn.execute("SELECT cause, source FROM events WHERE seq = ?", (seq,)).fetchone()
        cause = json.loads(row["cause"]) if row and row["cause"] else {}
        inputs = store.inputs(json.loads(row["source"]) if row and row["source"] else [])
        role = next(((i.meta or {}).get("role") for i in inputs if (i.meta or {}).get("role")), None)
        if "metadata" in cause or "scope" in cause:
            return cause.get("metadata"), cause.get("scope") or {}, cause.get("role") or role
        metadata, scope = None, {}
        for inp in inputs:
            meta = inp.meta or {}
            if meta.get("metadata"):
                metadata = {**(metadata or {}), **meta["metadata"]}
            scope = meta.get("scope") or scope
        return metadata, scope, role

    def _item(self, store: MemoryStore, memory_id: str, text: str, valid_at: str, seq: int,
              score: float | None = None) -> dict:
        metadata, scope, role = self._provenance(store, seq)
        created = store.conn.execute(
            "SELECT MIN(valid_at) FROM events WHERE bank = ? AND memory_id = ? AND outcome = 'applied'",
            (store.bank, memory_id)).fetchone()[0]
        item = {"id": memory_id, "memory": text, "hash": hashlib.md5(text.encode()).hexdigest(),
                "metadata": metadata or None, "created_at": created, "updated_at": valid_at, **scope}
        if role:
            item["role"] = role
        if score is not None:
            item["score"] = score
        return item

    def _keep(self, item: dict, filters: dict) -> bool:
        return _filter_holds(item.get("metadata") or {}, filters)

    @staticmethod
    def _count(top_k, limit, default: int) -> int:
        k = top_k if top_k is not None else limit if limit is not None else default
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise BadInput(f"top_k/limit must be a non-negative integer, not {k!r}")
        return k

    # ---- mem0's API ------------------------------------------------------------------------
    def add(self, messages, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
            metadata: dict | None = None, infer: bool = True, timestamp: Any = None, bank: str | None = None,
            **unsupported) -> dict:
        """Store what the messages say. `infer=True`: each message goes through the Memory Manager
        (facts extracted, then ADD/UPDATE/DELETE/NOOP against the bank); `infer=False`: each
        message's content is added verbatim. System messages are skipped, as mem0 does. Returns
        the changes made: `{"results": [{"id", "memory", "event", ...}]}`."""
        if unsupported:
            raise BadInput(f"add() does not support {', '.join(sorted(unsupported))} here")
        bank, ids, extra = self._scope(user_id, agent_id, run_id, None, bank)
        msgs = [m for m in _messages(messages) if m["role"] != "system"]
        metadata = _metadata(metadata)
        at = to_stamp(timestamp)
        store = self.banks.store(bank)
        prov = {"metadata": metadata, "scope": ids}
        results = []
        if not infer:
            with store.transaction():
                for msg in msgs:
                    inp, _ = store.record_input(self._speaker(msg, ids), msg["content"], at, meta={**prov, "role": msg["role"]})
                    ev = store.add(msg["content"], at=at, reason="added verbatim (infer=False)",
                                   source=[inp.input_id], cause=prov)
                    results.append({"id": ev.memory_id, "memory": ev.text, "event": "ADD", "actor_id": None,
                                    "role": msg["role"], "created_at": ev.valid_at, "metadata": metadata, **ids})
            return {"results": results}
        agent = self.banks.agent(bank)
        for msg in msgs:
            for ev in agent.observe(self._speaker(msg, ids), msg["content"], at, message_id=uuid.uuid4().hex,
                                    meta={**prov, "role": msg["role"]}):
                if ev.outcome != "applied" or ev.op not in _CHANGES:
                    continue
                item = {"id": ev.memory_id, "memory": ev.text if ev.op != "DELETE" else ev.prev_text,
                        "event": ev.op, "actor_id": None, "role": msg["role"], "created_at": ev.valid_at,
                        "metadata": metadata, **ids}
                if ev.op == "UPDATE":
                    item["previous_memory"] = ev.prev_text
                results.append(item)
        return {"results": results}

    @staticmethod
    def _speaker(msg: dict, ids: dict) -> str:
        """Who said it, so facts name the person ("Alice is vegetarian", not "I am")."""
        default = {"user": ids.get("user_id"), "assistant": ids.get("agent_id")}.get(msg["role"])
        return (msg.get("name") or default or msg["role"]).strip()

    def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
               filters: dict | None = None, top_k: int | None = None, limit: int | None = None,
               threshold: float | None = 0.1, as_of: Any = None, bank: str | None = None, rerank: bool = False,
               explain: bool = False, reference_date: Any = None, show_expired: bool = False) -> dict:
        """The memories most similar to `query` alive at `as_of` (default now), best first, those
        scoring at least `threshold` (cosine; mem0's default 0.1). mem0's `rerank`, `explain`,
        `reference_date` and `show_expired` are accepted: there is no reranker here, `explain`
        adds nothing beyond the score, and `reference_date` is read as `as_of` when that is not given
        (memories never expire by date here: `show_expired` changes nothing)."""
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0 <= threshold <= 1):
            raise BadInput(f"threshold must be a number between 0 and 1, not {threshold!r}")
        as_of = as_of if as_of is not None else reference_date
        bank, _, meta_filters = self._scope(user_id, agent_id, run_id, filters, bank)
        k = self._count(top_k, limit, 20)
        store = self.banks.store(bank)
        if k == 0:
            return {"results": []}  # as mem0's top_k=0
        # with metadata filters, rank every alive memory (search caps k at the alive count), then filter
        want = 2**31 if meta_filters else k
        results = []
        for hit in store.search(query, k=want, as_of=as_of):
            if threshold is not None and hit.score < threshold:
                continue
            item = self._item(store, hit.id, hit.text, hit.valid_at, hit.seq, score=hit.score)
            if self._keep(item, meta_filters):
                results.append(item)
            if len(results) == k:
                break
        return {"results": results}

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                filters: dict | None = None, top_k: int | None = None, limit: int | None = None,
                as_of: Any = None, bank: str | None = None, show_expired: bool = False) -> dict:
        """Every memory of the scope alive at `as_of` (default now), oldest first, at most `top_k`
        (mem0's default 20)."""
        bank, _, meta_filters = self._scope(user_id, agent_id, run_id, filters, bank)
        k = self._count(top_k, limit, 20)
        store = self.banks.store(bank)
        items = [self._item(store, m.id, m.text, m.valid_at, m.seq) for m in store.replay(as_of)]
        return {"results": [i for i in items if self._keep(i, meta_filters)][:k]}

    def get(self, memory_id: str, *, as_of: Any = None, **scope) -> dict | None:
        """One memory as it is now (or at `as_of`); None when it is unknown or not alive, as mem0."""
        try:
            store = self._locate(memory_id, **scope)
        except NotFound:
            return None
        memory = store.get(memory_id, as_of=as_of)
        if memory is None:
            return None
        return {**self._item(store, memory.id, memory.text, memory.valid_at, memory.seq), "score": None}  # as mem0

    def update(self, memory_id: str, text: str | None = None, metadata: dict | None = None, *,
               data: str | None = None, at: Any = None, reason: str | None = None, **scope) -> dict:
        """A new version of the memory (the old one stays in `history`). `metadata` is merged into
        the memory's metadata; `data` is mem0's older name for `text`."""
        text = text if text is not None else data
        metadata = _metadata(metadata)
        if text is None and metadata is None:
            raise BadInput("update needs text or metadata")
        store = self._locate(memory_id, **scope)
        current = store._live(memory_id, "UPDATE")  # the store's own error for a deleted or erased memory
        old_meta, ids, role = self._provenance(store, current["seq"])
        merged = {**(old_meta or {}), **(metadata or {})} or None
        ev = store.update(memory_id, text if text is not None else current["text"], at=at,
                          reason=reason or "updated through the mem0-compatible API",
                          cause={"metadata": merged, "scope": ids, **({"role": role} if role else {})})
        return {"message": "Memory updated successfully!", "id": memory_id, "event": "UPDATE",
                "memory": ev.text, "previous_memory": ev.prev_text}

    def delete(self, memory_id: str, *, at: Any = None, reason: str | None = None, **scope) -> dict:
        """End the memory with a DELETE event; `restore(memory_id)` undoes it."""
        store = self._locate(memory_id, **scope)
        store.delete(memory_id, at=at, reason=reason or "deleted through the mem0-compatible API")
        return {"message": "Memory deleted successfully!", "id": memory_id}

    def delete_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                   bank: str | None = None, reason: str | None = None) -> dict:
        """End every live memory of the scope, in one transaction (each one restorable)."""
        bank, _, _ = self._scope(user_id, agent_id, run_id, None, bank)
        n = self._end_all(self.banks.store(bank), reason or "delete_all through the mem0-compatible API")
        return {"message": "Memories deleted successfully!", "deleted": n}

    def reset(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
              bank: str | None = None) -> None:
        """mem0's reset: every memory ended (returns None, as mem0's). Here it is events, never a
        file deletion: with a scope, that bank; without, every bank of the file. Each memory can be
        restored, and `get_all(as_of=...)` still shows the past."""
        scoped, _, _ = self._scope(user_id, agent_id, run_id, None, bank, required=False)
        for b in [scoped] if scoped else self._root().banks():
            self._end_all(self.banks.store(b), "reset through the mem0-compatible API")

    @staticmethod
    def _end_all(store: MemoryStore, reason: str) -> int:
        with store.transaction():
            alive = store.replay()
            for memory in alive:
                store.delete(memory.id, at=max(to_stamp(None), memory.valid_at), reason=reason)
        return len(alive)

    def history(self, memory_id: str, **scope) -> list[dict]:
        """Every event of the memory in log order, in mem0's history shape plus the log's own
        fields (seq, outcome, reason, valid_at)."""
        store = self._locate(memory_id, **scope)
        return [{"id": e.event_id, "memory_id": e.memory_id, "old_memory": e.prev_text,
                 "new_memory": e.text if e.op != "DELETE" else None, "event": e.op, "created_at": e.recorded_at,
                 "updated_at": e.recorded_at, "is_deleted": e.op in ("DELETE", "ERASE"), "actor_id": e.actor,
                 "role": None, "seq": e.seq, "outcome": e.outcome, "reason": e.reason, "valid_at": e.valid_at}
                for e in store.history(memory_id)]

    # ---- what mem0 lacks -------------------------------------------------------------------
    def restore(self, memory_id: str, *, reason: str | None = None, **scope) -> dict:
        """Bring a deleted memory back (a RESTORE event pointing at the deletion)."""
        store = self._locate(memory_id, **scope)
        ev = store.restore(memory_id, reason=reason)
        return self._item(store, memory_id, ev.text, ev.valid_at, ev.seq)

    def why(self, memory_id: str, **scope) -> dict:
        """Why the memory is in its state: the event, its reason and actor, its cause chain and
        the messages it came from."""
        return self._locate(memory_id, **scope).why(memory_id)

    def close(self) -> None:
        self.banks.close()

    def __enter__(self) -> "Memory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
