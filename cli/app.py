"""The `memstore` app and what its command modules share: the global options (`--db`, `--bank`,
`--timeout`, which go before the subcommand), the options several commands take, and opening
the store."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from memstore import MemoryStore
from memstore.engines import target

# plain click help: rich markup would eat bracketed words ("the [browse] extra") and print flags
# as taking a value ("--json <bool>")
app = typer.Typer(help="Event-sourced memory store for LLM agents.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)

class State:
    db: str | Path = Path("memstore.db")
    bank: str = "default"
    timeout: float = 10.0


def open_store(create: bool = False) -> MemoryStore:
    return MemoryStore(State.db, State.bank, create=create, timeout=State.timeout)


def note_unknown_bank(store: MemoryStore) -> None:
    """A read of a bank that holds nothing says so on stderr (a misspelled --bank would otherwise
    look like an empty one); stdout stays what the command prints."""
    banks = store.banks()
    if store.bank not in banks:
        print(f"memstore: note: bank {store.bank!r} has no events or inputs in {store.engine.label} "
              f"(banks: {', '.join(banks) or 'none yet'})", file=sys.stderr)


JsonOpt = typer.Option(False, "--json", help="Print only JSON on stdout.")
AtOpt = typer.Option(None, "--at", help="When the fact was observed (ISO date/datetime); default now.")
ReasonOpt = typer.Option(None, "--reason", help="Why (kept in the log).")
PolicyOpt = typer.Option(None, "--policy", help="append | heuristic | stack | llm | learned (default: learned on the "
                          "default local model, whose trained adapters it serves; llm with another model or --endpoint)")
ModelOpt = typer.Option(None, "--model", help="qwen (default) | smollm2 | gemma3-270m | PATH.gguf | endpoint model name")
AdapterOpt = typer.Option(None, "--adapter", help="Manager LoRA adapter in GGUF for --policy learned (default: the shipped one)")
AnswerAdapterOpt = typer.Option(None, "--answer-adapter", help="Answer Agent LoRA adapter in GGUF for --policy learned (default: the shipped one)")
EndpointOpt = typer.Option(None, "--endpoint", help="OpenAI-compatible URL instead of a local model")


@app.callback()
def main(db: str = typer.Option("memstore.db", "--db", envvar="MEMSTORE_DB",
                                help="SQLite file, or a PostgreSQL URL (postgresql://user@host/db)."),
         bank: str = typer.Option("default", "--bank", envvar="MEMSTORE_BANK", help="Bank (tenant) name."),
         timeout: float = typer.Option(10.0, "--timeout", envvar="MEMSTORE_TIMEOUT",
                                       help="Seconds to wait for another writer's lock.")) -> None:
    State.db, State.bank, State.timeout = target(db), bank, timeout
