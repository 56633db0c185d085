"""The `memstore` command: typer + rich, a thin layer over `memstore.MemoryStore`.

Global options go before the subcommand: `memstore --db agent.db --bank alice replay`."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import List, Optional

import typer

from memstore import MemoryStore
from memstore.clock import parse_cutoff
from memstore.errors import BadInput, MemstoreError

from typer import Abort
try:  # typer >= 0.2x carries its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import NoArgsIsHelpError, UsageError

from .render import console, emit_json, progress_bar, short_time, table

app = typer.Typer(help="Event-sourced memory store for LLM agents.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)

_display_type = typer.core.TyperOption.display_type_rich


def _flag_display_type(self, ctx):
    """A flag takes no value, so help shows none (typer prints `--json <bool>`, `--help <bool>`)."""
    return None if self.is_flag and self.metavar is None else _display_type(self, ctx)


typer.core.TyperOption.display_type_rich = _flag_display_type


class State:
    db: Path = Path("memstore.db")
    bank: str = "default"
    timeout: float = 10.0


def open_store(create: bool = False) -> MemoryStore:
    return MemoryStore(State.db, State.bank, create=create, timeout=State.timeout)


def note_unknown_bank(store: MemoryStore) -> None:
    """A read of a bank that holds nothing says so on stderr (a misspelled --bank would otherwise
    look like an empty one); stdout stays what the command prints."""
    banks = store.banks()
    if store.bank not in banks:
        print(f"memstore: note: bank {store.bank!r} has no events or inputs in {store.path} "
              f"(banks: {', '.join(banks) or 'none yet'})", file=sys.stderr)


JsonOpt = typer.Option(False, "--json", help="Print only JSON on stdout.")
AtOpt = typer.Option(None, "--at", help="When the fact was observed (ISO date/datetime); default now.")
ReasonOpt = typer.Option(None, "--reason", help="Why (kept in the log).")
PolicyOpt = typer.Option("llm", "--policy", help="append | heuristic | llm | learned")
ModelOpt = typer.Option(None, "--model", help="qwen (default) | smollm2 | gemma3-270m | PATH.gguf | endpoint model name")
AdapterOpt = typer.Option(None, "--adapter", help="Manager LoRA adapter in GGUF for --policy learned (default: the shipped one)")
AnswerAdapterOpt = typer.Option(None, "--answer-adapter", help="Answer Agent LoRA adapter in GGUF for --policy learned (default: the shipped one)")
EndpointOpt = typer.Option(None, "--endpoint", help="OpenAI-compatible URL instead of a local model")


@app.callback()
def main(db: Path = typer.Option(Path("memstore.db"), "--db", envvar="MEMSTORE_DB", help="SQLite file."),
         bank: str = typer.Option("default", "--bank", envvar="MEMSTORE_BANK", help="Bank (tenant) name."),
         timeout: float = typer.Option(10.0, "--timeout", envvar="MEMSTORE_TIMEOUT",
                                       help="Seconds to wait for another writer's lock.")) -> None:
    State.db, State.bank, State.timeout = db, bank, timeout


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
        emit_json({"db": str(store.path), "bank": store.bank, "ok": True})
    else:
        console.print(f"memstore database ready at {store.path} (bank {store.bank!r})")


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


_GLOBAL = ("--db", "--bank", "--timeout")


def _fail(message: str, code: int) -> None:
    print(f"memstore: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(code)


def run() -> None:
    """Entry point: every user error is one line on stderr and exit 1 (2 for a malformed command
    line), never a traceback."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(2)
    except UsageError as exc:  # unknown command/option, missing or malformed value
        message = exc.format_message()
        stray = next((o for o in _GLOBAL if f"No such option: {o}" in message), None)
        if stray:  # `memstore replay --db F`: say where the global options go
            command = exc.ctx.info_name if exc.ctx is not None else "COMMAND"
            message += f" ({stray} is a global option: put it before the command, e.g. memstore {stray} ... {command})"
        _fail(message, 2)
    except Abort:
        print("memstore: interrupted", file=sys.stderr)
        sys.exit(130)
    except MemstoreError as exc:
        _fail(str(exc), exc.exit_code)
    except sqlite3.Error as exc:
        _fail(f"database refused the operation: {exc}", 1)
    except UnicodeError:
        _fail("input is not valid UTF-8 text", 1)
    except OverflowError as exc:
        _fail(f"a number is out of range ({exc})", 1)
    except KeyboardInterrupt:
        print("memstore: interrupted", file=sys.stderr)
        sys.exit(130)
    if code == 130:
        print("memstore: interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


from . import agent_cmds, audit_cmds, bench_cmds, mcp_cmds, train_cmds  # noqa: E402,F401  (register ingest, ask, demo, audit tools, bench, mcp, train, export)

if __name__ == "__main__":
    run()
