"""The store's own commands: add, update, delete, restore, erase, replay, history, why, verify,
head, repair, migrate, stats, export, search, reindex. Each opens the store, calls one method, prints."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from memstore.clock import parse_cutoff
from memstore.errors import BadInput

from .app import AtOpt, JsonOpt, ReasonOpt, State, app, note_unknown_bank, open_store
from .render import console, emit_json, progress_bar, short_time, table


def _event_out(event, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json(event.to_dict())
    else:
        extra = f" [{event.outcome}]" if event.outcome != "applied" else ""
        console.print(f"{verb} [bold]{event.memory_id}[/] at seq {event.seq}{extra}")


@app.command()
def init(as_json: bool = JsonOpt) -> None:
    """Create the database (idempotent)."""
    store = open_store(create=True)
    if as_json:
        emit_json({"db": store.engine.label, "bank": store.bank, "ok": True})
    else:
        console.print(f"memstore database ready at {store.engine.label} (bank {store.bank!r})")


@app.command()
def add(text: str, at: Optional[str] = AtOpt, reason: Optional[str] = ReasonOpt, as_json: bool = JsonOpt) -> None:
    """Add a memory."""
    _event_out(open_store().add(text, at=at, reason=reason), as_json, "added")


@app.command()
def update(memory_id: str, text: str, at: Optional[str] = AtOpt, reason: Optional[str] = ReasonOpt,
           as_json: bool = JsonOpt) -> None:
    """Replace a memory's text with a new version."""
    _event_out(open_store().update(memory_id, text, at=at, reason=reason), as_json, "updated")


@app.command()
def delete(memory_id: str, at: Optional[str] = AtOpt, reason: Optional[str] = ReasonOpt,
           as_json: bool = JsonOpt) -> None:
    """Delete a memory (an event; `restore` undoes it)."""
    _event_out(open_store().delete(memory_id, at=at, reason=reason), as_json, "deleted")


@app.command()
def restore(memory_id: str, at: Optional[str] = AtOpt, reason: Optional[str] = ReasonOpt,
            as_json: bool = JsonOpt) -> None:
    """Bring a deleted memory back with a compensating event."""
    _event_out(open_store().restore(memory_id, at=at, reason=reason), as_json, "restored")


@app.command()
def erase(memory_id: str, reason: str = typer.Option(..., "--reason", help="Why (required; kept)."),
          with_sources: bool = typer.Option(False, "--with-sources", help="Also purge the source turns."),
          as_json: bool = JsonOpt) -> None:
    """Privacy erasure: purge a memory's text from the log, keeping a tombstone."""
    _event_out(open_store().erase(memory_id, reason=reason, with_sources=with_sources), as_json, "erased")


@app.command()
def replay(as_of: Optional[str] = typer.Option(None, "--as-of", help="ISO date/datetime, or @SEQ."),
           as_json: bool = JsonOpt) -> None:
    """The bank as it was at a time or log position (default: now)."""
    store = open_store()
    note_unknown_bank(store)
    memories = store.replay(as_of)
    if as_json:
        emit_json([m.to_dict() for m in memories])
        return
    table(f"bank {State.bank!r} as of {as_of or 'now'}: {len(memories)} memories", ["id", "text", "valid_at", "seq"],
          [(m.id, m.text, short_time(m.valid_at), m.seq) for m in memories])


@app.command()
def history(memory_id: str, as_json: bool = JsonOpt) -> None:
    """Every version of a memory, with who, when and why."""
    events = open_store().history(memory_id)
    if as_json:
        emit_json([e.to_dict() for e in events])
        return
    table(f"history of {memory_id}", ["seq", "op", "text", "valid_at", "actor", "reason"],
          [(e.seq, e.op + ("" if e.outcome == "applied" else " (refused)"),
            "[erased]" if e.erased else (e.text if e.text is not None else e.prev_text and f"(was) {e.prev_text}"),
            short_time(e.valid_at), e.actor, e.reason) for e in events])


@app.command()
def why(memory_id: str, as_json: bool = JsonOpt) -> None:
    """Why a memory is in its current state: the event, its reason, actor, cause and source turns."""
    out = open_store().why(memory_id)
    if as_json:
        emit_json(out)
        return
    console.print(f"[bold]{memory_id}[/] is {out['status']}: {out['summary']}")
    for depth, step in enumerate(out["chain"]):
        e = step["event"]
        pad = "  " * depth
        label = "because of" if depth else "event"
        text = e["text"] if e["text"] is not None else e["prev_text"]
        console.print(f"{pad}{label} seq {e['seq']} {e['op']} {text!r} by {e['actor']} ({e['reason'] or 'no reason'})")
        if e.get("cause"):
            console.print(f"{pad}  cause: {e['cause']}")
        for src in step["sources"]:
            console.print(f"{pad}  source {src['input_id']} [{short_time(src['time'])}] {src['speaker']}: {src['text']}")


@app.command()
def verify(all_banks: bool = typer.Option(False, "--all-banks", help="Check every bank of the file."),
           deep: bool = typer.Option(False, "--deep", help="Also check the R*Tree of the projection."),
           anchor: Optional[List[str]] = typer.Option(None, "--anchor", help="SEQ:HASH from `memstore head`, kept "
                                                      "elsewhere: proves nothing up to it was cut or rewritten."),
           as_json: bool = JsonOpt) -> None:
    """Check the hash chain (an HMAC chain with MEMSTORE_KEY), the inputs, and that the projection
    equals the fold of the log; exits 1 and names the first broken seq."""
    out = open_store().verify(all_banks=all_banks, deep=deep, anchors=anchor or ())
    if as_json:
        emit_json(out)
    elif out["ok"]:
        console.print(f"ok: {out['checked']} events and {out['inputs_checked']} inputs verified"
                      + (", HMAC chain" if out["keyed"] else "") + (", R*Tree checked" if deep else "")
                      + (f", {out['anchors']} anchor(s) hold" if out["anchors"] else ""))
    else:
        console.print(f"[red]BROKEN[/] in bank {out['bank']!r} at seq {out['first_broken_seq']}: {out['problem']}")
    if not out["ok"]:
        raise typer.Exit(1)


