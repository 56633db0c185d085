"""DDL of the event log. The database itself enforces append-only: triggers refuse UPDATE and
DELETE on both tables, except the one deliberate purge of `erase` (text columns set to NULL,
`erased` flipped to 1, nothing else touched, and only once an ERASE tombstone exists)."""

SCHEMA_VERSION = 4  # 2: derived tables guarded, no insert may replace a row, a file id (db_id);
                    # 3: the projection trigger stands aside while a bulk append maintains it at once,
                    #    one index fewer on events;
                    # 4: salted content digests (erased text cannot be guessed back from them), the
                    #    inputs in a hash chain of their own, each event bound to that chain's head

OPS = ("ADD", "UPDATE", "DELETE", "NOOP", "RESTORE", "ERASE")
# Ops after which the memory is live; DELETE and ERASE end it. NOOP never changes state.
LIVE_OPS = ("ADD", "UPDATE", "RESTORE")

# The purgeable (private) columns of an event; the hash chain covers their digest, not them.
# The digest is salted with a random per-row `salt` that erase purges with the text: afterwards
# the digest still anchors the chain but no guess of the text can be checked against it.
EVENT_CONTENT = ("text", "prev_text", "reason", "cause")
INPUT_CONTENT = ("speaker", "text", "meta")

# The protection triggers `verify` expects to find (a dropped one is reported, `repair` restores it).
PROTECTION_TRIGGERS = (
    "events_no_replace", "events_no_delete", "events_no_update",
    "inputs_no_replace", "inputs_no_delete", "inputs_no_update",
    "versions_follow_log", "versions_forget_erased",
) + tuple(f"{t}_guard_{a}" for t in ("versions", "banks") for a in ("insert", "update", "delete"))

import sqlite3

_EPOCH = "((julianday({}) - 2440587.5) * 86400.0)"  # seconds; the R*Tree stores float32, rounded outward

def _guards() -> str:
    out = []
    for table in ("versions", "banks"):
        for action in ("INSERT", "UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_guard_{action.lower()} BEFORE {action} ON {table}\n"
                f"WHEN NOT EXISTS (SELECT 1 FROM projection_guard)\n"
                f"BEGIN SELECT RAISE(ABORT, 'memstore: {table} is derived from the event log and written only by "
                f"its triggers (rebuild it with memstore repair)'); END;")
    return "\n".join(out)


_GUARDS = _guards()

DDL = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL UNIQUE,
    bank           TEXT NOT NULL,
    memory_id      TEXT NOT NULL,
    op             TEXT NOT NULL CHECK (op IN {OPS}),
    outcome        TEXT NOT NULL DEFAULT 'applied' CHECK (outcome IN ('applied', 'refused')),
    text           TEXT,
    prev_text      TEXT,
    valid_at       TEXT NOT NULL,
    recorded_at    TEXT NOT NULL,
    actor          TEXT NOT NULL,
    reason         TEXT,
    source         TEXT NOT NULL DEFAULT '[]',
    cause          TEXT,
    content_digest TEXT NOT NULL,
    erased         INTEGER NOT NULL DEFAULT 0 CHECK (erased IN (0, 1)),
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL,
    salt           TEXT,  -- private: salts content_digest, purged by erase
    inputs_head    TEXT   -- chained: the hash of the bank's newest input when the event was appended
);
-- chain walk and tail lookup per bank
CREATE INDEX IF NOT EXISTS events_bank_seq ON events (bank, seq);
-- erasures per bank, counted by the vector view before every search
CREATE INDEX IF NOT EXISTS events_erase ON events (bank, seq) WHERE op = 'ERASE';
-- history of one memory, NOOPs and refusals included; its current state is the newest
-- state-changing entry (schema 1-2 had a second, partial index for that: one more random page per append)
CREATE INDEX IF NOT EXISTS events_memory ON events (bank, memory_id, seq);

-- INSERT OR REPLACE deletes the row it replaces without firing delete triggers: refuse it here
CREATE TRIGGER IF NOT EXISTS events_no_replace BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM events WHERE seq = NEW.seq) OR EXISTS (SELECT 1 FROM events WHERE event_id = NEW.event_id)
BEGIN SELECT RAISE(ABORT, 'memstore: the event log is append-only (an insert may not replace an event)'); END;

CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'memstore: the event log is append-only'); END;

CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
WHEN NOT (
    OLD.erased = 0 AND NEW.erased = 1 AND OLD.op <> 'ERASE'
    AND NEW.text IS NULL AND NEW.prev_text IS NULL AND NEW.reason IS NULL AND NEW.cause IS NULL
    AND NEW.salt IS NULL AND NEW.inputs_head IS OLD.inputs_head
    AND NEW.seq IS OLD.seq AND NEW.event_id IS OLD.event_id AND NEW.bank IS OLD.bank
    AND NEW.memory_id IS OLD.memory_id AND NEW.op IS OLD.op AND NEW.outcome IS OLD.outcome
    AND NEW.valid_at IS OLD.valid_at AND NEW.recorded_at IS OLD.recorded_at
    AND NEW.actor IS OLD.actor AND NEW.source IS OLD.source
    AND NEW.content_digest IS OLD.content_digest
    AND NEW.prev_hash IS OLD.prev_hash AND NEW.hash IS OLD.hash
    AND EXISTS (SELECT 1 FROM events t WHERE t.bank = OLD.bank AND t.memory_id = OLD.memory_id
                AND t.op = 'ERASE' AND t.seq > OLD.seq)
)
BEGIN SELECT RAISE(ABORT, 'memstore: the event log is append-only (only erase may purge text)'); END;

-- Derived, not part of the record: each memory version with the interval in which it is alive,
-- in both clocks ([event_seq, end_seq) and [start_valid, end_valid); NULL end = still alive).
-- Triggers keep it in step with every insert into the log (whoever writes), so it is never stale;
-- an R*Tree over the intervals answers "alive at T" in time proportional to the answer.
CREATE TABLE IF NOT EXISTS banks (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS versions (
    event_seq   INTEGER PRIMARY KEY,
    bank        TEXT NOT NULL,
    memory_id   TEXT NOT NULL,
    start_valid TEXT NOT NULL,
    end_valid   TEXT,
    end_seq     INTEGER,
    -- copied from the event so that a replay reads only this table (erase deletes the row)
    op TEXT NOT NULL, text TEXT, actor TEXT NOT NULL, reason TEXT
);
CREATE INDEX IF NOT EXISTS versions_open ON versions (bank, memory_id) WHERE end_seq IS NULL;
CREATE VIRTUAL TABLE IF NOT EXISTS versions_rtree USING rtree(id, seq_lo, seq_hi, t_lo, t_hi, bank_lo, bank_hi);

-- Open versions (end_seq NULL) stay out of the R*Tree: a box reaching to infinity overlaps
-- everything and spoils the tree. A version enters the tree once, when it closes.
-- The derived tables are written only while projection_guard holds a row, which the maintaining
-- triggers (and `memstore repair`) insert first and delete last: a raw write to them is refused.
-- (Virtual tables take no triggers: the R*Tree is checked by `verify --deep` instead.)
-- A bulk append (MemoryStore.bulk) holds the guard for its whole transaction and maintains the
-- projection once for all its events at the end, so the per-row trigger stands aside meanwhile.
CREATE TABLE IF NOT EXISTS projection_guard (writer TEXT NOT NULL);
{_GUARDS}

CREATE TRIGGER IF NOT EXISTS versions_follow_log AFTER INSERT ON events
WHEN NEW.outcome = 'applied' AND NEW.op <> 'NOOP' AND NOT EXISTS (SELECT 1 FROM projection_guard)
BEGIN
    INSERT INTO projection_guard VALUES ('trigger');
    INSERT OR IGNORE INTO banks (name) VALUES (NEW.bank);
    INSERT INTO versions_rtree
     SELECT v.event_seq, v.event_seq, NEW.seq, {_EPOCH.format("v.start_valid")}, {_EPOCH.format("NEW.valid_at")}, b.id, b.id
       FROM versions v JOIN banks b ON b.name = NEW.bank
      WHERE v.bank = NEW.bank AND v.memory_id = NEW.memory_id AND v.end_seq IS NULL;
    UPDATE versions SET end_seq = NEW.seq, end_valid = NEW.valid_at
     WHERE bank = NEW.bank AND memory_id = NEW.memory_id AND end_seq IS NULL;
    INSERT INTO versions (event_seq, bank, memory_id, start_valid, op, text, actor, reason)
     SELECT NEW.seq, NEW.bank, NEW.memory_id, NEW.valid_at, NEW.op, NEW.text, NEW.actor, NEW.reason
      WHERE NEW.op IN {LIVE_OPS};
    DELETE FROM projection_guard;
END;

CREATE TRIGGER IF NOT EXISTS versions_forget_erased AFTER UPDATE OF erased ON events
WHEN NEW.erased = 1
BEGIN
    INSERT INTO projection_guard VALUES ('trigger');
    DELETE FROM versions WHERE event_seq = NEW.seq;
    DELETE FROM versions_rtree WHERE id = NEW.seq;
    DELETE FROM projection_guard;
END;

-- Derived: embedding cache by text hash (see embed.py); erase drops the vectors of erased texts.
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL, text_hash TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (model, text_hash)) WITHOUT ROWID;

