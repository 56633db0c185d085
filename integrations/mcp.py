"""`memstore mcp`: a Model Context Protocol server over stdio for one database file, built with
the official `mcp` SDK.

Every tool takes the bank to work in (`bank`, or mem0-style `user_id` / `agent_id` / `run_id`, mapped
to a bank by `integrations.mem0.scope_bank`; none means the server's default bank) and never reads or
writes another. Banks, stores and the model are those of one `integrations.mem0.Memory`, so a memory
added here carries the same metadata and shape as through the mem0-compatible API. Tools:
observe, add/get/list/search/update/delete memories, delete_all_memories, ask, memory_history,
why_memory, restore_memory, and erase_memory only with --allow-erase; resources list the banks and
a bank's memories now or as of a time; prompts ask for an answer from memory and for a memory's
audit. A user error (unknown id, bad time, a deleted memory...) comes back as an MCP tool error
with the store's one-line message; the server keeps serving. The local model loads once, on the
first tool that needs it (`observe`, `ask`). Calls are served one at a time: the SDK runs sync
tools on worker threads, and a store connection is not for two threads at once."""

from __future__ import annotations

import importlib.metadata
import json
import sqlite3
import threading
from pathlib import Path
from typing import Annotated, Any, Callable

import psycopg
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from memstore import MemoryStore
from memstore.args import check_bank
from memstore.errors import BadInput, MemstoreError, NotFound

from .banks import event_fields as _event
from .mem0 import Memory, scope_bank

INSTRUCTIONS = """Long-term memory backed by an append-only, hash-chained event log. Nothing is
lost: updates and deletions are events, `memory_history` shows every version, `why_memory`
explains a memory and `restore_memory` undoes a deletion. `as_of` reads memory as it was at a time.
Pass `observe` each message worth remembering; call `search_memories` or `ask` before answering
from memory. Scope every call with user_id / agent_id / run_id (or bank)."""

Bank = Annotated[str | None, Field(description="Memory bank to use (letters, digits, '_', '.', ':', '-'); "
                                               "default: the server's bank. Do not combine with the ids below.")]
UserId = Annotated[str | None, Field(description="mem0-style user id: the memories of this user (with agent_id "
                                                 "and/or run_id: of that combination).")]
AgentId = Annotated[str | None, Field(description="mem0-style agent id (alone or with user_id / run_id).")]
RunId = Annotated[str | None, Field(description="mem0-style run or session id (alone or with user_id / agent_id).")]
MemoryId = Annotated[str, Field(description="Memory id as returned by other tools, e.g. 'm1a2b3c4d5e'.")]
AsOf = Annotated[str | None, Field(description="Read memory as it was at this time (ISO date or datetime, e.g. "
                                               "'2023-06-01' or '2023-06-01T12:00') or log position ('@42'); default now.")]
At = Annotated[str | None, Field(description="When this was observed (ISO date or datetime); default now.")]
Reason = Annotated[str | None, Field(description="Why, in a few words (kept in the log).")]
Metadata = Annotated[dict[str, Any] | None, Field(description="Key-value tags kept with the memory, e.g. "
                                                             "{\"category\": \"food\"}; searchable with filters.")]
Filters = Annotated[dict[str, Any] | None, Field(description="mem0-style metadata filters: {\"category\": \"food\"}, "
                                                            "{\"priority\": {\"gte\": 2}}, {\"OR\": [{...}, {...}]}; "
                                                            "operators eq ne in nin gt gte lt lte contains icontains.")]

READ = ToolAnnotations(read_only_hint=True)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False)


