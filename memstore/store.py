"""MemoryStore: the Python API over one event log (a SQLite file or a PostgreSQL database),
scoped to one bank.

Every change is an appended event; the bank at any moment is a projection (`replay`). The CLI
is a thin layer over this class."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from . import audit
from .chain import GENESIS, content_digest, event_hash, input_hash, key_id, load_key, new_salt
from .clock import now_stamp, parse_cutoff, to_stamp
from .engines import open_engine
from .args import check_bank, count_arg, memory_id_arg, optional_text, short as _short, source_arg
from .embed import text_hash
from .errors import BadInput, InvalidOperation, NotFound, StoreUnavailable
from .records import Event, Input, Memory
from .embed import Embedder, default_embedder
from .vector_view import Hit, VectorView, drop_saved
from .schema import EVENT_CONTENT, INPUT_CONTENT, LIVE_OPS

_STATE = "outcome = 'applied' AND op <> 'NOOP'"
FACT_WINDOW = 4  # the most earlier inputs of a session an extraction may read: erase drops the cached
                 # facts of that many inputs after an erased one
_PENDING = "pending_erase:"  # meta key prefix: an erasure of that bank whose cleanup is not yet done


def input_key(content_digest: str, time: str) -> str:
    """Cache key of an input for derived data (extracted facts): its content and time."""
    return text_hash(f"{content_digest}|{time}")


def fact_key(speaker: str | None, text: str | None, time: str) -> str:
    """The fact cache's key of an input: who said what when (not its meta, not the file's key), so
    the same turn in two banks, or replayed from one bank into another, shares its facts."""
    return input_key(content_digest([speaker, text, None]), time)


def new_event_id() -> str:
    """32 hex digits that start with the time in ns: new ids land at the end of the event_id index
    (a random uuid4 touched a random page of it on every append), and stay unique by 64 random bits."""
    return f"{time.time_ns():016x}{secrets.token_hex(8)}"


_EVENT_COLUMNS = ("seq", "event_id", "bank", "memory_id", "op", "outcome", "text", "prev_text", "valid_at",
                  "recorded_at", "actor", "reason", "source", "cause", "erased", "prev_hash", "content_digest", "hash",
                  "salt", "inputs_head")
_ID_TAKEN = "SELECT 1 FROM events WHERE bank = ? AND memory_id = ? LIMIT 1"
_INSERT_EVENT = f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})"


_CAUSE_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)  # json.dumps(value, same options)


def _json(value: Any) -> str | None:
    try:
        return None if value is None else _CAUSE_ENCODER.encode(value)
    except (TypeError, ValueError) as exc:  # not JSON: a set, an object, a circular dict, a non-str key
        raise BadInput(f"cannot store {type(value).__name__} as JSON: {exc}") from None


class MemoryStore:
    """An event-sourced memory bank in a SQLite file, or in PostgreSQL with a `postgresql://` URL.

    >>> store = MemoryStore("agent.db", bank="alice")
    >>> m = store.add("Alice has a dog named Rex", at="2023-05-08")
    >>> store.update(m.memory_id, "Alice has two dogs, Rex and Bo", at="2023-06-01")
    >>> [x.text for x in store.replay(as_of="2023-05-31")]
    ['Alice has a dog named Rex']
    """

    def __init__(self, path: str | Path = "memstore.db", bank: str = "default", *,
                 create: bool = True, actor: str = "user", timeout: float = 10.0,
                 embedder: "Embedder | None" = None, key: str | bytes | None = None):
        self.bank = check_bank(bank)
        self.actor = actor
        self._timeout = timeout
        self.engine = open_engine(path, create=create, timeout=timeout)
        self.path = self.engine.url if self.engine.name == "postgresql" else self.engine.path
        self.conn = self.engine.conn
        self._depth = 0
        self._bulk: list[dict] | None = None  # the events appended inside bulk(), in order
        self._bulk_open: dict[str, tuple[int, str] | None] = {}  # inside bulk(): open version before it
        self._tail: str | None = None
        self._input_tail: str | None = None  # inside a transaction: the bank's input chain head
        self._embedder = embedder
        self._view: VectorView | None = None
        self.key = load_key(key)
        self.keyed = self._bind_key()
        if not self.engine.read_only:
            self._chain_unchained_inputs()
            self._finish_pending_erase()

    def _bind_key(self) -> bool:
        """Whether the file's chain is keyed; a key given to a new, empty file keys it."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'chain_key_id'").fetchone()
        if row is not None:
            if self.key is not None and key_id(self.key) != row[0]:
                raise StoreUnavailable(f"wrong MEMSTORE_KEY for database {self.engine.label}")
            return True
        if self.key is None:
            return False
        with self.transaction():
            if self.conn.execute("SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM inputs)").fetchone()[0]:
                raise StoreUnavailable(f"database {self.engine.label} has no chain key id, so its chain is unkeyed and cannot be "
                                       "keyed afterwards (if it was made with a key, its key id was removed and its chain "
                                       "recomputed: check it against an anchor); unset MEMSTORE_KEY / MEMSTORE_KEY_FILE, "
                                       "or start a new file with the key")
            self.conn.execute("INSERT INTO meta VALUES ('chain_key_id', ?)", (key_id(self.key),))
        return True

    def _chain_unchained_inputs(self) -> None:
        """Inputs of a file upgraded from schema 3 enter the input chain, once, on the first open
        that may write (with the key, on a keyed file): until then `verify` reports them."""
        if self.keyed and self.key is None:
            return
        if self.conn.execute("SELECT 1 FROM meta WHERE key = 'unchained_inputs'").fetchone() is None:
            return  # set by the upgrade; `verify` checks every input's hash whatever it says
        with self.transaction():
            self.conn.execute("DELETE FROM meta WHERE key = 'unchained_inputs'")
            for bank in [r[0] for r in self.conn.execute("SELECT DISTINCT bank FROM inputs WHERE hash IS NULL")]:
                tail = GENESIS
                for row in self.conn.execute("SELECT * FROM inputs WHERE bank = ? ORDER BY seq", (bank,)).fetchall():
                    if row["hash"] is None:
                        digest = input_hash(tail, row, self.key)
                        self.conn.execute("UPDATE inputs SET prev_hash = ?, hash = ? WHERE seq = ?", (tail, digest, row["seq"]))
                        tail = digest
                    else:
                        tail = row["hash"]

    def _writable(self) -> None:
        if self.keyed and self.key is None:
            raise StoreUnavailable(f"database {self.engine.label} has a keyed chain: set MEMSTORE_KEY or MEMSTORE_KEY_FILE to write")

    # ---- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        try:
            if self._view is not None:
                self._view.save()
        finally:
            self.engine.close()

    def __enter__(self) -> "MemoryStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def with_bank(self, bank: str) -> "MemoryStore":
        """Another bank of the same database, on its own connection (same embedder, same key)."""
        return MemoryStore(self.path, check_bank(bank), create=False, actor=self.actor, timeout=self._timeout,
                           embedder=self._embedder, key=self.key)

    def banks(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT bank FROM events UNION SELECT DISTINCT bank FROM inputs ORDER BY 1")]

    @contextlib.contextmanager
    def transaction(self) -> Iterator["MemoryStore"]:
        """All appends inside happen atomically: a crash or an exception keeps all or none.
        Nested uses join the outer transaction."""
        if self._depth == 0:
            self.engine.begin(self.bank, self._timeout)
            self._tail = self._input_tail = None
        self._depth += 1
        try:
            yield self
        except BaseException as exc:
            self._depth -= 1
            if self._depth == 0:
                self._abandon()
                described = self.engine.describe(exc)
                if described is not None:
                    raise described from None  # a full disk, an I/O error, a lost server: one line
            raise
        self._depth -= 1
        if self._depth == 0:
            try:
                self.engine.commit()
            except BaseException:
                self._forget()
                raise
            self.engine.after_commit()  # durable before it is acknowledged

    def _abandon(self) -> None:
        """After a failed transaction: roll back what is left of it and forget what was read inside it."""
        try:
            self.engine.abandon()
        finally:
            self._forget()

    def _forget(self) -> None:
        self._tail = self._input_tail = None
        self._view = None  # it may have indexed rolled-back versions; reload from disk

    @contextlib.contextmanager
    def bulk(self) -> Iterator["MemoryStore"]:
        """A transaction for many appends (add, update, delete, noop, restore, apply, record_input)
        that keeps the projection once for all of them at the end instead of once per event:
        several times faster for imports and replays (bench/bench_store.py). Same log, chain and
        checks as transaction(); the derived tables equal what the per-event trigger would have
        written (verify proves it). Reading the bank's projection (replay, search) or erasing
        inside it is refused: the projection catches up only when the block ends."""
        if self._depth:
            raise InvalidOperation("bulk() starts its own transaction; it cannot run inside another")
        try:
            with self.transaction():
                self.engine.bulk_start()
                self._bulk, self._bulk_open = [], {}
                try:
                    yield self
                    self.engine.bulk_end(self.bank, self._bulk, self._bulk_open)
                finally:
                    self._bulk, self._bulk_open = None, {}
        finally:
            self.engine.bulk_cleanup()

    def _not_in_bulk(self, what: str) -> None:
        if self._bulk is not None:
            raise InvalidOperation(f"cannot {what} inside bulk(): the projection catches up when the block ends")

    # ---- appending -------------------------------------------------------------------------
    def _append(self, *, op: str, memory_id: str | None, valid_at: str, text: str | None = None,
                prev_text: str | None = None, actor: str | None = None, reason: str | None = None,
                source: Sequence[str] = (), cause: Any = None, outcome: str = "applied") -> Event:
        """Append one event to the bank's chain; memory_id None: a new memory's (ADD)."""
        assert self._depth > 0, "appends happen inside a transaction"
        self._writable()
        source = source_arg(source)
        optional_text("reason", reason), optional_text("actor", actor)
        if cause is not None and not isinstance(cause, (str, dict)):
            raise BadInput(f"cause must be a note (string) or a dict, not {type(cause).__name__}")
        # every read below is sent before any is waited for: on PostgreSQL (pipeline mode) they
        # travel with the transaction's BEGIN and lock in one round trip
        taken = None
        if memory_id is None:
            memory_id = self._candidate_id()
            taken = self.conn.execute(_ID_TAKEN, (self.bank, memory_id))
        seq = self._read_tails(seq_of="events")
        if taken is not None and taken.fetchone() is not None:
            memory_id = self._new_id()
        if isinstance(cause, str):
            cause = {"note": cause}
        row = {
            "seq": seq, "event_id": new_event_id(), "bank": self.bank,
            "memory_id": memory_id, "op": op, "outcome": outcome, "text": text,
            "prev_text": prev_text, "valid_at": valid_at, "recorded_at": now_stamp(),
            "actor": actor or self.actor, "reason": reason, "source": json.dumps(list(source)),
            "cause": _json(cause), "erased": 0, "prev_hash": self._tail,
            "salt": new_salt(), "inputs_head": self._input_tail,
        }
        row["content_digest"] = content_digest((row[c] for c in EVENT_CONTENT), salt=row["salt"])
        row["hash"] = event_hash(self._tail, row, self.key)
        self.conn.execute(_INSERT_EVENT, [row[c] for c in _EVENT_COLUMNS])
        self._tail = row["hash"]
        if self._bulk is not None:
            self._bulk.append(row)
        return Event.from_row(row)

    def _read_tails(self, seq_of: str) -> int:
        """The next seq of table `seq_of`; and the hashes of the bank's newest event and newest
        input, read once per transaction (appends to a bank are serialised). The queries are all
        sent before any is waited for."""
        events = None if self._tail is not None else self.conn.execute(
            "SELECT hash FROM events WHERE bank = ? ORDER BY seq DESC LIMIT 1", (self.bank,))
        inputs = None if self._input_tail is not None else self.conn.execute(
            "SELECT hash FROM inputs WHERE bank = ? ORDER BY seq DESC LIMIT 1", (self.bank,))
        seq = self.engine.next_seq(seq_of)
        if events is not None:
            row = events.fetchone()
            self._tail = row[0] if row else GENESIS
        if inputs is not None:
            row = inputs.fetchone()
            self._input_tail = row[0] if row and row[0] else GENESIS
        return seq

    def _current(self, memory_id: str) -> Any:
        """The memory's last state-changing event, or None if the bank has no such memory."""
        memory_id_arg(memory_id)
        row = self.conn.execute(
            f"SELECT * FROM events WHERE bank = ? AND memory_id = ? AND {_STATE} ORDER BY seq DESC LIMIT 1",
            (self.bank, memory_id)).fetchone()
        if self._bulk is not None:
            self._note_open(memory_id, row)
        return row

    def _note_open(self, memory_id: str, row: Any) -> None:
        """Inside bulk(): keep the version a memory had open before the block (if any), which the
        block's first event of that memory closes, so _project need not look it up again."""
        if memory_id not in self._bulk_open and (row is None or not self._bulk or row["seq"] < self._bulk[0]["seq"]):
            self._bulk_open[memory_id] = (row["seq"], row["valid_at"]) if row and row["op"] in LIVE_OPS else None

    def _live(self, memory_id: str, op: str) -> Any:
        cur = self._current(memory_id)
        if cur is None:
            raise NotFound(f"no memory {memory_id!r} in bank {self.bank!r}")
        if cur["op"] == "ERASE":
            raise InvalidOperation(f"cannot {op.lower()} memory {memory_id!r}: it was erased")
        if cur["op"] == "DELETE":
            raise InvalidOperation(f"cannot {op.lower()} memory {memory_id!r}: it was deleted at seq {cur['seq']}")
        return cur

    @staticmethod
    def _not_before(cur: Any, valid_at: str, op: str) -> None:
        if valid_at < cur["valid_at"]:
            raise InvalidOperation(
                f"cannot {op.lower()} memory {cur['memory_id']!r} at {valid_at}: "
                f"its last change was observed later, at {cur['valid_at']}")

    @staticmethod
    def _candidate_id() -> str:
        return "m" + secrets.token_hex(5)

    def _new_id(self) -> str:
        while True:
            memory_id = self._candidate_id()
            if self.conn.execute(_ID_TAKEN, (self.bank, memory_id)).fetchone() is None:
                return memory_id

    @staticmethod
    def _text(text: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise BadInput("memory text must be a non-empty string")
        return optional_text("memory text", text).strip()

    def add(self, text: str, *, at: Any = None, reason: str | None = None, actor: str | None = None,
            source: Sequence[str] = (), cause: Any = None) -> Event:
        text = self._text(text)
        valid_at = to_stamp(at)
        with self.transaction():
            return self._append(op="ADD", memory_id=None, text=text, valid_at=valid_at,
                                actor=actor, reason=reason, source=source, cause=cause)

    def update(self, memory_id: str, text: str, *, at: Any = None, reason: str | None = None,
               actor: str | None = None, source: Sequence[str] = (), cause: Any = None) -> Event:
        text = self._text(text)
        valid_at = to_stamp(at)
        with self.transaction():
            cur = self._live(memory_id, "UPDATE")
            self._not_before(cur, valid_at, "UPDATE")
            return self._append(op="UPDATE", memory_id=memory_id, text=text, prev_text=cur["text"],
                                valid_at=valid_at, actor=actor, reason=reason, source=source, cause=cause)

    def delete(self, memory_id: str, *, at: Any = None, reason: str | None = None,
               actor: str | None = None, source: Sequence[str] = (), cause: Any = None) -> Event:
        valid_at = to_stamp(at)
        with self.transaction():
            cur = self._live(memory_id, "DELETE")
            self._not_before(cur, valid_at, "DELETE")
            return self._append(op="DELETE", memory_id=memory_id, prev_text=cur["text"], valid_at=valid_at,
                                actor=actor, reason=reason, source=source, cause=cause)

    def noop(self, memory_id: str = "", *, at: Any = None, reason: str | None = None,
             actor: str | None = None, source: Sequence[str] = (), cause: Any = None) -> Event:
        """Record a decision to change nothing (the fact is known already, or not worth keeping)."""
        memory_id_arg(memory_id)
        valid_at = to_stamp(at)
        with self.transaction():
            text = None
            if memory_id:
                text = self._live(memory_id, "NOOP")["text"]
            return self._append(op="NOOP", memory_id=memory_id, text=text, valid_at=valid_at,
                                actor=actor, reason=reason, source=source, cause=cause)

    def _unerased(self, memory_id: str, erased: str) -> Any:
        """The memory's current state; NotFound if there is none, `erased` as the error if it was erased."""
        cur = self._current(memory_id)
        if cur is None:
            raise NotFound(f"no memory {memory_id!r} in bank {self.bank!r}")
        if cur["op"] == "ERASE":
            raise InvalidOperation(erased)
        return cur

    def restore(self, memory_id: str, *, at: Any = None, reason: str | None = None,
                actor: str | None = None) -> Event:
        """Bring a deleted memory back, with a compensating event pointing at the deletion."""
        with self.transaction():
            cur = self._unerased(memory_id, f"cannot restore memory {memory_id!r}: it was erased")
            if cur["op"] != "DELETE":
                raise InvalidOperation(f"cannot restore memory {memory_id!r}: it is not deleted")
            valid_at = to_stamp(at) if at is not None else max(now_stamp(), cur["valid_at"])
            self._not_before(cur, valid_at, "RESTORE")
            return self._append(op="RESTORE", memory_id=memory_id, text=cur["prev_text"], valid_at=valid_at,
                                actor=actor, reason=reason or f"restore of the deletion at seq {cur['seq']}",
                                cause={"event_id": cur["event_id"]})

    def erase(self, memory_id: str, *, reason: str, actor: str | None = None,
              with_sources: bool = False) -> Event:
        """Privacy erasure: purge the text of every event of the memory (and, with `with_sources`,
        of the inputs it came from), leaving a tombstone that says who erased it and why.
        The only change the log ever allows to a written row; the hash chain still verifies.
        Finished before it returns: cached vectors and facts of the text dropped (unless another
        bank holds the same text), the vector index rewritten, the WAL checkpointed and truncated.
        If another connection keeps the WAL from being truncated, the erasure is recorded, this
        raises, and the next open of the file completes it."""
        self._not_in_bulk("erase")
        if not isinstance(reason, str) or not reason.strip():
            raise BadInput("erase needs a reason")
        with self.engine.purging():
            tomb = self._erase(memory_id, reason=reason, actor=actor, with_sources=with_sources)
        if self._depth == 0:
            self._rewrite_index()
            self._checkpoint(after_erase_of=memory_id)
        return tomb

    def _erase(self, memory_id: str, *, reason: str, actor: str | None, with_sources: bool) -> Event:
        with self.transaction():
            cur = self._unerased(memory_id, f"memory {memory_id!r} is already erased")
            sources = sorted({s for (src,) in self.conn.execute(
                "SELECT source FROM events WHERE bank = ? AND memory_id = ?", (self.bank, memory_id))
                for s in json.loads(src)})
            count = self.conn.execute("SELECT COUNT(*) FROM events WHERE bank = ? AND memory_id = ?",
                                      (self.bank, memory_id)).fetchone()[0]
            texts = {t for row in self.conn.execute(
                "SELECT text, prev_text FROM events WHERE bank = ? AND memory_id = ?", (self.bank, memory_id))
                for t in row if t}
            # an embedding can leak what the text said: drop the cached vectors, except where another
            # bank holds the same text (the cache is shared by text; that bank's copy leaks nothing new)
            marks = ",".join("?" * len(texts))
            elsewhere = {r[0] for r in self.conn.execute(
                f"SELECT text FROM events WHERE bank <> ? AND erased = 0 AND text IN ({marks}) UNION "
                f"SELECT prev_text FROM events WHERE bank <> ? AND erased = 0 AND prev_text IN ({marks})",
                (self.bank, *texts, self.bank, *texts))} if texts else set()
            self.conn.executemany("DELETE FROM embeddings WHERE text_hash = ?",
                                  [(text_hash(t),) for t in texts - elsewhere])
            tomb = self._append(op="ERASE", memory_id=memory_id, valid_at=max(now_stamp(), cur["valid_at"]),
                                actor=actor, reason=reason.strip(),
                                source=sources if with_sources else (),
                                cause={"purged_events": count, "purged_inputs": len(sources) if with_sources else 0})
            # committed with the erasure: if the process dies before the WAL is folded into the file
            # and the saved vector index rewritten, the next open of the file finishes both
            self.conn.execute("DELETE FROM meta WHERE key = ?", (_PENDING + self.bank,))
            self.conn.execute("INSERT INTO meta VALUES (?, ?)", (_PENDING + self.bank, memory_id))
            self.conn.execute(
                "UPDATE events SET text = NULL, prev_text = NULL, reason = NULL, cause = NULL, salt = NULL, erased = 1 "
                "WHERE bank = ? AND memory_id = ? AND op <> 'ERASE' AND erased = 0", (self.bank, memory_id))
            if with_sources and sources:
                marks = ",".join("?" * len(sources))
                said = self.conn.execute(
                    f"SELECT speaker, text, time FROM inputs WHERE bank = ? AND erased = 0 AND input_id IN ({marks})",
                    (self.bank, *sources)).fetchall()
                for speaker, text, time in said:
                    if self.conn.execute("SELECT 1 FROM inputs WHERE bank <> ? AND erased = 0 AND speaker IS ? "
                                         "AND text = ? AND time = ? LIMIT 1", (self.bank, speaker, text, time)).fetchone():
                        continue  # another bank recorded the same turn and keeps its facts
                    self.conn.execute("DELETE FROM fact_cache WHERE input_key = ?", (fact_key(speaker, text, time),))
                # the facts of the turns that read an erased input as context may repeat it
                read_it = self.conn.execute(
                    f"SELECT later.speaker, later.text, later.time FROM inputs AS gone JOIN inputs AS later "
                    f"ON later.bank = gone.bank AND later.session IS gone.session AND later.time > gone.time "
                    f"WHERE gone.bank = ? AND gone.input_id IN ({marks}) AND later.erased = 0 AND later.seq IN ("
                    f"SELECT seq FROM inputs AS n WHERE n.bank = gone.bank AND n.session IS gone.session "
                    f"AND n.time > gone.time ORDER BY n.time, n.seq LIMIT {FACT_WINDOW})",
                    (self.bank, *sources)).fetchall()
                self.conn.executemany("DELETE FROM fact_cache WHERE input_key = ?",
                                      [(fact_key(*r),) for r in read_it])
                self.conn.execute(
                    f"UPDATE inputs SET speaker = NULL, text = NULL, meta = NULL, salt = NULL, erased = 1 "
                    f"WHERE bank = ? AND erased = 0 AND input_id IN ({marks})", (self.bank, *sources))
        return tomb

    def _rewrite_index(self) -> None:
        """The bank's saved vector index without the erased vectors, before erase returns."""
        if self._view is not None:
            self._view.refresh()  # an erasure makes it rebuild and save at once
            return
        drop_saved(self.engine.index_base(), self.bank)

    def _checkpoint(self, after_erase_of: str | None = None, wait: float = 3.0) -> bool:
        """Free the space that held purged text (engines.py: a SQLite checkpoint that truncates the
        WAL; a VACUUM on PostgreSQL). Another SQLite connection inside a read keeps the WAL alive:
        wait for it up to `wait` seconds, then leave a note that the next open completes (after an
        erase, loudly)."""
        if self.engine.purge(wait):
            with self.engine.errors():
                self.conn.execute("DELETE FROM meta WHERE key LIKE 'pending_erase:%'")
            return True
        if after_erase_of is None:
            return False
        raise StoreUnavailable(
            f"memory {after_erase_of!r} is erased in the log, but another connection to {self.path} keeps its old "
            f"text in {self.path.name}-wal: close it, and the next open of the file completes the erasure")

    def _finish_pending_erase(self) -> None:
        """Complete an erasure whose process stopped before its cleanup: the saved vector indexes
        of its bank dropped (rebuilt from the log on the next search), the WAL folded and truncated."""
        pending = [r[0][len(_PENDING):] for r in self.conn.execute(
            "SELECT key FROM meta WHERE key LIKE 'pending_erase:%'")]
        for bank in pending:
            drop_saved(self.engine.index_base(), bank)
        if pending:
            self._checkpoint(wait=0.2)

    def apply(self, op: str, memory_id: str = "", text: str | None = None, *, at: Any = None,
              reason: str | None = None, actor: str | None = None, source: Sequence[str] = (),
              cause: Any = None) -> Event:
        """Apply one policy decision. A decision the store refuses (unknown id, deleted memory...)
        is recorded as a refused event with the refusal in its reason, never dropped."""
        if not isinstance(op, str):
            raise BadInput(f"op must be ADD, UPDATE, DELETE or NOOP, not {_short(op)}")
        memory_id_arg(memory_id), optional_text("memory text", text)
        op = op.upper()
        kw = dict(at=at, reason=reason, actor=actor, source=source, cause=cause)
        try:
            with self.transaction():
                if op == "ADD":
                    return self.add(text or "", **kw)
                if op == "UPDATE":
                    return self.update(memory_id, text or "", **kw)
                if op == "DELETE":
                    return self.delete(memory_id, **kw)
                if op == "NOOP":
                    return self.noop(memory_id, **kw)
                raise BadInput(f"unknown op {op!r}: expected ADD, UPDATE, DELETE or NOOP")
        except (NotFound, InvalidOperation, BadInput) as exc:
            with self.transaction():
                return self._append(op=op if op in ("ADD", "UPDATE", "DELETE", "NOOP") else "NOOP",
                                    memory_id=memory_id or "", text=text, valid_at=to_stamp(at),
                                    actor=actor, reason=f"refused: {exc}" + (f" | {reason}" if reason else ""),
                                    source=source, cause=cause, outcome="refused")

    # ---- inputs ----------------------------------------------------------------------------
    def record_input(self, speaker: str | None, text: str, time: Any, *, input_id: str | None = None,
                     session: str | None = None, meta: dict | None = None) -> tuple[Input, bool]:
        """Append a raw input; returns (input, created). Recording the same id again is a no-op
        (so ingest can resume), but the same id with other content is an error."""
        if not isinstance(text, str):
            raise BadInput("input text must be a string")
        optional_text("input text", text), optional_text("speaker", speaker), optional_text("input_id", input_id), optional_text("session", session)
        if meta is not None and not isinstance(meta, dict):
            raise BadInput(f"input meta must be a dict, not {type(meta).__name__}")
        stamp = to_stamp(time)
        input_id = input_id or uuid.uuid4().hex
        row = {"input_id": input_id, "bank": self.bank, "speaker": speaker, "text": text, "time": stamp,
               "session": session, "meta": _json(meta), "recorded_at": now_stamp(), "salt": new_salt()}
        self._writable()
        with self.transaction():
            old = self.conn.execute("SELECT * FROM inputs WHERE bank = ? AND input_id = ?",
                                    (self.bank, input_id)).fetchone()
            if old is not None:
                # an erased input cannot be compared any more (its salt is gone): it stays erased
                same = old["erased"] or content_digest(
                    (row[c] for c in INPUT_CONTENT), self.key, old["salt"]) == old["content_digest"]
                if not same or old["time"] != stamp:
                    raise BadInput(f"input {input_id!r} was already recorded with other content")
                return Input.from_row(old), False
            row["content_digest"] = content_digest((row[c] for c in INPUT_CONTENT), self.key, row["salt"])
            row["seq"] = self._read_tails(seq_of="inputs")
            row["prev_hash"] = self._input_tail
            row["hash"] = input_hash(row["prev_hash"], row, self.key)
            cols = ", ".join(row)
            self.conn.execute(f"INSERT INTO inputs ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
            self._input_tail = row["hash"]
            new = self.conn.execute("SELECT * FROM inputs WHERE seq = ?", (row["seq"],)).fetchone()
            return Input.from_row(new), True

    def inputs(self, ids: Iterable[str] | None = None) -> list[Input]:
        if ids is None:
            rows = self.conn.execute("SELECT * FROM inputs WHERE bank = ? ORDER BY seq", (self.bank,))
        else:
            ids = source_arg(ids if isinstance(ids, (str, list, tuple)) or not hasattr(ids, "__iter__") else list(ids))
            marks = ",".join("?" * len(ids))
            rows = self.conn.execute(f"SELECT * FROM inputs WHERE bank = ? AND input_id IN ({marks}) ORDER BY seq",
                                     (self.bank, *ids)) if ids else []
        return [Input.from_row(r) for r in rows]

    def earlier_inputs(self, session: str | None, before: Any, n: int) -> list[tuple[str | None, str]]:
        """(speaker, text) of the last `n` inputs of this bank's `session` recorded for times before
        `before`, oldest first, erased ones left out: the context an extraction reads."""
        rows = self.conn.execute(
            "SELECT speaker, text FROM inputs WHERE bank = ? AND session IS ? AND time < ? AND erased = 0 "
            "ORDER BY time DESC, seq DESC LIMIT ?", (self.bank, session, to_stamp(before), int(n))).fetchall()
        return [(r[0], r[1]) for r in reversed(rows)]

    # ---- fact cache: derived, shared by banks, keyed by (input, model, prompt and context) -----
    def cached_facts(self, key: str, model: str, version: str) -> list[str] | None:
        row = self.conn.execute("SELECT facts FROM fact_cache WHERE input_key = ? AND model = ? AND prompt_version = ?",
                                (key, model, version)).fetchone()
        return None if row is None else json.loads(row[0])

    def cache_facts(self, key: str, model: str, version: str, facts: list[str]) -> None:
        self.conn.execute("INSERT OR IGNORE INTO fact_cache VALUES (?, ?, ?, ?)", (key, model, version, json.dumps(facts)))

    def copy_fact_cache(self, other: "MemoryStore | Any") -> int:
        """Copy every cached extraction of another file into this one (a benchmark seeded with a
        user's facts); returns the rows read."""
        conn = other.conn if isinstance(other, MemoryStore) else other
        rows = conn.execute("SELECT input_key, model, prompt_version, facts FROM fact_cache").fetchall()
        self.conn.executemany("INSERT OR IGNORE INTO fact_cache VALUES (?, ?, ?, ?)", [tuple(r) for r in rows])
        return len(rows)

    # ---- reading ---------------------------------------------------------------------------
    def replay(self, as_of: Any = None) -> list[Memory]:
        """The bank as of a time (`valid_at <= T`; a bare date includes that whole day),
        a log position (`"@N"` or an int), or now (None)."""
        self._not_in_bulk("replay")
        cutoff = parse_cutoff(as_of)
        return self.engine.project(self.bank, cutoff)

    def get(self, memory_id: str, as_of: Any = None) -> Memory | None:
        memory_id_arg(memory_id)
        return next((m for m in self.replay(as_of) if m.id == memory_id), None) if as_of is not None \
            else self._get_now(memory_id)

    def _get_now(self, memory_id: str) -> Memory | None:
        cur = self._current(memory_id)
        if cur is None or cur["op"] not in LIVE_OPS or cur["erased"]:
            return None
        return Memory.from_row(cur)

    def last_seq(self) -> int:
        row = self.conn.execute("SELECT MAX(seq) FROM events WHERE bank = ?", (self.bank,)).fetchone()
        return row[0] or 0

    def events(self, after_seq: int = 0) -> list[Event]:
        count_arg("after_seq", after_seq)
        rows = self.conn.execute("SELECT * FROM events WHERE bank = ? AND seq > ? ORDER BY seq",
                                 (self.bank, after_seq))
        return [Event.from_row(r) for r in rows]

    def history(self, memory_id: str) -> list[Event]:
        return audit.history(self, memory_id)

    def why(self, memory_id: str) -> dict:
        return audit.why(self, memory_id)

    def verify(self, all_banks: bool = False, *, deep: bool = False, anchors: Sequence[str] = ()) -> dict:
        self._not_in_bulk("verify")
        if isinstance(anchors, str) or not isinstance(anchors, (list, tuple)):
            raise BadInput(f"anchors must be a list of SEQ:HASH strings, not {_short(anchors)}")
        return audit.verify(self, all_banks=all_banks, deep=deep, anchors=anchors)

    def head(self) -> dict:
        """The bank's newest (seq, hash), to keep elsewhere as an anchor for `verify`."""
        return audit.head(self)

    def repair(self) -> dict:
        """Rebuild the derived tables (versions and its index) of every bank from the log, put back
        any protection trigger that was dropped, and drop the saved vector indexes so they are
        rebuilt on the next search."""
        self._not_in_bulk("repair")
        with self.transaction():
            counts = self.engine.repair()
        self._view = None
        drop_saved(self.engine.index_base())
        return counts

    # ---- audit tools across banks --------------------------------------------------------
    def counterfactual(self, policy, into: str, *, until: Any = None, progress=None):
        """Replay this bank's recorded inputs through another manager `policy` (e.g.
        `policy.agent.make_policy("llm", llm)`) into the new bank `into`; see counterfactual.py."""
        from .counterfactual import counterfactual
        return counterfactual(self, policy, into, until=until, progress=progress)

    def diff(self, other: str, as_of: Any = None) -> dict:
        """How this bank and bank `other` differ: memories only in one, and the recorded turns
        the two handled differently; see diff.py."""
        from .diff import diff
        return diff(self, other, as_of=as_of)

    # ---- similarity search (the hnswlib view) -------------------------------------------
    def vector_view(self, progress=None) -> VectorView:
        """The bank's hnswlib view, opened (and caught up with the log) on first use."""
        self._not_in_bulk("search")
        if self._view is None:
            self._view = VectorView(self.conn, self.engine.index_base(), self.bank, self._embedder or default_embedder(),
                                    progress=progress, cache=not self.engine.read_only)
        return self._view

    def search(self, query: str, k: int = 10, as_of: Any = None, hybrid: bool = False) -> list[Hit]:
        """The k memories most similar to `query` among those alive at `as_of` (default now); with
        `hybrid`, the embedding's order with its tail filled by a word match (for questions: `lexical`)."""
        if not isinstance(query, str) or not query.strip():
            raise BadInput("search needs a non-empty query")
        optional_text("query", query)
        count_arg("k", k)
        cutoff = parse_cutoff(as_of)  # a bad time fails before the view catches up (and caches vectors)
        return self.vector_view().search(query, k=k, as_of=cutoff, hybrid=hybrid)

    def reindex(self, progress=None) -> int:
        """Rebuild the vector view from nothing; returns the number of versions indexed."""
        view = self.vector_view(progress=progress)
        view.rebuild()
        view.save()
        return view.index.get_current_count()

    def stats(self) -> dict:
        from . import analytics
        return analytics.stats(self)

    def export_parquet(self, out_dir: str | Path) -> dict:
        from . import analytics
        return analytics.export_parquet(self, out_dir)

