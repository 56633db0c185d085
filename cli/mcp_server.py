"""`memstore mcp`: a Model Context Protocol server over stdio for one database file, built with
the official `mcp` SDK.

Every tool takes the bank to work in (`bank`, or a mem0-style `user_id`, mapped to a bank by
`memstore.compat.scope_bank`; neither means the server's default bank) and never reads or writes
another. A user error (unknown id, bad time, a deleted memory...) comes back as an MCP tool error
with the store's one-line message; the server keeps serving. The local model loads once, on the
first tool that needs it (`observe`, `ask`). Calls are served one at a time: the SDK runs sync
tools on worker threads, and a store connection is not for two threads at once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Annotated, Any, Callable

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from memstore import MemoryStore
from memstore.compat import scope_bank
from memstore.errors import BadInput, MemstoreError
from memstore.store import check_bank

INSTRUCTIONS = """Long-term memory backed by an append-only, hash-chained event log. Nothing is
lost: updates and deletions are events, `history` shows every version, `why` explains a memory and
`restore` undoes a deletion. `as_of` reads memory as it was at a time. Pass `observe` each message
worth remembering; call `search_memories` or `ask` before answering from memory."""

Bank = Annotated[str | None, Field(description="Memory bank to use (letters, digits, '_', '.', ':', '-'); "
                                               "default: the server's bank. Do not combine with user_id.")]
UserId = Annotated[str | None, Field(description="mem0-style user id; selects that user's bank instead of `bank`.")]
MemoryId = Annotated[str, Field(description="Memory id as returned by other tools, e.g. 'm1a2b3c4d5e'.")]
AsOf = Annotated[str | None, Field(description="Read memory as it was at this time (ISO date or datetime, e.g. "
                                               "'2023-06-01' or '2023-06-01T12:00') or log position ('@42'); default now.")]
At = Annotated[str | None, Field(description="When this was observed (ISO date or datetime); default now.")]
Reason = Annotated[str | None, Field(description="Why, in a few words (kept in the log).")]

READ = ToolAnnotations(read_only_hint=True)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False)


def _event(e) -> dict[str, Any]:
    """The fields of an event a client needs, without the chain's hashes."""
    return {"seq": e.seq, "op": e.op, "outcome": e.outcome, "memory_id": e.memory_id, "text": e.text,
            "prev_text": e.prev_text, "valid_at": e.valid_at, "actor": e.actor, "reason": e.reason,
            "erased": e.erased}


class MemoryServer:
    """The state behind the tools: one store per bank, one model, one lock."""

    def __init__(self, db: Path, bank: str, *, policy: str = "llm", model: str | None = None,
                 endpoint: str | None = None):
        self.db, self.default_bank = db, check_bank(bank)
        self.policy, self.model, self.endpoint = policy, model, endpoint
        self.lock = threading.Lock()
        self.stores: dict[str, MemoryStore] = {}
        self.agents: dict[str, Any] = {}
        self.llm = None
        self.store(None, None).close()  # a missing, foreign or corrupt file fails here, before serving
        self.stores.clear()

    def bank(self, bank: str | None, user_id: str | None) -> str:
        if bank is not None and user_id is not None:
            raise BadInput("pass bank or user_id, not both")
        return scope_bank(user_id=user_id) if user_id is not None else check_bank(bank or self.default_bank)

    def store(self, bank: str | None, user_id: str | None) -> MemoryStore:
        name = self.bank(bank, user_id)
        if name not in self.stores:
            self.stores[name] = MemoryStore(self.db, name)
        return self.stores[name]

    def agent(self, bank: str | None, user_id: str | None):
        """The manager and answer agent of a bank, on the one model (loaded on first use)."""
        store = self.store(bank, user_id)
        if store.bank not in self.agents:
            from policy.agent import MemoryAgent
            from policy.runtime import load
            if self.llm is None:
                self.llm = load(self.model, endpoint=self.endpoint)
            self.agents[store.bank] = MemoryAgent(store=store, llm=self.llm, policy=self.policy)
        return self.agents[store.bank]

    def run(self, work: Callable[[], Any]) -> Any:
        """One tool call: serialised, and every user error turned into a one-line tool error."""
        with self.lock:
            try:
                return work()
            except MemstoreError as exc:
                raise ToolError(" ".join(str(exc).split())) from None
            except sqlite3.Error as exc:
                raise ToolError(f"database refused the operation: {exc}") from None
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


