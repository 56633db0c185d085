"""DuckDB over the log for audit queries and Parquet export: a SQLite file is attached read-only;
from PostgreSQL the bank's events and inputs are read into DuckDB (as Arrow tables) first.

The sqlite_scanner extension comes from the `duckdb-ext-sqlite` wheel, because DuckDB cannot
download extensions on a machine without internet access (nor its postgres_scanner)."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from .errors import BadInput

if TYPE_CHECKING:
    from .store import MemoryStore


def _sqlite_extension() -> str | None:
    try:
        import duckdb_ext
    except ImportError:
        return None
    for root in duckdb_ext.__path__:
        hits = glob.glob(os.path.join(root, "extensions", f"v{duckdb.__version__}", "*", "sqlite_scanner.duckdb_extension"))
        if hits:
            return hits[0]
    return None


def connect(store: "MemoryStore") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the store's log as schema `ms` (the file attached read-only, or
    the bank's rows of a PostgreSQL database)."""
    if store.engine.name == "postgresql":
        return _from_rows(store)
    db_path = store.path
    con = duckdb.connect()
    ext = _sqlite_extension()
    con.execute(f"LOAD '{ext}'" if ext else "LOAD sqlite")
    path = str(Path(db_path).resolve()).replace("'", "''")
    con.execute(f"ATTACH '{path}' AS ms (TYPE sqlite, READ_ONLY)")
    return con


def _from_rows(store: "MemoryStore") -> duckdb.DuckDBPyConnection:
    import pyarrow as pa

    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS ms")
    for table in ("events", "inputs"):
        cur = store.conn.execute(f"SELECT * FROM {table} WHERE bank = ? ORDER BY seq", (store.bank,))
        names = [c.name for c in cur.description]
        rows = cur.fetchall()
        arrow = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})  # noqa: F841 (DuckDB reads it by name)
        con.execute(f"CREATE TABLE ms.{table} AS SELECT * FROM arrow")
    return con


def stats(store: "MemoryStore") -> dict[str, Any]:
    con = connect(store)
    try:
        by_op = dict(con.execute(
            "SELECT op || CASE WHEN outcome = 'refused' THEN ' (refused)' ELSE '' END, COUNT(*) "
            "FROM ms.events WHERE bank = ? GROUP BY 1 ORDER BY 1", [store.bank]).fetchall())
        by_actor = dict(con.execute(
            "SELECT actor, COUNT(*) FROM ms.events WHERE bank = ? GROUP BY 1 ORDER BY 2 DESC", [store.bank]).fetchall())
        first, last, n_events = con.execute(
            "SELECT MIN(valid_at), MAX(valid_at), COUNT(*) FROM ms.events WHERE bank = ?", [store.bank]).fetchone()
        n_inputs = con.execute("SELECT COUNT(*) FROM ms.inputs WHERE bank = ?", [store.bank]).fetchone()[0]
    finally:
        con.close()
    return {"bank": store.bank, "events": n_events, "live_memories": len(store.replay()),
            "inputs": n_inputs, "by_op": by_op, "by_actor": by_actor,
            "first_valid_at": first, "last_valid_at": last}


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def export_parquet(store: "MemoryStore", out_dir: str | Path) -> dict[str, Any]:
    """Write this bank's events, inputs and current state (`bank.parquet`) as Parquet files.
    The state is computed by DuckDB with a window over the log; the tests check it equals
    `replay()`, which makes it a second, independent check of the projection."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    bank = _lit(store.bank)
    queries = {
        "events": f"SELECT * EXCLUDE (content_digest) FROM ms.events WHERE bank = {bank} ORDER BY seq",
        "inputs": f"SELECT * EXCLUDE (content_digest) FROM ms.inputs WHERE bank = {bank} ORDER BY seq",
        "bank": f"""SELECT memory_id AS id, text, valid_at, seq, op, actor, reason FROM (
                      SELECT *, row_number() OVER (PARTITION BY memory_id ORDER BY seq DESC) AS rn
                      FROM ms.events WHERE bank = {bank} AND outcome = 'applied' AND op <> 'NOOP')
                    WHERE rn = 1 AND op IN ('ADD', 'UPDATE', 'RESTORE') AND erased = 0
                    ORDER BY valid_at, seq""",
    }
    con = connect(store)
    written = {}
    try:
        for name, query in queries.items():
            target = out / f"{name}.parquet"
            con.execute(f"COPY ({query}) TO {_lit(str(target))} (FORMAT parquet)")
            rows = con.execute(f"SELECT COUNT(*) FROM read_parquet({_lit(str(target))})").fetchone()[0]
            written[name] = {"path": str(target), "rows": rows}
    finally:
        con.close()
    return written
