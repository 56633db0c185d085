"""Audit tools across banks and time: `counterfactual`, `diff`, `timeline`, `browse`."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from html import escape
from pathlib import Path
from urllib.parse import quote, urlencode
from typing import List, Optional

import typer

from memstore import MemoryStore
from memstore.errors import BadInput

from .app import AdapterOpt, EndpointOpt, JsonOpt, ModelOpt, State, app, open_store
from .render import console, emit_json, progress_bar, short_time, table


@app.command()
def counterfactual(from_bank: str = typer.Option(..., "--from", help="The bank whose recorded inputs are replayed."),
                   policy: str = typer.Option(..., "--policy", help="append | heuristic | llm | learned"),
                   into: str = typer.Option(..., "--into", help="A new bank of the same file (or its own, to resume)."),
                   until: Optional[str] = typer.Option(None, "--until", help="Replay only inputs said at or before this time."),
                   adapter: Optional[str] = AdapterOpt, model: Optional[str] = ModelOpt,
                   endpoint: Optional[str] = EndpointOpt, as_json: bool = JsonOpt) -> None:
    """What would another policy have remembered? Replays the inputs recorded in --from, in order,
    through --policy into --into (facts from the cache, so no extraction). Resumable."""
    from memstore.counterfactual import plan
    from policy.agent import make_policy
    from policy.runtime import load

    source = MemoryStore(State.db, from_bank, create=False, timeout=State.timeout)
    turns, _ = plan(source, into, until)  # refused inputs fail before the model loads
    manager = make_policy(policy, load(model, endpoint=endpoint), adapter)
    with progress_bar(f"counterfactual ({policy})", quiet=as_json) as tick:
        report = source.counterfactual(manager, into, until=until, progress=lambda n, total, _id: tick(n, total))
    source.close()
    out = {"from": from_bank, "into": into, "policy": policy, "actor": manager.actor, "turns": len(turns),
           "applied": report.applied, "skipped": report.skipped, "ops": report.ops,
           "extracted_fresh": manager.extracted_fresh, "seconds": round(report.seconds, 1)}
    if as_json:
        emit_json(out)
    else:
        console.print(f"replayed {report.applied} turns of {from_bank!r} into {into!r} ({report.skipped} already "
                      f"there), ops {report.ops}, {manager.extracted_fresh} fresh extractions, {report.seconds:.0f} s")


def _side(events: list[dict]) -> str:
    return "\n".join(f"{e['op']}{'' if e['outcome'] == 'applied' else ' (refused)'} {e['memory_id'] or ''} "
                     f"{e['text'] or ''!r} - {e['reason'] or ''}" for e in events) or "(no decision)"


@app.command()
def diff(bank_a: str = typer.Argument(..., help="First bank."), bank_b: str = typer.Argument(..., help="Second bank."),
         as_of: Optional[str] = typer.Option(None, "--as-of", help="Compare the banks as of this time or @SEQ."),
         as_json: bool = JsonOpt) -> None:
    """How two banks differ: memories only in A or only in B, and each recorded turn the two
    managers handled differently, both decisions side by side."""
    out = MemoryStore(State.db, bank_a, create=False, timeout=State.timeout).diff(bank_b, as_of=as_of)
    if as_json:
        emit_json(out)
        return
    if not out["related"]:
        console.print(f"[yellow]banks {bank_a!r} and {bank_b!r} share no recorded inputs[/]: only their memories "
                      f"are compared")
    kinds = list(out["kinds"].items())
    rest = kinds[8:]
    table(f"{bank_a!r} vs {bank_b!r} as of {out['as_of']}", ["what", "count"],
          list(out["counts"].items()) + [(f"  {k}", v) for k, v in kinds[:8]]
          + ([(f"  {len(rest)} other kinds", sum(v for _, v in rest))] if rest else []))
    for side, name in (("only_in_a", bank_a), ("only_in_b", bank_b)):
        if out[side]:
            table(f"only in {name!r}", ["id", "text", "valid_at"],
                  [(m["id"], m["text"], short_time(m["valid_at"])) for m in out[side]])
    if out["decisions"]:
        table("turns decided differently", ["turn", bank_a, bank_b],
              [(f"{d['input']['input_id']} [{short_time(d['input']['time'])}] {d['input']['speaker']}: "
                f"{d['input']['text']}", _side(d["a"]), _side(d["b"])) for d in out["decisions"]])


@app.command()
def timeline(out: Path = typer.Option(..., "--out", help="PNG file to write."),
             bank: Optional[str] = typer.Option(None, "--bank", help="Bank (default: the global --bank)."),
             memory: Optional[List[str]] = typer.Option(None, "--memory", help="Only this memory (repeatable)."),
             query: Optional[str] = typer.Option(None, "--query", help="Only memories similar to this text."),
             since: Optional[str] = typer.Option(None, "--since", help="Only memories alive after this time."),
             until: Optional[str] = typer.Option(None, "--until", help="Only memories alive before this time."),
             max_rows: int = typer.Option(300, "--max-rows", min=1, max=2000, help="Most rows drawn."),
             as_json: bool = JsonOpt) -> None:
    """A picture of the bank's history: each memory a row, each version a bar, ops marked."""
    from memstore.timeline import timeline as draw

    store = MemoryStore(State.db, bank or State.bank, create=False, timeout=State.timeout) if bank else open_store()
    result = draw(store, out, memory_ids=memory or None, query=query, since=since, until=until, max_rows=max_rows)
    store.close()
    if as_json:
        emit_json(result)
    else:
        console.print(f"wrote {result['out']}: {result['rows']} memories, {result['events']} events"
                      + (f", {result['left_out']} left out" if result["left_out"] else ""))


