"""Opening the SQLite file: WAL mode, busy timeout, schema, and turning sqlite3's failures
(missing, corrupt, foreign, locked file) into one-line errors."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from pathlib import Path
from typing import Iterator

import sqlite_utils

from .errors import StoreUnavailable
from .schema import ADDED_COLUMNS, DDL, MIGRATE, SCHEMA_VERSION


def describe_sqlite_error(path: str | Path, exc: sqlite3.Error) -> StoreUnavailable:
    msg = str(exc)
    if "locked" in msg or "busy" in msg:
        return StoreUnavailable(f"database {path} is locked by another writer; try again")
    if "not a database" in msg or "malformed" in msg or "disk image" in msg:
        return StoreUnavailable(f"database {path} is corrupt or not a SQLite file ({msg})")
    if "readonly" in msg or "unable to open" in msg:
        return StoreUnavailable(f"cannot open database {path} ({msg})")
    return StoreUnavailable(f"database error on {path}: {msg}")


@contextlib.contextmanager
def sqlite_errors(path: str | Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError:
        raise  # a refused write is a bug or an attack; let it be seen
    except sqlite3.Error as exc:
        raise describe_sqlite_error(path, exc) from None


def connect(path: str | Path, *, create: bool, timeout: float) -> sqlite_utils.Database:
    """Open (and with `create`, initialise) a memstore database (the timeout is checked by engines.open_engine)."""
    path = Path(path)
    if not create and not path.exists():
        raise StoreUnavailable(f"no memstore database at {path} (create it with `memstore init`)")
    if path.parent and not path.parent.exists():
        raise StoreUnavailable(f"cannot create database {path}: folder {path.parent} does not exist")
    with sqlite_errors(path):
        conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        db = sqlite_utils.Database(conn)
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.execute("PRAGMA mmap_size = 1073741824")  # replay reads scattered rows: map, don't copy
        conn.execute("PRAGMA cache_size = -65536")
        # a commit writes the WAL without syncing it under the write lock; MemoryStore then makes
        # it durable before the write returns, sharing one fsync among concurrent writers
        # (durability.py; bench/bench_store.py --concurrency measures it against FULL)
        conn.execute("PRAGMA synchronous = NORMAL")
        tables = set(db.table_names())
        if "events" not in tables:
            if not create:
                if tables:
                    raise StoreUnavailable(f"{path} is a SQLite file but not a memstore database")
                raise StoreUnavailable(f"{path} is not initialised (run `memstore init`)")
            if tables - {"meta", "inputs", "sqlite_sequence"}:
                raise StoreUnavailable(f"{path} is a SQLite file but not a memstore database")
            db.enable_wal()
            # one transaction, so a concurrent `init` of the same file sees all of it or none
            conn.executescript(
                f"BEGIN IMMEDIATE; {DDL}\n"
                f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');\n"
                f"INSERT OR IGNORE INTO meta VALUES ('db_id', '{uuid.uuid4().hex}'); COMMIT;"
            )
        missing = {"versions", "versions_rtree", "embeddings", "fact_cache", "inputs"} - set(db.table_names())
        if missing:
            raise StoreUnavailable(f"{path} was made by an older memstore (no {', '.join(sorted(missing))}); "
                                   "export it and start a new file")
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is not None and version[0] in ("1", "2", "3"):
            # one transaction: a concurrent open sees the old schema or the new one, never half
            add = [f"ALTER TABLE {table} ADD COLUMN {column} TEXT;" for table, columns in ADDED_COLUMNS.items()
                   for column in columns if column not in {c[1] for c in conn.execute(f"PRAGMA table_info({table})")}]
            conn.executescript(
                f"BEGIN IMMEDIATE; {MIGRATE.replace('{add_columns}', chr(10).join(add))}\n"
                f"UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version' AND value IN ('1', '2', '3');\n"
                "INSERT OR IGNORE INTO meta SELECT 'unchained_inputs', '1' WHERE EXISTS (SELECT 1 FROM inputs WHERE hash IS NULL);\n"
                f"INSERT OR IGNORE INTO meta VALUES ('db_id', '{uuid.uuid4().hex}'); COMMIT;")
            version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise StoreUnavailable(f"{path} has memstore schema {version and version[0]}, expected {SCHEMA_VERSION}")
    return db
