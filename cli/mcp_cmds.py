"""`memstore mcp`: serve one database to MCP clients over stdio (see cli/mcp_server.py)."""

from __future__ import annotations

from typing import Optional

import typer

from memstore.engines import target

from .app import EndpointOpt, ModelOpt, PolicyOpt, State, app


@app.command("mcp")
def mcp_serve(db: Optional[str] = typer.Option(None, "--db", help="SQLite file or PostgreSQL URL (default: the global --db)."),
              bank: Optional[str] = typer.Option(None, "--bank", help="Default bank of the tools (default: the global --bank)."),
              allow_erase: bool = typer.Option(False, "--allow-erase", help="Offer the `erase_memory` tool (privacy erasure)."),
              policy: Optional[str] = PolicyOpt, model: Optional[str] = ModelOpt, endpoint: Optional[str] = EndpointOpt) -> None:
    """Serve the memory store to MCP clients over stdio (observe, add_memory, search_memories, ask,
    memory_history, why_memory, restore_memory, ...). The model loads on the first tool that needs it."""
    from integrations.mcp import build_server

    build_server(target(db) if db else State.db, bank or State.bank, allow_erase=allow_erase, policy=policy, model=model,
                 endpoint=endpoint).run("stdio")