-- Derived: facts a model extracted from an input, keyed by (input content+time, model, prompt
-- version), so replaying another manager over the same history does not extract again.
CREATE TABLE IF NOT EXISTS fact_cache (
    input_key TEXT NOT NULL, model TEXT NOT NULL, prompt_version TEXT NOT NULL, facts TEXT NOT NULL,
    PRIMARY KEY (input_key, model, prompt_version)) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS inputs (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    input_id       TEXT NOT NULL,
    bank           TEXT NOT NULL,
    speaker        TEXT,
    text           TEXT,
    time           TEXT NOT NULL,
    session        TEXT,
    meta           TEXT,
    recorded_at    TEXT NOT NULL,
    content_digest TEXT NOT NULL,
    erased         INTEGER NOT NULL DEFAULT 0 CHECK (erased IN (0, 1)),
    salt           TEXT,  -- private: salts content_digest, purged by erase
    prev_hash      TEXT,  -- the bank's input chain (NULL only on a file upgraded from schema 3,
    hash           TEXT,  -- until a writable open chains its inputs)
    UNIQUE (bank, input_id)
);
-- the input chain's walk and head per bank
CREATE INDEX IF NOT EXISTS inputs_bank_seq ON inputs (bank, seq);

CREATE TRIGGER IF NOT EXISTS inputs_no_replace BEFORE INSERT ON inputs
WHEN EXISTS (SELECT 1 FROM inputs WHERE bank = NEW.bank AND input_id = NEW.input_id)
  OR EXISTS (SELECT 1 FROM inputs WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'memstore: the input log is append-only (an insert may not replace an input)'); END;

CREATE TRIGGER IF NOT EXISTS inputs_no_delete BEFORE DELETE ON inputs
BEGIN SELECT RAISE(ABORT, 'memstore: the input log is append-only'); END;

CREATE TRIGGER IF NOT EXISTS inputs_no_update BEFORE UPDATE ON inputs
WHEN NOT (
    NEW.seq IS OLD.seq AND NEW.input_id IS OLD.input_id AND NEW.bank IS OLD.bank
    AND NEW.time IS OLD.time AND NEW.session IS OLD.session AND NEW.recorded_at IS OLD.recorded_at
    AND NEW.content_digest IS OLD.content_digest
    AND ((  -- erase: purge the private columns, once, named by a tombstone
        OLD.erased = 0 AND NEW.erased = 1
        AND NEW.speaker IS NULL AND NEW.text IS NULL AND NEW.meta IS NULL AND NEW.salt IS NULL
        AND NEW.prev_hash IS OLD.prev_hash AND NEW.hash IS OLD.hash
        AND EXISTS (SELECT 1 FROM events e, json_each(e.source) s WHERE e.bank = OLD.bank AND e.op = 'ERASE'
                    AND s.value = OLD.input_id)
    ) OR (  -- an input of a file upgraded from schema 3 enters the chain, once
        OLD.hash IS NULL AND NEW.hash IS NOT NULL AND NEW.prev_hash IS NOT NULL
        AND NEW.erased IS OLD.erased AND NEW.speaker IS OLD.speaker AND NEW.text IS OLD.text
        AND NEW.meta IS OLD.meta AND NEW.salt IS OLD.salt
    ))
)
BEGIN SELECT RAISE(ABORT, 'memstore: the input log is append-only (only erase may purge text)'); END;
"""

# Schema 1, 2 or 3 -> 4, in one script: the maintaining triggers are replaced (1: they gain the
# guard; 2: the projection trigger stands aside during a bulk append; 3: the update guards name the
# new columns); the salt and chain columns are added, existing rows keeping NULL (their digests
# unsalted, their events unbound to inputs; a writable open chains the inputs); the newer triggers
# and tables are created.
MIGRATE = """DROP TRIGGER IF EXISTS versions_follow_log;
DROP INDEX IF EXISTS events_state_seq;
DROP TRIGGER IF EXISTS versions_forget_erased;
DROP TRIGGER IF EXISTS events_no_update;
DROP TRIGGER IF EXISTS inputs_no_update;
{add_columns}
""" + DDL

# Columns schema 4 added, added by MIGRATE where a file lacks them.
ADDED_COLUMNS = {"events": ("salt", "inputs_head"), "inputs": ("salt", "prev_hash", "hash")}


def ddl_statements() -> list[str]:
    """DDL one statement at a time (all IF NOT EXISTS), to run inside a caller's transaction."""
    out, current = [], ""
    for line in DDL.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return [s for s in out if s]
