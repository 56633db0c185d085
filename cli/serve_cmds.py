"""`memstore serve` (the store over HTTP) and `memstore token` (its bearer tokens)."""

from __future__ import annotations

from typing import List, Optional

import typer

from memstore import tokens

from .app import EndpointOpt, JsonOpt, ModelOpt, PolicyOpt, State, app, open_store
from .render import console, emit_json, table

token_app = typer.Typer(help="Bearer tokens of `memstore serve`: issue, list, revoke.", no_args_is_help=True,
                        rich_markup_mode=None)
app.add_typer(token_app, name="token")


@app.command()
def serve(host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
          port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
          policy: Optional[str] = PolicyOpt, model: Optional[str] = ModelOpt, endpoint: Optional[str] = EndpointOpt) -> None:
    """Serve the store over HTTP (OpenAPI page at /docs): the MCP server's operations plus as_of,
    why, restore, verify and head, behind bearer tokens scoped to banks and rights."""
    import logging

    import uvicorn

    from integrations.http import build_app

    logging.basicConfig(format="%(asctime)s memstore serve: %(message)s", level=logging.INFO)
    api = build_app(State.db, policy=policy, model=model, endpoint=endpoint, timeout=State.timeout)
    uvicorn.run(api, host=host, port=port, log_level="warning")


@token_app.command("issue")
def token_issue(bank: List[str] = typer.Option(..., "--bank", help="A bank the token may use; '*' for all. Repeat."),
                right: List[str] = typer.Option(["read"], "--right", help="read | write | erase. Repeat."),
                note: Optional[str] = typer.Option(None, "--note", help="Who or what the token is for."),
                as_json: bool = JsonOpt) -> None:
    """Issue a token; the secret is printed once and kept only as its sha256."""
    token, secret = tokens.issue(open_store(create=True), bank, right, note)
    if as_json:
        emit_json({**token.to_dict(), "token": secret})
    else:
        console.print(f"token {token.id} for {', '.join(token.banks)} ({', '.join(token.rights)}):\n{secret}\n"
                      "(shown once: keep it now)", markup=False)


@token_app.command("list")
def token_list(as_json: bool = JsonOpt) -> None:
    """Every token issued: id, banks, rights, note, when issued and revoked (never the secret)."""
    rows = tokens.listed(open_store())
    if as_json:
        emit_json([t.to_dict() for t in rows])
    else:
        table("tokens", ["id", "banks", "rights", "note", "issued", "revoked"],
              [(t.id, ",".join(t.banks), ",".join(t.rights), t.note or "", t.created_at, t.revoked_at or "")
               for t in rows])


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(..., help="The token's id (memstore token list)."),
                 as_json: bool = JsonOpt) -> None:
    """Revoke a token: every `serve` process over the database refuses it from its next request."""
    token = tokens.revoke(open_store(), token_id)
    if as_json:
        emit_json(token.to_dict())
    else:
        console.print(f"token {token.id} revoked at {token.revoked_at}")
