"""The SQLite engine: the embedded default, one file on one machine.

What the store does the SQLite way: `BEGIN IMMEDIATE` (one writer per file), seqs as MAX + 1
under that lock, group commit (durability.py), the projection's R*Tree (projection.py, kept
per event by triggers or once per bulk block here), and after an erasure `secure_delete` and a
WAL checkpoint, so the purged text survives neither in free pages nor in the WAL."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator

from . import projection
from .clock import Cutoff
from .db import connect, describe_sqlite_error, sqlite_errors
from .durability import GroupSync
from .errors import StoreUnavailable
from .records import Memory
from .integrity import INSERT_VERSIONS, bulk_plan, close_known, close_unknown
from .schema import _EPOCH, PROTECTION_TRIGGERS


class SQLiteEngine:
    name = "sqlite"
    read_only = False

    BULK_CHECKPOINT_PAGES = 20_000  # ~80 MB of WAL between checkpoints while a bulk block appends

    def __init__(self, path: str | Path, *, create: bool, timeout: float):
        self.path = Path(path)
        self.label = str(self.path)
        self.timeout = timeout
        self.db = connect(self.path, create=create, timeout=timeout)
        self.conn: sqlite3.Connection = self.db.conn
        self.sync = GroupSync(self.path)
        self._next: dict[str, int] = {}
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'db_id'").fetchone()
        self.db_id = row[0] if row else None

    # ---- errors and transactions ----------------------------------------------------------
    def describe(self, exc: BaseException) -> StoreUnavailable | None:
        if not isinstance(exc, sqlite3.Error) or isinstance(exc, sqlite3.IntegrityError):
            return None
        return describe_sqlite_error(self.path, exc)

    def errors(self):
        return sqlite_errors(self.path)

    def begin(self, bank: str, timeout: float) -> None:
        """One writer per file: group commit's gate first (durability.py), then SQLite's lock."""
        self.sync.enter(timeout)
        try:
            with sqlite_errors(self.path):
                self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.sync.leave()
            raise
        self._next = {}

    def commit(self) -> None:
        try:
            with sqlite_errors(self.path):
                self.conn.execute("COMMIT")
        except BaseException:
            self.abandon()
            raise
        self.sync.leave()

    def abandon(self) -> None:
        """Roll back what is left of a failed transaction (an I/O error or a full disk may have
        rolled it back already) and let the next writer in."""
        self._next = {}
        try:
            if self.conn.in_transaction:
                with sqlite_errors(self.path):
                    self.conn.execute("ROLLBACK")
        finally:
            self.sync.leave()

    def after_commit(self) -> None:
        self.sync.after_commit()  # durable before it is acknowledged (durability.py)

    def next_seq(self, table: str) -> int:
        """MAX + 1, read once per transaction (the file's write lock is held)."""
        if table not in self._next:
            self._next[table] = self.conn.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}").fetchone()[0]
        seq = self._next[table]
        self._next[table] += 1
        return seq

    def after_copy(self) -> None:
        """Rows copied with their seqs: MAX + 1 follows them by itself."""

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            self.sync.close()

    # ---- bulk appends: the projection kept once per block ---------------------------------
    def bulk_start(self) -> None:
        # a bulk commit writes thousands of pages to the WAL; copying them back into the file every
        # 1,000 pages (the default) made its commit 2.4x dearer at 10^6 events (bench/bench_store.py)
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {self.BULK_CHECKPOINT_PAGES}")
        self.conn.execute("INSERT INTO projection_guard VALUES ('bulk')")

    def bulk_cleanup(self) -> None:
        self.conn.execute("PRAGMA wal_autocheckpoint = 1000")

    def bulk_end(self, bank: str, rows: list[dict], open_before: dict[str, tuple[int, str] | None]) -> None:
        """What versions_follow_log does per event, for a bulk's events at once: each state event
        closes the memory's open version (its R*Tree box written as it closes) and a live one opens
        the next; a memory's versions within the block are chained in memory, not in SQL.
        `open_before`: the version each memory had open before the block, as the store saw it
        when it checked the op (None: none), so it need not be looked up again."""
        self._project(bank, rows, open_before)
        self.conn.execute("DELETE FROM projection_guard")

    def _project(self, bank: str, rows: list[dict], open_before: dict) -> None:
        known, unknown, opened = bulk_plan(bank, rows, open_before)
        if not (known or unknown or opened):
            return
        self.conn.execute("INSERT OR IGNORE INTO banks (name) VALUES (?)", (bank,))
        bank_id = self.conn.execute("SELECT id FROM banks WHERE name = ?", (bank,)).fetchone()[0]
        self.conn.executemany(
            f"INSERT INTO versions_rtree VALUES (?3, ?3, ?1, {_EPOCH.format('?4')}, {_EPOCH.format('?2')}, ?5, ?5)",
            [(*k, bank_id) for k in known])
        close_known(self.conn, bank, known)
        self.conn.executemany(f"""INSERT INTO versions_rtree
            SELECT event_seq, event_seq, ?1, {_EPOCH.format("start_valid")}, {_EPOCH.format("?2")}, ?5, ?5
              FROM versions WHERE bank = ?3 AND memory_id = ?4 AND end_seq IS NULL""", [(*u, bank_id) for u in unknown])
        close_unknown(self.conn, unknown)
        self.conn.executemany(INSERT_VERSIONS, opened)
        self.conn.executemany(
            f"INSERT INTO versions_rtree VALUES (?1, ?1, ?2, {_EPOCH.format('?3')}, {_EPOCH.format('?4')}, ?5, ?5)",
            [(seq, end_seq, start, end, bank_id) for seq, _, _, start, end, end_seq, *_ in opened if end_seq is not None])

    # ---- reads ----------------------------------------------------------------------------
    def project(self, bank: str, cutoff: Cutoff) -> list[Memory]:
        with sqlite_errors(self.path):
            return projection.project(self.conn, bank, cutoff)

    # ---- integrity ------------------------------------------------------------------------
    def trigger_names(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}

    protection_triggers = PROTECTION_TRIGGERS

    def check_index(self, bank: str) -> dict | None:
        from .integrity import check_rtree
        return check_rtree(self.conn, bank)

    def repair(self) -> dict[str, int]:
        from .integrity import repair
        return repair(self.conn)

    # ---- erase ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def purging(self) -> Iterator[None]:
        """The purged text is overwritten, not left in free space; only erase frees private text,
        so only erase pays for it (on for every write, it cost appends ~10%)."""
        self.conn.execute("PRAGMA secure_delete = ON")
        try:
            yield
        finally:
            self.conn.execute("PRAGMA secure_delete = OFF")

    def purge(self, wait: float) -> bool:
        """Copy the WAL into the file and truncate it, so purged text survives in neither. Another
        connection inside a read keeps the WAL alive: wait for it up to `wait` seconds (SQLite's
        busy handler); False if it is still kept."""
        with sqlite_errors(self.path):
            self.conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            try:
                busy = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                self.conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        return not busy

    def index_base(self) -> Path:
        """Saved vector indexes sit beside the database file."""
        return self.path
