"""The PostgreSQL engine: the same store on a server that many processes and hosts share.

`MemoryStore("postgresql://user@host/db")` runs the store's own SQL (written once, in SQLite's
dialect) through a thin translation: `?` and `:name` placeholders, `IS ?` as `IS NOT DISTINCT
FROM`, `INSERT OR IGNORE` as `ON CONFLICT DO NOTHING`. What differs by nature is here: opening
and creating the schema (pg_schema.py), the write lock on the bank's row in `heads`, sequences
for seqs, as-of reads on range types, and what erase does to free the purged text's space."""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import re
import uuid
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from .clock import Cutoff
from .errors import StoreUnavailable
from .pg_schema import DDL, PROTECTION_TRIGGERS, SCHEMA_VERSION
from .integrity import INSERT_VERSIONS, bulk_plan, close_known, close_unknown, refill_versions
from .paths import cache_root
from .records import Memory

def redact(url: str) -> str:
    """The URL without its password, for messages and file names."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


_IS_VALUE = re.compile(r"\bIS (?!NULL\b|NOT\b)", re.IGNORECASE)
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_OR_IGNORE = re.compile(r"^\s*INSERT OR IGNORE INTO", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """The store's SQLite-dialect statement in PostgreSQL's (psycopg's placeholders)."""
    out = sql.replace("%", "%%")
    out = _IS_VALUE.sub("IS NOT DISTINCT FROM ", out)
    out = _NAMED.sub(r"%(\1)s", out)
    out = out.replace("?", "%s")
    if _OR_IGNORE.match(out):
        out = _OR_IGNORE.sub("INSERT INTO", out) + " ON CONFLICT DO NOTHING"
    return out


class Row(tuple):
    """A result row read by position or by column name, as sqlite3.Row is."""

    def __new__(cls, values, index):
        row = tuple.__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _rows(cursor: psycopg.Cursor):
    """Rows with their column names, read from the result's field names (cursor.description
    would build a Column object per column per statement: a fifth of a bulk import's CPU)."""
    result = cursor.pgresult
    if result is None or not result.nfields:
        return tuple
    index = _field_index(tuple(result.fname(i) for i in range(result.nfields)))
    return lambda values: Row(values, index)


@functools.lru_cache(maxsize=256)
def _field_index(names: tuple[bytes, ...]) -> dict[str, int]:
    return {name.decode(): i for i, name in enumerate(names)}


class Connection:
    """The subset of sqlite3.Connection the store uses, over one psycopg connection in autocommit
    mode (the engine opens and ends transactions, as SQLite's isolation_level=None does)."""

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor:
        return self.raw.execute(translate(sql), params if params is not None else ())

    def executemany(self, sql: str, seq) -> psycopg.Cursor:
        cur = self.raw.cursor()
        cur.executemany(translate(sql), list(seq))
        return cur

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


class PostgresEngine:
    name = "postgresql"

    def __init__(self, url: str, *, create: bool, timeout: float):
        self.url, self.label = url, redact(url)
        try:
            raw = psycopg.connect(url, autocommit=True, row_factory=_rows, connect_timeout=max(1, int(timeout)),
                                  options=f"-c lock_timeout={int(timeout * 1000)}")
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to {self.label}: {str(exc).strip().splitlines()[0]}") from None
        self.conn = Connection(raw)
        self.read_only = False
        self._pipeline: contextlib.ExitStack | None = None  # inside a transaction
        with self.errors():
            # a hot standby serves reads (replay, search, why, verify) and refuses writes
            self.read_only = bool(self.conn.raw.execute("SELECT pg_is_in_recovery()").fetchone()[0])
            self._initialise(create and not self.read_only)
            self.db_id = self.conn.execute("SELECT value FROM meta WHERE key = 'db_id'").fetchone()[0]

    def _initialise(self, create: bool) -> None:
        tables = {r[0] for r in self.conn.raw.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        if "events" in tables:
            version = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if version is None or version[0] != f"pg{SCHEMA_VERSION}":
                raise StoreUnavailable(f"{self.label} has memstore schema {version and version[0]}, "
                                       f"expected pg{SCHEMA_VERSION}")
            return
        if not create:
            raise StoreUnavailable(f"{self.label} is not initialised (run `memstore init`)")
        if tables - {"meta"}:
            raise StoreUnavailable(f"{self.label} holds other tables: not a memstore database")
        # one transaction under an advisory lock: a concurrent `init` sees all of it or none
        with self.conn.raw.transaction():
            self.conn.raw.execute("SELECT pg_advisory_xact_lock(4242)")
            self.conn.raw.execute(DDL)
            self.conn.raw.execute("INSERT INTO meta VALUES ('schema_version', %s), ('db_id', %s) ON CONFLICT DO NOTHING",
                                  (f"pg{SCHEMA_VERSION}", uuid.uuid4().hex))

    # ---- errors and transactions ----------------------------------------------------------
    def describe(self, exc: BaseException) -> StoreUnavailable | None:
        """A server or connection failure as one line; None for what is not the database's."""
        if not isinstance(exc, psycopg.Error) or isinstance(exc, psycopg.IntegrityError):
            return None
        if isinstance(exc, pg_errors.LockNotAvailable):
            return StoreUnavailable(f"database {self.label} is locked by another writer; try again")
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return StoreUnavailable(f"database error on {self.label}: {first}")

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.IntegrityError:
            raise
        except psycopg.Error as exc:
            raise self.describe(exc) from None

    def begin(self, bank: str, timeout: float) -> None:
        """A transaction holding the bank's write lock (its row in `heads`): appends to one bank
        are serialised, so its chain has one tail and its seqs follow the chain.

        The transaction runs in pipeline mode: BEGIN and the lock are sent, not
        waited for, and travel with the store's first reads; the inserts and COMMIT travel
        together at the end. A single append is two round trips instead of one per statement."""
        if self.read_only:
            raise StoreUnavailable(f"{self.label} is a read-only replica: write to the primary")
        self._seqs = {"events": collections.deque(), "inputs": collections.deque()}
        self._block = {"events": 1, "inputs": 1}
        raw = self.conn.raw
        self._pipeline = contextlib.ExitStack()
        self._pipeline.enter_context(raw.pipeline())
        raw.execute("BEGIN")
        # the first write to a bank makes its row; later ones find it (no row written, no wait)
        raw.execute("INSERT INTO heads VALUES (%s) ON CONFLICT DO NOTHING", (bank,))
        raw.execute("SELECT 1 FROM heads WHERE bank = %s FOR UPDATE", (bank,))

    def unpipe(self) -> None:
        """Wait for what was sent and leave pipeline mode, the transaction still open: for work
        that reads row counts of writes or sends several statements at once (bulk_end, repair)."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            with self.errors():
                pipeline.close()

    def commit(self) -> None:
        try:
            with self.errors():
                self.conn.execute("COMMIT")
                self.unpipe()
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        """Roll back what is left of a failed transaction."""
        try:
            self.unpipe()  # the failed statement's error again, or the one that stopped it
        except (psycopg.Error, StoreUnavailable):
            pass
        if not self.conn.raw.closed and self.conn.in_transaction:
            with self.errors():
                self.conn.execute("ROLLBACK")

    def after_commit(self) -> None:
        """Durable at COMMIT (synchronous_commit): nothing to add."""

    def next_seq(self, table: str) -> int:
        """The next seq from the table's sequence, fetched in growing blocks (1, 2, 4 ... 1024 per
        round trip) while the transaction holds the bank's lock; what it leaves unused is a gap."""
        pool = self._seqs[table]
        if not pool:
            n = self._block[table]
            self._block[table] = min(2 * n, 1024)
            name = "event_seqs" if table == "events" else "input_seqs"
            pool.extend(sorted(r[0] for r in self.conn.raw.execute(
                "SELECT nextval(%s) FROM generate_series(1, %s)", (name, n))))
        return pool.popleft()

    def after_copy(self) -> None:
        """Rows copied with their seqs (memstore migrate): the sequences continue after them."""
        for table, sequence in (("events", "event_seqs"), ("inputs", "input_seqs")):
            self.conn.raw.execute(f"SELECT setval('{sequence}', (SELECT MAX(seq) FROM {table})) "
                                  f"WHERE EXISTS (SELECT 1 FROM {table})")

    def close(self) -> None:
        self.conn.close()

    # ---- bulk appends: the projection kept once per block ------------------------------------
    def bulk_start(self) -> None:
        """The per-row trigger stands aside for the transaction; bulk_end keeps the projection.
        The block's inserts stay in pipeline mode: each travels with the next read."""
        self.conn.raw.execute("SELECT set_config('memstore.projection', 'bulk', true)")

    def bulk_end(self, bank: str, rows: list[dict], open_before: dict) -> None:
        """What the per-row trigger does, for a block's events at once (integrity.bulk_plan)."""
        self.unpipe()  # close_known counts the rows its updates touched
        known, unknown, opened = bulk_plan(bank, rows, open_before)
        close_known(self.conn, bank, known)
        close_unknown(self.conn, unknown)
        if opened:
            self.conn.executemany(INSERT_VERSIONS, opened)
        self.conn.raw.execute("SELECT set_config('memstore.projection', '', true)")

    def bulk_cleanup(self) -> None:
        pass

    # ---- reads ----------------------------------------------------------------------------
    _COLUMNS = "memory_id, text, start_valid, event_seq, op, actor, reason"  # = Memory's fields

    def project(self, bank: str, cutoff: Cutoff) -> list[Memory]:
        if cutoff.time is not None:
            where, params = "valid @> %s::text", (cutoff.time,)
        elif cutoff.seq is not None:
            where, params = "seqs @> %s::bigint", (cutoff.seq,)
        else:
            where, params = "end_seq IS NULL", ()
        cur = self.conn.raw.cursor(row_factory=psycopg.rows.tuple_row)
        cur.execute(f"SELECT {self._COLUMNS} FROM versions WHERE bank = %s AND {where} ORDER BY 3, 4",
                    (bank, *params))
        return list(map(Memory._make, cur))

    # ---- integrity ------------------------------------------------------------------------
    def trigger_names(self) -> set[str]:
        return {r[0] for r in self.conn.raw.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}

    protection_triggers = PROTECTION_TRIGGERS

    def check_index(self, bank: str) -> dict | None:
        """The as-of ranges are generated columns: they cannot disagree with the rows."""
        return None

    def repair(self) -> dict[str, int]:
        """Rebuild `versions` of every bank from the log and put back any protection trigger that
        was dropped, in the caller's transaction."""
        self.unpipe()
        self.conn.raw.execute(DDL)
        self.conn.raw.execute("SELECT set_config('memstore.projection', 'repair', true)")
        self.conn.raw.execute("DELETE FROM versions")
        banks = [r[0] for r in self.conn.execute("SELECT DISTINCT bank FROM events ORDER BY bank")]
        counts = refill_versions(self.conn, banks)
        self.conn.raw.execute("SELECT set_config('memstore.projection', '', true)")
        return counts

    # ---- erase ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def purging(self) -> Iterator[None]:
        yield

    def purge(self, wait: float) -> bool:
        """After an erasure: VACUUM prunes the row versions that still held the purged text. Freed
        space, the WAL and base backups keep those bytes until PostgreSQL reuses or recycles
        them (docs/guide/team.md)."""
        with self.errors():
            for table in ("events", "inputs", "versions", "embeddings", "fact_cache"):
                self.conn.raw.execute(f"VACUUM {table}")
        return True

    def index_base(self) -> Path:
        """Where the bank's saved vector indexes live: a cache folder named by the database's id
        (a server has no folder beside a file); each process rebuilds and catches up from the log."""
        folder = cache_root() / "indexes"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"pg-{hashlib.sha256(self.db_id.encode()).hexdigest()[:16]}"