def canned_queries() -> dict:
    """Datasette canned queries for auditing: the bank as of a time, a memory's history, and why."""
    cutoff = "memstore_cutoff(:as_of)"  # cli/datasette_plugin.py: the time parsed as `replay --as-of` parses it
    return {
        "bank_as_of": {
            "title": "Bank as of a time",
            "description": "The memories alive in :bank at :as_of, as `memstore replay --as-of` shows them: an ISO "
                           "date (which includes that whole day) or date and time, e.g. 2023-06-01 or "
                           "2023-06-01T12:00 (UTC unless an offset is given); empty: now. The front page "
                           "links each bank.",
            "sql": f"SELECT memory_id, text, start_valid AS valid_at, event_seq AS seq, op, actor, reason\n"
                   f"FROM versions WHERE bank = :bank AND (\n"
                   f"  (TRIM(:as_of) = '' AND end_seq IS NULL) OR\n"
                   f"  (TRIM(:as_of) <> '' AND start_valid <= {cutoff} AND (end_valid IS NULL OR end_valid > {cutoff})))\n"
                   f"ORDER BY start_valid, event_seq"},
        "memory_history": {
            "title": "History of a memory",
            "description": "Every event of :memory_id in :bank: versions, NOOPs, refused decisions.",
            "sql": "SELECT seq, op, outcome, text, prev_text, valid_at, actor, reason, source, erased\n"
                   "FROM events WHERE bank = :bank AND memory_id = :memory_id ORDER BY seq"},
        "why": {
            "title": "Why a memory is in its state",
            "description": "The event behind :memory_id's current state in :bank, with the turns it came from; "
                           "for a restored memory, the deletion it undid too.",
            "sql": "WITH last AS (SELECT MAX(seq) AS seq FROM events WHERE bank = :bank AND memory_id = :memory_id\n"
                   "                AND outcome = 'applied' AND op <> 'NOOP'),\n"
                   "undone AS (SELECT MAX(d.seq) AS seq FROM events d, last WHERE d.bank = :bank\n"
                   "           AND d.memory_id = :memory_id AND d.op = 'DELETE' AND d.outcome = 'applied'\n"
                   "           AND d.seq < last.seq AND (SELECT op FROM events WHERE seq = last.seq) = 'RESTORE')\n"
                   "SELECT e.seq, e.op, e.text, e.valid_at, e.actor, e.reason, e.cause,\n"
                   "       i.input_id, i.speaker, i.text AS said, i.time AS said_at\n"
                   "FROM events e LEFT JOIN json_each(e.source) s\n"
                   "LEFT JOIN inputs i ON i.bank = e.bank AND i.input_id = s.value\n"
                   "WHERE e.bank = :bank AND e.memory_id = :memory_id\n"
                   "  AND e.seq IN (SELECT seq FROM last UNION SELECT seq FROM undone) ORDER BY e.seq"},
    }


