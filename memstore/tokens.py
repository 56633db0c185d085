"""Bearer tokens of `memstore serve`: each scoped to banks and rights, kept in the database (so
every `serve` process over one PostgreSQL database honours the same tokens and a revocation at
once), and only as the sha256 of the token: the token itself is shown once, when it is issued.

Rights: `read` (replay, search, get, history, why, verify, head, ask), `write` (add, update,
delete, restore, observe) and `erase` (privacy erasure). Banks: names, or `*` for every bank."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from .args import BANK_NAME
from .clock import now_stamp
from .errors import BadInput, NotFound

RIGHTS = ("read", "write", "erase")
PREFIX = "mst_"

_DDL = """CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, banks TEXT NOT NULL, rights TEXT NOT NULL,
    note TEXT, created_at TEXT NOT NULL, revoked_at TEXT)"""


@dataclass(frozen=True)
class Token:
    id: str
    banks: tuple[str, ...]
    rights: tuple[str, ...]
    note: str | None
    created_at: str
    revoked_at: str | None

    def allows(self, bank: str, right: str) -> bool:
        return self.revoked_at is None and right in self.rights and ("*" in self.banks or bank in self.banks)

    def to_dict(self) -> dict:
        return {"id": self.id, "banks": list(self.banks), "rights": list(self.rights), "note": self.note,
                "created_at": self.created_at, "revoked_at": self.revoked_at}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure(conn) -> None:
    """The tokens table, made on first use (a database without tokens has none)."""
    conn.execute(_DDL)


def _row(row) -> Token:
    return Token(row["id"], tuple(json.loads(row["banks"])), tuple(json.loads(row["rights"])), row["note"],
                 row["created_at"], row["revoked_at"])


def issue(store, banks: list[str], rights: list[str], note: str | None = None) -> tuple[Token, str]:
    """A new token for `banks` with `rights`; returns it and the secret, which is not kept."""
    if not banks:
        raise BadInput("a token needs at least one bank (or '*' for all)")
    for bank in banks:
        if bank != "*" and not (isinstance(bank, str) and BANK_NAME.fullmatch(bank)):
            raise BadInput(f"bad bank name {bank!r} for a token")
    bad = [r for r in rights if r not in RIGHTS]
    if bad or not rights:
        raise BadInput(f"rights must be some of {', '.join(RIGHTS)}, not {', '.join(bad) or 'none'}")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = Token("t" + secrets.token_hex(6), tuple(sorted(set(banks))), tuple(r for r in RIGHTS if r in rights),
                  note, now_stamp(), None)
    with store.engine.errors():
        ensure(store.conn)
        store.conn.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, NULL)",
                           (token.id, _digest(secret), json.dumps(token.banks), json.dumps(token.rights), note,
                            token.created_at))
    return token, secret


def revoke(store, token_id: str) -> Token:
    with store.engine.errors():
        ensure(store.conn)
        done = store.conn.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                                  (now_stamp(), token_id)).rowcount
        row = store.conn.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
    if row is None:
        raise NotFound(f"no token {token_id!r}")
    if not done:
        raise BadInput(f"token {token_id!r} was already revoked at {row['revoked_at']}")
    return _row(row)


def listed(store) -> list[Token]:
    with store.engine.errors():
        ensure(store.conn)
        return [_row(r) for r in store.conn.execute("SELECT * FROM tokens ORDER BY created_at, id")]


def lookup(store, secret: str) -> Token | None:
    """The token a bearer secret names (revoked ones included: the caller says why it is refused)."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    row = store.conn.execute("SELECT * FROM tokens WHERE digest = ?", (_digest(secret),)).fetchone()
    return _row(row) if row else None
