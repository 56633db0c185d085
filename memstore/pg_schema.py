"""DDL of the event log on PostgreSQL: the same tables, columns and rules as schema.py's SQLite
file, in PostgreSQL's own terms.

- The guards are PL/pgSQL triggers: UPDATE, DELETE and TRUNCATE of the logs are refused, except
  erase's one purge (the same conditions as on SQLite); the derived table is written only by its
  maintaining trigger and `repair`, which mark their transaction with the setting
  `memstore.projection` (SQLite marks it with a row in `projection_guard`).
- As-of reads use range types with GiST indexes, PostgreSQL's native fit for "alive at T":
  each version carries `seqs` = [event_seq, end_seq) and `valid` = [start_valid, end_valid), both
  generated from its columns, so they cannot disagree with them. The time range is over text in
  the "C" collation, the byte order of the stored stamps (the order SQLite compares them in), so
  both engines answer the same boundaries.
- Sequences number events and inputs (seq order within a bank is its chain order: a bank's
  writers are serialised by a lock on its row in `heads`, different banks append in parallel).
Every text that is compared or sorted (banks, ids, stamps) is in the "C" collation: a database
created with another locale would otherwise order stamps by its language rules."""

from __future__ import annotations

from .schema import LIVE_OPS, OPS

SCHEMA_VERSION = 1  # of the PostgreSQL layout (the SQLite file has its own numbering)

# The protection triggers `verify` expects to find (a dropped one is reported, `repair` restores it).
PROTECTION_TRIGGERS = (
    "events_no_delete", "events_no_update", "events_no_truncate",
    "inputs_no_delete", "inputs_no_update", "inputs_no_truncate",
    "versions_follow_log", "versions_forget_erased",
    "versions_guard", "versions_guard_truncate",
)

_C = 'TEXT COLLATE "C"'


def _refuse(name: str, table: str, when: str, message: str, level: str = "ROW") -> str:
    return (f"CREATE OR REPLACE TRIGGER {name} BEFORE {when} ON {table} FOR EACH {level} "
            f"EXECUTE FUNCTION memstore_refuse('{message}');")