def front_page(database: str, banks: list[str], most: int = 50) -> str:
    """The index page's text: the audit queries one click away, each bank's current memories linked
    (Datasette lists canned queries only on the database page)."""
    q = lambda name, **params: escape(f"/{quote(database)}/{name}" + (f"?{urlencode(params)}" if params else ""))  # noqa: E731
    links = ", ".join(f'<a href="{q("bank_as_of", bank=b, as_of="")}">{escape(b)}</a>' for b in banks[:most])
    more = f" and {len(banks) - most} more" if len(banks) > most else ""
    return ("<p>The event log, read-only. Erased text is purged from the file itself, so it is not here either.</p>"
            "<p>Audit queries: "
            f'<a href="{q("bank_as_of")}">Bank as of a time</a> &middot; '
            f'<a href="{q("memory_history")}">History of a memory</a> &middot; '
            f'<a href="{q("why")}">Why a memory is in its state</a></p>'
            f"<p>Banks now: {links or 'none yet'}{more}.</p>")


@app.command()
def browse(port: int = typer.Option(8001, "--port", min=1, max=65535, help="Loopback port to serve on."),
           db: Optional[Path] = typer.Option(None, "--db", help="SQLite file (default: the global --db).")) -> None:
    """Browse the log in Datasette, read-only, on 127.0.0.1, with canned queries for 'bank as of
    T', 'history of a memory' and 'why'. Needs the [browse] extra."""
    if importlib.util.find_spec("datasette") is None:
        raise BadInput("memstore browse needs Datasette: pip install -e '.[browse]' (or ./install.sh)")
    path = db or State.db  # a bad file fails below, in one line, before Datasette starts
    if not isinstance(path, Path):
        raise BadInput("memstore browse shows a SQLite file; copy the banks into one with `memstore migrate`")
    folder = Path(tempfile.mkdtemp(prefix="memstore-browse-"))
    metadata = folder / "metadata.json"
    with MemoryStore(path, State.bank, create=False, timeout=State.timeout) as store:
        banks = store.banks()
    metadata.write_text(json.dumps({
        "title": f"memstore: {path.name}",
        "description_html": front_page(path.stem, banks),
        "databases": {path.stem: {"queries": canned_queries(),
                                  # the R*Tree's shadow tables are SQLite internals, not the log
                                  "tables": {t: {"hidden": True} for t in (
                                      "versions_rtree", "versions_rtree_node", "versions_rtree_parent",
                                      "versions_rtree_rowid")}}}}, indent=2))
    plugins = folder / "plugins"
    plugins.mkdir()
    # the plugin lives in the package; Datasette loads plugins from a folder, so a one-line shim goes there
    (plugins / "memstore_cutoff.py").write_text("from cli.datasette_plugin import prepare_connection  # noqa: F401\n")
    print(f"memstore browse: http://127.0.0.1:{port}/{path.stem} (Ctrl-C stops)", file=sys.stderr)
    sys.stderr.flush()
    # Datasette opens a mutable file read-only (mode=ro) and canned queries cannot write.
    os.execv(sys.executable, [sys.executable, "-m", "datasette", "serve", str(path), "--host", "127.0.0.1",
                              "--port", str(port), "--metadata", str(metadata), "--plugins-dir", str(plugins)])