def build_server(db: Path, bank: str = "default", *, allow_erase: bool = False, policy: str = "llm",
                 model: str | None = None, endpoint: str | None = None) -> MCPServer:
    state = MemoryServer(db, bank, policy=policy, model=model, endpoint=endpoint)
    mcp = StrictServer("memstore", instructions=INSTRUCTIONS, log_level="WARNING")

    @mcp.tool(annotations=WRITE)
    def observe(message: Annotated[str, Field(description="One message of the conversation, verbatim.")],
                speaker: Annotated[str, Field(description="Who said it (a name), so memories say who they are about.")] = "user",
                time: At = None, bank: Bank = None, user_id: UserId = None) -> dict[str, Any]:
        """Remember what a message says: the memory manager extracts its facts and, for each,
        adds a memory, updates or deletes an existing one, or does nothing. Returns the events."""
        return state.run(lambda: {"events": [_event(e) for e in
                                             state.agent(bank, user_id).observe(speaker, message, time)]})

    @mcp.tool(annotations=WRITE)
    def add_memory(text: Annotated[str, Field(description="The fact to remember, self-contained (name who it is about).")],
                   at: At = None, reason: Reason = None, bank: Bank = None, user_id: UserId = None) -> dict[str, Any]:
        """Store one memory verbatim, without the memory manager. Returns the ADD event with the new id."""
        return state.run(lambda: _event(state.store(bank, user_id).add(text, at=at, reason=reason)))

    @mcp.tool(annotations=WRITE)
    def update_memory(memory_id: MemoryId, text: Annotated[str, Field(description="The memory's new text.")],
                      at: At = None, reason: Reason = None, bank: Bank = None, user_id: UserId = None) -> dict[str, Any]:
        """Replace a memory's text with a new version; the old version stays in its history."""
        return state.run(lambda: _event(state.store(bank, user_id).update(memory_id, text, at=at, reason=reason)))

    @mcp.tool(annotations=WRITE)
    def delete_memory(memory_id: MemoryId, at: At = None, reason: Reason = None, bank: Bank = None,
                      user_id: UserId = None) -> dict[str, Any]:
        """End a memory. It is an event: `restore` brings the memory back."""
        return state.run(lambda: _event(state.store(bank, user_id).delete(memory_id, at=at, reason=reason)))

    @mcp.tool(annotations=READ)
    def search_memories(query: Annotated[str, Field(description="What to look for, in words.")],
                        k: Annotated[int, Field(ge=1, le=200, description="How many memories at most.")] = 10,
                        as_of: AsOf = None, bank: Bank = None, user_id: UserId = None) -> dict[str, Any]:
        """The memories most similar to the query among those alive at `as_of`, best first, with
        their similarity score and the time each was observed."""
        return state.run(lambda: {"memories": [h.to_dict() for h in
                                               state.store(bank, user_id).search(query, k=k, as_of=as_of)]})

    @mcp.tool(annotations=READ)
    def ask(question: Annotated[str, Field(description="A question to answer from memory.")],
            as_of: AsOf = None, bank: Bank = None, user_id: UserId = None) -> dict[str, Any]:
        """Answer a question from memory: the 10 memories alive at `as_of` closest to it are retrieved, the
        relevant ones kept, and a short answer written. Returns the answer and the memories used."""
        def work():
            if not question.strip():
                raise BadInput("ask needs a question")
            return state.agent(bank, user_id).ask(question, as_of=as_of).to_dict()
        return state.run(work)

    @mcp.tool(annotations=READ)
    def replay(as_of: AsOf = None, bank: Bank = None, user_id: UserId = None) -> dict[str, Any]:
        """Every memory alive at `as_of` (default now), oldest first."""
        return state.run(lambda: {"memories": [m.to_dict() for m in state.store(bank, user_id).replay(as_of)]})

    @mcp.tool(annotations=READ)
    def history(memory_id: MemoryId, bank: Bank = None, user_id: UserId = None) -> dict[str, Any]:
        """Every event of a memory in order: its versions, deletion and restores, and decisions
        that were refused, each with when, who and why."""
        return state.run(lambda: {"events": [_event(e) for e in state.store(bank, user_id).history(memory_id)]})

    @mcp.tool(annotations=READ)
    def why(memory_id: MemoryId, bank: Bank = None, user_id: UserId = None) -> dict[str, Any]:
        """Why a memory is in its state: the event that put it there, its reason and actor, the
        chain of causes, and the messages it came from."""
        return state.run(lambda: state.store(bank, user_id).why(memory_id))

    @mcp.tool(annotations=WRITE)
    def restore(memory_id: MemoryId, reason: Reason = None, bank: Bank = None, user_id: UserId = None) -> dict[str, Any]:
        """Bring a deleted memory back (a RESTORE event pointing at the deletion)."""
        return state.run(lambda: _event(state.store(bank, user_id).restore(memory_id, reason=reason)))

    if allow_erase:
        @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
        def erase(memory_id: MemoryId,
                  reason: Annotated[str, Field(description="Why the text must be erased (kept in the log).")],
                  with_sources: Annotated[bool, Field(description="Also purge the messages it came from.")] = False,
                  bank: Bank = None, user_id: UserId = None) -> dict[str, Any]:
            """Privacy erasure, not undoable: purge a memory's text from the log, every version and
            (with_sources) the messages it came from, leaving a tombstone saying who and why."""
            return state.run(lambda: _event(state.store(bank, user_id).erase(memory_id, reason=reason,
                                                                              with_sources=with_sources)))

    return mcp
