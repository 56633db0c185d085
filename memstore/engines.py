"""Which engine holds the log: a SQLite file (the embedded default) or a PostgreSQL database
(`postgresql://...`, for a team). Both give MemoryStore the same things: a connection that runs the
store's SQL, transactions scoped to a bank's writes, seqs, the as-of projection, the integrity
checks that depend on the engine, and what an erasure does to free the purged text's space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import BadInput


PREFIXES = ("postgresql://", "postgres://")


def is_postgres(target: Any) -> bool:
    return isinstance(target, str) and target.startswith(PREFIXES)


def target(value: str | Path) -> str | Path:
    """A `--db` value as the store takes it: a PostgreSQL URL as it is, anything else a file path."""
    return value if is_postgres(value) else Path(value)


def open_engine(target: str | Path, *, create: bool, timeout: float):
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 86400:
        raise BadInput(f"bad timeout {timeout!r}: expected seconds between 0 and 86400")  # nan fails too
    if is_postgres(target):
        from .pg_engine import PostgresEngine
        return PostgresEngine(target, create=create, timeout=timeout)
    from .sqlite_engine import SQLiteEngine
    return SQLiteEngine(target, create=create, timeout=timeout)