class MemoryServer:
    """The state behind the tools: the mem0-compatible API's banks, stores and agents (one cache,
    one model), and one lock."""

    def __init__(self, db: Path, bank: str, *, policy: str | None = None, model: str | None = None,
                 endpoint: str | None = None):
        self.default_bank = check_bank(bank)
        self.memory = Memory(str(db), policy=policy, model=model, endpoint=endpoint)
        self.lock = threading.Lock()
        self.store(None, {}).banks()  # a missing, foreign or corrupt file fails here, before serving

    def bank(self, bank: str | None, ids: dict) -> str:
        ids = {k: v for k, v in ids.items() if v is not None}
        if bank is not None and ids:
            raise BadInput(f"pass bank or {'/'.join(ids)}, not both")
        return scope_bank(**ids) if ids else check_bank(bank or self.default_bank)

    def store(self, bank: str | None, ids: dict) -> MemoryStore:
        return self.memory.banks.store(self.bank(bank, ids))

    def agent(self, bank: str | None, ids: dict):
        """The manager and answer agent of a bank, on the one model (loaded on first use)."""
        return self.memory.banks.agent(self.bank(bank, ids))

    def run(self, work: Callable[[], Any]) -> Any:
        """One tool call: serialised, and every user error turned into a one-line tool error."""
        with self.lock:
            try:
                return work()
            except MemstoreError as exc:
                raise ToolError(" ".join(str(exc).split())) from None
            except (sqlite3.Error, psycopg.Error) as exc:
                raise ToolError(f"database refused the operation: {' '.join(str(exc).split())}") from None
            except (ValueError, OverflowError) as exc:
                raise ToolError(f"bad input: {' '.join(str(exc).split())}") from None


