"""A Datasette plugin for `memstore browse`: the SQL function `memstore_cutoff(text)` turns a
user's time into the log's cutoff exactly as `replay --as-of` does (memstore.clock), so the
canned query "bank as of" and `replay` show the same bank for any way of writing the time
("2023-04-01", "2023-04-01T00:00", "2023-04-01 09:30+02:00"). A time that does not parse gives
NULL, which matches no memory."""

from __future__ import annotations

from datasette import hookimpl

from memstore.clock import to_stamp
from memstore.errors import BadInput


def cutoff(text):
    if text is None:
        return None
    try:
        return to_stamp(str(text), end_of_day=True)
    except BadInput:
        return None


@hookimpl
def prepare_connection(conn):
    conn.create_function("memstore_cutoff", 1, cutoff, deterministic=True)