DDL = f"""
CREATE EXTENSION IF NOT EXISTS btree_gist;
DO $$ BEGIN
    CREATE TYPE textrange AS RANGE (subtype = text, collation = "C");
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE SEQUENCE IF NOT EXISTS event_seqs;
CREATE SEQUENCE IF NOT EXISTS input_seqs;
-- one row per bank, locked by each transaction that writes the bank: one bank's appends are
-- serialised (its chain has one tail), other banks' run in parallel
CREATE TABLE IF NOT EXISTS heads (bank {_C} PRIMARY KEY);

CREATE TABLE IF NOT EXISTS events (
    seq            BIGINT PRIMARY KEY,
    event_id       TEXT NOT NULL UNIQUE,
    bank           {_C} NOT NULL,
    memory_id      {_C} NOT NULL,
    op             TEXT NOT NULL CHECK (op IN {OPS}),
    outcome        TEXT NOT NULL DEFAULT 'applied' CHECK (outcome IN ('applied', 'refused')),
    text           TEXT,
    prev_text      TEXT,
    valid_at       {_C} NOT NULL,
    recorded_at    {_C} NOT NULL,
    actor          TEXT NOT NULL,
    reason         TEXT,
    source         TEXT NOT NULL DEFAULT '[]',
    cause          TEXT,
    content_digest TEXT NOT NULL,
    erased         INTEGER NOT NULL DEFAULT 0 CHECK (erased IN (0, 1)),
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL,
    salt           TEXT,
    inputs_head    TEXT
);
CREATE INDEX IF NOT EXISTS events_bank_seq ON events (bank, seq);
CREATE INDEX IF NOT EXISTS events_erase ON events (bank, seq) WHERE op = 'ERASE';
CREATE INDEX IF NOT EXISTS events_memory ON events (bank, memory_id, seq);

CREATE TABLE IF NOT EXISTS inputs (
    seq            BIGINT PRIMARY KEY,
    input_id       {_C} NOT NULL,
    bank           {_C} NOT NULL,
    speaker        TEXT,
    text           TEXT,
    time           {_C} NOT NULL,
    session        {_C},
    meta           TEXT,
    recorded_at    {_C} NOT NULL,
    content_digest TEXT NOT NULL,
    erased         INTEGER NOT NULL DEFAULT 0 CHECK (erased IN (0, 1)),
    salt           TEXT,
    prev_hash      TEXT,
    hash           TEXT,
    UNIQUE (bank, input_id)
);
CREATE INDEX IF NOT EXISTS inputs_bank_seq ON inputs (bank, seq);

-- Derived: each memory version with the interval in which it is alive, in both clocks.
CREATE TABLE IF NOT EXISTS versions (
    event_seq   BIGINT PRIMARY KEY,
    bank        {_C} NOT NULL,
    memory_id   {_C} NOT NULL,
    start_valid {_C} NOT NULL,
    end_valid   {_C},
    end_seq     BIGINT,
    op TEXT NOT NULL, text TEXT, actor TEXT NOT NULL, reason TEXT,
    seqs  int8range GENERATED ALWAYS AS (int8range(event_seq, end_seq)) STORED,
    valid textrange GENERATED ALWAYS AS (textrange(start_valid, end_valid)) STORED
);
-- At most one open version per memory: the trigger closes it through this index. (Until
-- autovacuum's first ANALYZE of a new database the planner may take a GiST index for that
-- lookup and scan the bank's versions; from the first statistics on it takes this one.)
CREATE UNIQUE INDEX IF NOT EXISTS versions_open_one ON versions (bank, memory_id) WHERE end_seq IS NULL;
CREATE INDEX IF NOT EXISTS versions_by_seq ON versions USING gist (bank, seqs);
CREATE INDEX IF NOT EXISTS versions_by_time ON versions USING gist (bank, valid);

CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL, text_hash TEXT NOT NULL, vector BYTEA NOT NULL, PRIMARY KEY (model, text_hash));
CREATE TABLE IF NOT EXISTS fact_cache (
    input_key TEXT NOT NULL, model TEXT NOT NULL, prompt_version TEXT NOT NULL, facts TEXT NOT NULL,
    PRIMARY KEY (input_key, model, prompt_version));

CREATE OR REPLACE FUNCTION memstore_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation'; END $$;

CREATE OR REPLACE FUNCTION memstore_events_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.erased = 0 AND NEW.erased = 1 AND OLD.op <> 'ERASE'
       AND NEW.text IS NULL AND NEW.prev_text IS NULL AND NEW.reason IS NULL AND NEW.cause IS NULL
       AND NEW.salt IS NULL
       AND (NEW.seq, NEW.event_id, NEW.bank, NEW.memory_id, NEW.op, NEW.outcome, NEW.valid_at,
            NEW.recorded_at, NEW.actor, NEW.source, NEW.content_digest, NEW.prev_hash, NEW.hash, NEW.inputs_head)
           IS NOT DISTINCT FROM
           (OLD.seq, OLD.event_id, OLD.bank, OLD.memory_id, OLD.op, OLD.outcome, OLD.valid_at,
            OLD.recorded_at, OLD.actor, OLD.source, OLD.content_digest, OLD.prev_hash, OLD.hash, OLD.inputs_head)
       AND EXISTS (SELECT 1 FROM events t WHERE t.bank = OLD.bank AND t.memory_id = OLD.memory_id
                   AND t.op = 'ERASE' AND t.seq > OLD.seq)
    THEN RETURN NEW; END IF;
    RAISE EXCEPTION 'memstore: the event log is append-only (only erase may purge text)'
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE OR REPLACE FUNCTION memstore_inputs_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.seq, NEW.input_id, NEW.bank, NEW.time, NEW.session, NEW.recorded_at, NEW.content_digest,
        NEW.prev_hash, NEW.hash)
       IS NOT DISTINCT FROM
       (OLD.seq, OLD.input_id, OLD.bank, OLD.time, OLD.session, OLD.recorded_at, OLD.content_digest,
        OLD.prev_hash, OLD.hash)
       AND OLD.erased = 0 AND NEW.erased = 1
       AND NEW.speaker IS NULL AND NEW.text IS NULL AND NEW.meta IS NULL AND NEW.salt IS NULL
       AND EXISTS (SELECT 1 FROM events e WHERE e.bank = OLD.bank AND e.op = 'ERASE'
                   AND jsonb_exists(e.source::jsonb, OLD.input_id))
    THEN RETURN NEW; END IF;
    RAISE EXCEPTION 'memstore: the input log is append-only (only erase may purge text)'
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE OR REPLACE FUNCTION memstore_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF COALESCE(current_setting('memstore.projection', true), '') = '' THEN
        RAISE EXCEPTION 'memstore: % is derived from the event log and written only by its triggers '
                        '(rebuild it with memstore repair)', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION memstore_follow_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('memstore.projection', true) = 'bulk' THEN
        RETURN NULL;  -- a bulk block keeps the projection once, at its end (MemoryStore.bulk)
    END IF;
    PERFORM set_config('memstore.projection', 'trigger', true);
    IF NEW.op <> 'ADD' THEN  -- a new memory has no version to close
        UPDATE versions SET end_seq = NEW.seq, end_valid = NEW.valid_at
         WHERE bank = NEW.bank AND memory_id = NEW.memory_id AND end_seq IS NULL;
    END IF;
    IF NEW.op IN {LIVE_OPS} THEN
        INSERT INTO versions (event_seq, bank, memory_id, start_valid, op, text, actor, reason)
        VALUES (NEW.seq, NEW.bank, NEW.memory_id, NEW.valid_at, NEW.op, NEW.text, NEW.actor, NEW.reason);
    END IF;
    PERFORM set_config('memstore.projection', '', true);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION memstore_forget_erased() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('memstore.projection', 'trigger', true);
    DELETE FROM versions WHERE event_seq = NEW.seq;
    PERFORM set_config('memstore.projection', '', true);
    RETURN NULL;
END $$;

{_refuse("events_no_delete", "events", "DELETE", "memstore: the event log is append-only")}
{_refuse("events_no_truncate", "events", "TRUNCATE", "memstore: the event log is append-only", "STATEMENT")}
CREATE OR REPLACE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION memstore_events_update();
{_refuse("inputs_no_delete", "inputs", "DELETE", "memstore: the input log is append-only")}
{_refuse("inputs_no_truncate", "inputs", "TRUNCATE", "memstore: the input log is append-only", "STATEMENT")}
CREATE OR REPLACE TRIGGER inputs_no_update BEFORE UPDATE ON inputs
    FOR EACH ROW EXECUTE FUNCTION memstore_inputs_update();
CREATE OR REPLACE TRIGGER versions_guard BEFORE INSERT OR UPDATE OR DELETE ON versions
    FOR EACH ROW EXECUTE FUNCTION memstore_guard();
CREATE OR REPLACE TRIGGER versions_guard_truncate BEFORE TRUNCATE ON versions
    FOR EACH STATEMENT EXECUTE FUNCTION memstore_guard();
CREATE OR REPLACE TRIGGER versions_follow_log AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.outcome = 'applied' AND NEW.op <> 'NOOP') EXECUTE FUNCTION memstore_follow_log();
CREATE OR REPLACE TRIGGER versions_forget_erased AFTER UPDATE OF erased ON events
    FOR EACH ROW WHEN (NEW.erased = 1) EXECUTE FUNCTION memstore_forget_erased();
"""