@app.command()
def head(as_json: bool = JsonOpt) -> None:
    """The bank's newest event as SEQ:HASH: keep it elsewhere, then `verify --anchor SEQ:HASH`."""
    out = open_store().head()
    if as_json:
        emit_json(out)
    else:
        console.print(out["anchor"], soft_wrap=True)


@app.command()
def repair(as_json: bool = JsonOpt) -> None:
    """Rebuild the derived tables (the projection and its R*Tree) of every bank from the log, and
    drop the saved vector indexes (rebuilt on the next search)."""
    out = open_store().repair()
    if as_json:
        emit_json({"versions": out})
    else:
        console.print(f"rebuilt the projection of {len(out)} bank(s) from the log: "
                      f"{sum(out.values())} memory versions")


@app.command()
def migrate(source: str = typer.Argument(..., help="SQLite file or PostgreSQL URL to copy from."),
            target: str = typer.Argument(..., help="New, empty SQLite file or PostgreSQL database to copy into."),
            as_json: bool = JsonOpt) -> None:
    """Copy every bank into a new database, SQLite or PostgreSQL, chain and all; the copy's heads
    must equal the source's and it must verify."""
    from memstore.engines import target as db_target
    from memstore.migrate import migrate as copy

    out = copy(db_target(source), db_target(target), timeout=State.timeout)
    if as_json:
        emit_json(out)
    else:
        console.print(f"copied {len(out['banks'])} bank(s), {out['events']} events and {out['inputs']} inputs "
                      f"into {out['target']}; heads equal, verified: {out['verified']}")


@app.command()
def stats(as_json: bool = JsonOpt) -> None:
    """Counts per op and actor (DuckDB over the same file)."""
    out = open_store().stats()
    if as_json:
        emit_json(out)
        return
    table(f"bank {out['bank']!r}", ["what", "value"],
          [("events", out["events"]), ("live memories", out["live_memories"]), ("inputs", out["inputs"]),
           ("valid_at range", f"{short_time(out['first_valid_at'])} .. {short_time(out['last_valid_at'])}")]
          + [(f"op {k}", v) for k, v in out["by_op"].items()] + [(f"actor {k}", v) for k, v in out["by_actor"].items()])


@app.command()
def export(run_dir: Optional[Path] = typer.Argument(None, help="With --gguf: a `memstore train` run folder."),
           parquet: Optional[Path] = typer.Option(None, "--parquet", help="Folder for events/inputs/bank .parquet"),
           gguf: Optional[Path] = typer.Option(None, "--gguf", help="Convert RUN_DIR's LoRA adapter to this GGUF file."),
           outtype: str = typer.Option("f16", "--outtype", help="GGUF tensor type with --gguf: f32 | f16 | bf16 | q8_0"),
           as_json: bool = JsonOpt) -> None:
    """Export this bank to Parquet through DuckDB (--parquet DIR), or a trained adapter to GGUF
    for llama.cpp (RUN_DIR --gguf PATH)."""
    if (parquet is None) == (gguf is None):
        raise BadInput("export needs exactly one of --parquet DIR or RUN_DIR --gguf PATH")
    if gguf is not None:
        if run_dir is None:
            raise BadInput("export --gguf needs the training run folder: memstore export RUN_DIR --gguf PATH")
        from trainer.export import export as convert
        path = convert(run_dir, gguf, outtype)
        if as_json:
            emit_json({"gguf": str(path), "bytes": path.stat().st_size})
        else:
            console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return
    out = open_store().export_parquet(parquet)
    if as_json:
        emit_json(out)
    else:
        for name, info in out.items():
            console.print(f"{name}: {info['rows']} rows -> {info['path']}")


@app.command()
def search(query: str, as_of: Optional[str] = typer.Option(None, "--as-of", help="ISO date/datetime, or @SEQ."),
           k: int = typer.Option(10, "-k", "--k", min=1, max=1000, help="How many results."),
           as_json: bool = JsonOpt) -> None:
    """Memories most similar to QUERY among those alive at --as-of (default now)."""
    if not query.strip():
        raise BadInput("search needs a non-empty query")
    parse_cutoff(as_of)  # a bad --as-of fails before the embedding model loads
    store = open_store()
    note_unknown_bank(store)
    with progress_bar("embedding new memory versions", quiet=as_json) as tick:
        store.vector_view(progress=tick)
    hits = store.search(query, k=k, as_of=as_of)
    store.close()
    if as_json:
        emit_json([h.to_dict() for h in hits])
        return
    table(f"{query!r} in bank {State.bank!r} as of {as_of or 'now'}", ["score", "id", "text", "valid_at"],
          [(f"{h.score:.3f}", h.id, h.text, short_time(h.valid_at)) for h in hits])


@app.command()
def reindex(as_json: bool = JsonOpt) -> None:
    """Rebuild the bank's vector index from the log (embeddings come from the cache when known)."""
    store = open_store()
    with progress_bar("reindexing", quiet=as_json) as tick:
        count = store.reindex(progress=tick)
    store.close()
    if as_json:
        emit_json({"bank": State.bank, "versions": count})
    else:
        console.print(f"indexed {count} memory versions of bank {State.bank!r}")
