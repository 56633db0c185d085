"""DDL of the event log. The database itself enforces append-only: triggers refuse UPDATE and
DELETE on both tables, except the one deliberate purge of `erase` (text columns set to NULL,
`erased` flipped to 1, nothing else touched, and only once an ERASE tombstone exists)."""

SCHEMA_VERSION = 1

OPS = ("ADD", "UPDATE", "DELETE", "NOOP", "RESTORE", "ERASE")
# Ops after which the memory is live; DELETE and ERASE end it. NOOP never changes state.
LIVE_OPS = ("ADD", "UPDATE", "RESTORE")

# The purgeable (private) columns of an event; the hash chain covers their digest, not them.
EVENT_CONTENT = ("text", "prev_text", "reason", "cause")
INPUT_CONTENT = ("speaker", "text", "meta")

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
    hash           TEXT NOT NULL
);
-- chain walk and tail lookup per bank
CREATE INDEX IF NOT EXISTS events_bank_seq ON events (bank, seq);
-- history of one memory, NOOPs and refusals included
CREATE INDEX IF NOT EXISTS events_memory ON events (bank, memory_id, seq);
-- state-changing events only: current state and as-of-position projection
CREATE INDEX IF NOT EXISTS events_state_seq ON events (bank, memory_id, seq)
    WHERE outcome = 'applied' AND op <> 'NOOP';
-- as-of-time projection: per memory, the last state event with valid_at <= T is one seek
CREATE INDEX IF NOT EXISTS events_state_time ON events (bank, memory_id, valid_at, seq)
    WHERE outcome = 'applied' AND op <> 'NOOP';

CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'memstore: the event log is append-only'); END;

CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
WHEN NOT (
    OLD.erased = 0 AND NEW.erased = 1 AND OLD.op <> 'ERASE'
    AND NEW.text IS NULL AND NEW.prev_text IS NULL AND NEW.reason IS NULL AND NEW.cause IS NULL
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
    UNIQUE (bank, input_id)
);

CREATE TRIGGER IF NOT EXISTS inputs_no_delete BEFORE DELETE ON inputs
BEGIN SELECT RAISE(ABORT, 'memstore: the input log is append-only'); END;

CREATE TRIGGER IF NOT EXISTS inputs_no_update BEFORE UPDATE ON inputs
WHEN NOT (
    OLD.erased = 0 AND NEW.erased = 1
    AND NEW.speaker IS NULL AND NEW.text IS NULL AND NEW.meta IS NULL
    AND NEW.seq IS OLD.seq AND NEW.input_id IS OLD.input_id AND NEW.bank IS OLD.bank
    AND NEW.time IS OLD.time AND NEW.session IS OLD.session AND NEW.recorded_at IS OLD.recorded_at
    AND NEW.content_digest IS OLD.content_digest
)
BEGIN SELECT RAISE(ABORT, 'memstore: the input log is append-only (only erase may purge text)'); END;
"""