class StrictServer(MCPServer):
    """An MCP server whose tools refuse arguments they do not take (a misspelled `user_id` must not
    quietly write to the default bank), and whose argument errors are one line."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context=None):
        schema = self._tool_input_schema(name)
        if schema is not None:
            unknown = sorted(set(arguments) - set(schema.get("properties", {})))
            if unknown:
                raise ToolError(f"{name} takes no argument {', '.join(map(repr, unknown))} "
                                f"(it takes: {', '.join(schema.get('properties', {}))})")
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            raise ToolError(" ".join(str(exc).split())) from None


def _version() -> str:
    try:
        return importlib.metadata.version("memstore")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0"


def build_server(db: Path, bank: str = "default", *, allow_erase: bool = False, policy: str | None = None,
                 model: str | None = None, endpoint: str | None = None) -> MCPServer:
    state = MemoryServer(db, bank, policy=policy, model=model, endpoint=endpoint)
    mcp = StrictServer("memstore", instructions=INSTRUCTIONS, log_level="WARNING", version=_version())
    api = state.memory
    ids = lambda user_id, agent_id, run_id: {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}  # noqa: E731

    @mcp.tool(annotations=WRITE)
    def observe(message: Annotated[str, Field(description="One message of the conversation, verbatim.")],
                speaker: Annotated[str, Field(description="Who said it (a name), so memories say who they are about.")] = "user",
                time: At = None, bank: Bank = None, user_id: UserId = None, agent_id: AgentId = None,
                run_id: RunId = None) -> dict[str, Any]:
        """Remember what a message says: the memory manager extracts its facts and, for each,
        adds a memory, updates or deletes an existing one, or does nothing. Returns the events."""
        return state.run(lambda: {"events": [_event(e) for e in state.agent(bank, ids(user_id, agent_id, run_id))
                                             .observe(speaker, message, time)]})

    @mcp.tool(annotations=WRITE)
    def add_memory(text: Annotated[str, Field(description="The fact to remember, self-contained (name who it is about).")],
                   at: At = None, metadata: Metadata = None, bank: Bank = None, user_id: UserId = None,
                   agent_id: AgentId = None, run_id: RunId = None) -> dict[str, Any]:
        """Store one memory verbatim, without the memory manager. Returns it with its new id."""
        def work():
            name = state.bank(bank, ids(user_id, agent_id, run_id))
            return api.add(text, bank=name, metadata=metadata, infer=False, timestamp=at)["results"][0]
        return state.run(work)

    @mcp.tool(annotations=READ)
    def get_memory(memory_id: MemoryId, as_of: AsOf = None, bank: Bank = None, user_id: UserId = None,
                   agent_id: AgentId = None, run_id: RunId = None) -> dict[str, Any]:
        """One memory as it is now (or at `as_of`), with its metadata."""
        def work():
            name = state.bank(bank, ids(user_id, agent_id, run_id))
            got = api.get(memory_id, as_of=as_of, bank=name)
            if got is None:
                raise NotFound(f"no memory {memory_id!r} alive in bank {name!r}" + (f" at {as_of}" if as_of else ""))
            return got
        return state.run(work)

    @mcp.tool(annotations=READ)
    def list_memories(as_of: AsOf = None, filters: Filters = None,
                      limit: Annotated[int, Field(ge=1, le=500, description="Memories per page.")] = 50,
                      offset: Annotated[int, Field(ge=0, description="Memories to skip (paging).")] = 0,
                      bank: Bank = None, user_id: UserId = None, agent_id: AgentId = None,
                      run_id: RunId = None) -> dict[str, Any]:
        """The memories alive at `as_of` (default now), oldest first, a page at a time."""
        def work():
            name = state.bank(bank, ids(user_id, agent_id, run_id))
            every = api.get_all(bank=name, filters=filters, as_of=as_of, top_k=2**31)["results"]
            page = every[offset:offset + limit]
            more = offset + len(page) < len(every)
            return {"memories": page, "total": len(every), "next_offset": offset + len(page) if more else None}
        return state.run(work)

    @mcp.tool(annotations=READ)
    def search_memories(query: Annotated[str, Field(description="What to look for, in words.")],
                        k: Annotated[int, Field(ge=1, le=200, description="How many memories at most.")] = 10,
                        threshold: Annotated[float, Field(ge=0, le=1, description="Least similarity (cosine) "
                                                          "a memory needs to be returned (mem0's default).")] = 0.1,
                        filters: Filters = None, as_of: AsOf = None, bank: Bank = None, user_id: UserId = None,
                        agent_id: AgentId = None, run_id: RunId = None) -> dict[str, Any]:
        """The memories most similar to the query among those alive at `as_of`, best first, with
        their similarity score; those below `threshold` are left out."""
        def work():
            name = state.bank(bank, ids(user_id, agent_id, run_id))
            return {"memories": api.search(query, bank=name, filters=filters, top_k=k, threshold=threshold,
                                           as_of=as_of)["results"]}
        return state.run(work)

    @mcp.tool(annotations=READ)
    def ask(question: Annotated[str, Field(description="A question to answer from memory.")],
            as_of: AsOf = None, bank: Bank = None, user_id: UserId = None, agent_id: AgentId = None,
            run_id: RunId = None) -> dict[str, Any]:
        """Answer a question from memory: the 10 memories alive at `as_of` closest to it are retrieved, the
        relevant ones kept, and a short answer written. Returns the answer and the memories used."""
        def work():
            if not question.strip():
                raise BadInput("ask needs a question")
            return state.agent(bank, ids(user_id, agent_id, run_id)).ask(question, as_of=as_of).to_dict()
        return state.run(work)

    @mcp.tool(annotations=WRITE)
    def update_memory(memory_id: MemoryId, text: Annotated[str, Field(description="The memory's new text.")],
                      at: At = None, reason: Reason = None, bank: Bank = None, user_id: UserId = None,
                      agent_id: AgentId = None, run_id: RunId = None) -> dict[str, Any]:
        """Replace a memory's text with a new version; the old version stays in its history."""
        return state.run(lambda: _event(state.store(bank, ids(user_id, agent_id, run_id))
                                        .update(memory_id, text, at=at, reason=reason)))

    @mcp.tool(annotations=WRITE)
    def delete_memory(memory_id: MemoryId, at: At = None, reason: Reason = None, bank: Bank = None,
                      user_id: UserId = None, agent_id: AgentId = None, run_id: RunId = None) -> dict[str, Any]:
        """End a memory. It is an event: `restore_memory` brings the memory back."""
        return state.run(lambda: _event(state.store(bank, ids(user_id, agent_id, run_id))
                                        .delete(memory_id, at=at, reason=reason)))

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
    def delete_all_memories(reason: Reason = None, bank: Bank = None, user_id: UserId = None,
                            agent_id: AgentId = None, run_id: RunId = None) -> dict[str, Any]:
        """End every live memory of the bank or scope, in one transaction. Each one can still be
        brought back with `restore_memory`, and `as_of` still reads the past."""
        def work():
            name = state.bank(bank, ids(user_id, agent_id, run_id))
            return {"deleted": api.delete_all(bank=name, reason=reason)["deleted"], "bank": name}
        return state.run(work)

    @mcp.tool(annotations=READ)
    def memory_history(memory_id: MemoryId, bank: Bank = None, user_id: UserId = None, agent_id: AgentId = None,
                       run_id: RunId = None) -> dict[str, Any]:
        """Every event of a memory in order: its versions, deletion and restores, and decisions
        that were refused, each with when, who and why."""
        return state.run(lambda: {"events": [_event(e) for e in state.store(bank, ids(user_id, agent_id, run_id))
                                             .history(memory_id)]})

    @mcp.tool(annotations=READ)
    def why_memory(memory_id: MemoryId, bank: Bank = None, user_id: UserId = None, agent_id: AgentId = None,
                   run_id: RunId = None) -> dict[str, Any]:
        """Why a memory is in its state: the event that put it there, its reason and actor, the
        chain of causes, and the messages it came from."""
        return state.run(lambda: state.store(bank, ids(user_id, agent_id, run_id)).why(memory_id))

    @mcp.tool(annotations=WRITE)
    def restore_memory(memory_id: MemoryId, reason: Reason = None, bank: Bank = None, user_id: UserId = None,
                       agent_id: AgentId = None, run_id: RunId = None) -> dict[str, Any]:
        """Bring a deleted memory back (a RESTORE event pointing at the deletion)."""
        return state.run(lambda: _event(state.store(bank, ids(user_id, agent_id, run_id))
                                        .restore(memory_id, reason=reason)))

    if allow_erase:
        @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
        def erase_memory(memory_id: MemoryId,
                         reason: Annotated[str, Field(description="Why the text must be erased (kept in the log).")],
                         with_sources: Annotated[bool, Field(description="Also purge the messages it came from "
                                                             "(a memory added verbatim was recorded as its own "
                                                             "message).")] = True,
                         bank: Bank = None, user_id: UserId = None, agent_id: AgentId = None,
                         run_id: RunId = None) -> dict[str, Any]:
            """Privacy erasure, not undoable: purge a memory's text from the log, every version and
            (with_sources) the messages it came from, leaving a tombstone saying who and why."""
            return state.run(lambda: _event(state.store(bank, ids(user_id, agent_id, run_id))
                                            .erase(memory_id, reason=reason, with_sources=with_sources)))

    @mcp.resource("memstore://banks", name="banks", description="The banks of this memory file.",
                  mime_type="application/json")
    def banks() -> str:
        return state.run(lambda: json.dumps(state.store(None, {}).banks()))

    @mcp.resource("memstore://banks/{bank}/memories", name="bank-memories",
                  description="Every memory alive now in a bank, oldest first.", mime_type="application/json")
    def bank_memories(bank: str) -> str:
        return state.run(lambda: json.dumps(api.get_all(bank=check_bank(bank), top_k=2**31)["results"]))

    @mcp.resource("memstore://banks/{bank}/memories/as-of/{as_of}", name="bank-memories-as-of",
                  description="The memories alive in a bank at a time (ISO date or datetime, or '@SEQ'), "
                              "as `memstore replay --as-of` shows them.", mime_type="application/json")
    def bank_memories_as_of(bank: str, as_of: str) -> str:
        return state.run(lambda: json.dumps(api.get_all(bank=check_bank(bank), top_k=2**31, as_of=as_of)["results"]))

    @mcp.prompt(name="answer_from_memory", description="Answer a question from a scope's memories, "
                                                      "saying which memories the answer rests on.")
    def answer_from_memory(question: str, user_id: str = "") -> str:
        scope = f'user_id="{user_id}"' if user_id else "the default bank"
        return (f"Answer this question from long-term memory: {question}\n"
                f"First call search_memories with the question and {scope} (or ask, which retrieves and "
                "answers in one step). Use only memories that bear on the question; name their ids. If none "
                "does, say that memory holds no answer rather than guessing.")

    @mcp.prompt(name="audit_memory", description="Explain where a memory came from and how it changed.")
    def audit_memory(memory_id: str, bank: str = "") -> str:
        where = f' in bank "{bank}"' if bank else ""
        return (f"Explain memory {memory_id}{where}: call why_memory for its current state and the messages it "
                "came from, and memory_history for every version, deletion and restore, then summarise who "
                "changed it, when and why. Do not modify it.")

    return mcp
