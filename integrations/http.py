"""`memstore serve`: the store over HTTP for services that are not Python, on either engine.

The operations of the MCP server (observe, add, get, list, search, ask, update, delete, history,
why, restore, erase) plus `as_of` on every read, `verify` and `head`. Every request carries a
bearer token (memstore/tokens.py) scoped to banks and rights; a missing, unknown or revoked token
is a 401, a bank or right the token lacks a 403, and every denial is logged. Request bodies are
bounded. Several `serve` processes over one PostgreSQL database are one store: each write locks
its bank in the database, and tokens live there too. OpenAPI page: /docs."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable, Optional

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from memstore import tokens
from memstore.errors import BadInput, InvalidOperation, MemstoreError, NotFound, StoreUnavailable

from .banks import Banks, event_fields as _event

log = logging.getLogger("memstore.serve")
MAX_BODY = 64 * 1024  # bytes; a turn or a fact is far smaller


class Text(BaseModel):
    text: str = Field(max_length=20_000)
    at: Optional[str] = None
    reason: Optional[str] = Field(None, max_length=2_000)


class Turn(BaseModel):
    message: str = Field(max_length=20_000)
    speaker: str = Field("user", max_length=200)
    time: Optional[str] = None


class Question(BaseModel):
    question: str = Field(max_length=2_000)
    as_of: Optional[str] = None


class Reason(BaseModel):
    reason: Optional[str] = Field(None, max_length=2_000)
    at: Optional[str] = None


class Erasure(BaseModel):
    reason: str = Field(max_length=2_000)
    with_sources: bool = False


class BodyLimit:
    """ASGI middleware: a body longer than `limit` bytes is refused with 413 before it is read whole."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _too_large(send, self.limit)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge()
            return message
        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    body = f'{{"detail":"request body over {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


_STATUS = ((NotFound, 404), (InvalidOperation, 409), (BadInput, 400), (StoreUnavailable, 503))


def build_app(db, *, policy: str | None = None, model: str | None = None, endpoint: str | None = None,
              timeout: float = 10.0) -> FastAPI:
    banks = Banks(db, policy=policy, model=model, endpoint=endpoint, timeout=timeout)
    control = banks.store("default")  # tokens and the database's own checks; opening writes nothing
    tokens.ensure(control.conn)
    lock = threading.Lock()  # one request at a time per process: stores and the model are not thread-safe

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        banks.close()

    app = FastAPI(title="memstore", description=__doc__, version="1", lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=MAX_BODY)

    @app.exception_handler(MemstoreError)
    async def memstore_error(request: Request, exc: MemstoreError):
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
        return JSONResponse({"detail": " ".join(str(exc).split())}, status_code=status)

    def grant(right: str) -> Callable:
        def check(request: Request, bank: str) -> str:
            header = request.headers.get("authorization", "")
            scheme, _, secret = header.partition(" ")
            where = f"{request.method} {request.url.path}"
            if scheme.lower() != "bearer" or not secret:
                log.warning("denied %s: no bearer token", where)
                raise HTTPException(401, "a bearer token is required (memstore token issue)",
                                    headers={"WWW-Authenticate": "Bearer"})
            with lock:
                token = tokens.lookup(control, secret.strip())
            if token is None:
                log.warning("denied %s: unknown token", where)
                raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
            if token.revoked_at is not None:
                log.warning("denied %s: token %s was revoked", where, token.id)
                raise HTTPException(401, f"token {token.id} was revoked", headers={"WWW-Authenticate": "Bearer"})
            if not token.allows(bank, right):
                log.warning("denied %s: token %s has no %s right on bank %s", where, token.id, right, bank)
                raise HTTPException(403, f"token {token.id} may not {right} bank {bank!r}")
            return bank
        return check

    def run(work: Callable[[], Any]) -> Any:
        with lock:
            return work()

    read, write, erase = grant("read"), grant("write"), grant("erase")
    B = "/banks/{bank}"

    @app.get(B + "/memories")
    def list_memories(as_of: Optional[str] = None, bank: str = Depends(read)):
        return run(lambda: {"memories": [m.to_dict() for m in banks.store(bank).replay(as_of)]})

    @app.post(B + "/memories", status_code=201)
    def add_memory(body: Text, bank: str = Depends(write)):
        return run(lambda: _event(banks.store(bank).add(body.text, at=body.at, reason=body.reason)))

    @app.get(B + "/memories/{memory_id}")
    def get_memory(memory_id: str, as_of: Optional[str] = None, bank: str = Depends(read)):
        found = run(lambda: banks.store(bank).get(memory_id, as_of=as_of))
        if found is None:
            raise NotFound(f"no memory {memory_id!r} alive in bank {bank!r}" + (f" as of {as_of}" if as_of else ""))
        return found.to_dict()

    @app.put(B + "/memories/{memory_id}")
    def update_memory(memory_id: str, body: Text, bank: str = Depends(write)):
        return run(lambda: _event(banks.store(bank).update(memory_id, body.text, at=body.at, reason=body.reason)))

    @app.delete(B + "/memories/{memory_id}")
    def delete_memory(memory_id: str, reason: Optional[str] = None, at: Optional[str] = None,
                      bank: str = Depends(write)):
        return run(lambda: _event(banks.store(bank).delete(memory_id, at=at, reason=reason)))

    @app.post(B + "/memories/{memory_id}/restore")
    def restore_memory(memory_id: str, body: Reason, bank: str = Depends(write)):
        return run(lambda: _event(banks.store(bank).restore(memory_id, at=body.at, reason=body.reason)))

    @app.post(B + "/memories/{memory_id}/erase")
    def erase_memory(memory_id: str, body: Erasure, bank: str = Depends(erase)):
        return run(lambda: _event(banks.store(bank).erase(memory_id, reason=body.reason,
                                                          with_sources=body.with_sources)))

    @app.get(B + "/memories/{memory_id}/history")
    def memory_history(memory_id: str, bank: str = Depends(read)):
        return run(lambda: {"events": [_event(e) for e in banks.store(bank).history(memory_id)]})

    @app.get(B + "/memories/{memory_id}/why")
    def why_memory(memory_id: str, bank: str = Depends(read)):
        return run(lambda: banks.store(bank).why(memory_id))

    @app.get(B + "/search")
    def search(q: str, k: int = 10, as_of: Optional[str] = None, bank: str = Depends(read)):
        return run(lambda: {"hits": [h.to_dict() for h in banks.store(bank).search(q, k=k, as_of=as_of)]})

    @app.post(B + "/observe")
    def observe(body: Turn, bank: str = Depends(write)):
        return run(lambda: {"events": [_event(e) for e in banks.agent(bank).observe(body.speaker, body.message,
                                                                                    body.time)]})

    @app.post(B + "/ask")
    def ask(body: Question, bank: str = Depends(read)):
        if not body.question.strip():
            raise BadInput("ask needs a question")
        return run(lambda: banks.agent(bank).ask(body.question, as_of=body.as_of).to_dict())

    @app.get(B + "/verify")
    def verify(deep: bool = False, anchor: Optional[str] = None, bank: str = Depends(read)):
        return run(lambda: banks.store(bank).verify(deep=deep, anchors=[anchor] if anchor else []))

    @app.get(B + "/head")
    def head(bank: str = Depends(read)):
        return run(lambda: banks.store(bank).head())

    return app
