"""Group commit: many writers, one fsync.

SQLite's `synchronous = FULL` fsyncs the WAL inside every commit, while the commit holds the
file's write lock, so concurrent single-event writers queue behind each other's fsyncs (one
commit per fsync, whatever the number of processes). memstore commits with `synchronous =
NORMAL` (the WAL is written, not synced, under the lock) and makes each commit durable after
releasing the lock, before the write returns to its caller: one fsync of the WAL covers every
commit written before it started, so writers that commit while an fsync is under way share the
next one (leader and followers, as databases do group commit).

The bookkeeping is two counters in a small file beside the database (`DB-sync`), shared by every
process through mmap: fsyncs started and fsyncs completed; an flock on the same file lets one
process fsync at a time. A writer reads `started` just after its commit; any fsync numbered
after that began after the commit, so once `completed` passes it the commit is on disk, and the
writer returns without an fsync of its own. A checkpoint copies WAL frames into the database
and syncs it before the WAL is reused (SQLite does so under NORMAL too), so frames a later fsync
no longer sees were made durable there.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import time
from pathlib import Path

from .errors import StoreUnavailable

_COUNTERS = struct.Struct("<QQ")  # fsyncs started, fsyncs completed (8-byte aligned: atomic loads)


class GroupSync:
    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self.wal_path = self.db_path.with_name(self.db_path.name + "-wal")
        self.wal_fd: int | None = None
        self.fd: int | None = None
        if str(db_path) == ":memory:":
            return  # one connection, nothing on disk: no queue and no fsync to share
        sync_path = self.db_path.with_name(self.db_path.name + "-sync")
        try:
            self.fd = os.open(sync_path, os.O_RDWR | os.O_CREAT, 0o644)
            if os.fstat(self.fd).st_size < mmap.PAGESIZE:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
                try:
                    if os.fstat(self.fd).st_size < mmap.PAGESIZE:
                        os.ftruncate(self.fd, mmap.PAGESIZE)
                finally:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.map = mmap.mmap(self.fd, mmap.PAGESIZE)
            self.queue_fd = os.open(self.db_path.with_name(self.db_path.name + "-lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open {sync_path} to make writes durable ({exc.strerror})") from None

    def enter(self, timeout: float) -> None:
        """Take the writers' queue before BEGIN IMMEDIATE. SQLite's busy handler sleeps 1, 2, 5, 10...
        ms between tries, so a writer that once found the file locked oversleeps the fsync-free
        commits of the others; here a waiting writer retries within 50 µs-1 ms and the lock passes
        on at once. (Writers that are not memstore still serialise on SQLite's own lock.)"""
        if self.fd is None:
            return
        deadline, pause = time.monotonic() + timeout, 5e-5
        while True:
            try:
                fcntl.flock(self.queue_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(f"database {self.db_path} is locked by another writer; try again") from None
                time.sleep(pause)
                pause = min(pause * 2, 1e-3)

    def leave(self) -> None:
        if self.fd is None:
            return
        fcntl.flock(self.queue_fd, fcntl.LOCK_UN)

    def _counters(self) -> tuple[int, int]:
        return _COUNTERS.unpack_from(self.map, 0)

    def after_commit(self) -> None:
        """Return once every commit this process made so far is on disk."""
        if self.fd is None:
            return
        started, _ = self._counters()
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                started_now, completed = self._counters()
                if completed > started:  # an fsync that began after our commit has finished
                    return
                _COUNTERS.pack_into(self.map, 0, completed + 1, completed)
                self._fsync_wal()
                _COUNTERS.pack_into(self.map, 0, completed + 1, completed + 1)
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        except OSError as exc:
            raise StoreUnavailable(f"the write to {self.db_path} was committed but could not be made durable "
                                   f"({exc.strerror}); it may be lost on a power failure") from None

    def _fsync_wal(self) -> None:
        # the WAL keeps its inode while any connection is open (SQLite removes it when the last one
        # closes, and this process holds one), so one descriptor serves the store's lifetime
        if self.wal_fd is None:
            try:
                self.wal_fd = os.open(self.wal_path, os.O_RDONLY)
            except FileNotFoundError:
                return  # no WAL: every commit is in the database file, synced by the checkpoint that emptied it
        os.fdatasync(self.wal_fd)

    def close(self) -> None:
        if self.fd is None:
            return
        self.map.close()
        os.close(self.fd)
        os.close(self.queue_fd)
        if self.wal_fd is not None:
            os.close(self.wal_fd)
