"""Checks of the Python API's arguments: a wrong type or value is one BadInput, never a
TypeError or AttributeError from deep inside (store and audit share them)."""

from __future__ import annotations

import re
from typing import Any

from .clock import MAX_SEQ
from .errors import BadInput

BANK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")  # always fullmatch: "$" lets a trailing newline in


def check_bank(bank: str) -> str:
    if not isinstance(bank, str) or not BANK_NAME.fullmatch(bank):
        raise BadInput(f"bad bank name {bank!r}: use 1-64 letters, digits, '_', '.', ':' or '-'")
    return bank


def optional_text(name: str, value: Any) -> str | None:
    """A str-or-None argument of the Python API, checked: a wrong type is a BadInput, not a TypeError."""
    if value is not None:
        if not isinstance(value, str):
            raise BadInput(f"{name} must be a string, not {type(value).__name__}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInput(f"{name} is not valid UTF-8 text (it holds a lone surrogate)") from None
        if "\x00" in value:  # PostgreSQL stores no NUL in text: one contract on both engines
            raise BadInput(f"{name} holds a NUL character, which memstore does not store")
    return value


def memory_id_arg(value: Any) -> str:
    if not isinstance(value, str):
        raise BadInput(f"a memory id must be a string, not {type(value).__name__}")
    return optional_text("a memory id", value)


def source_arg(value: Any) -> list[str]:
    """The input ids a change came from: a list (or tuple) of strings; a bare string is refused
    rather than read as a list of its characters."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"source must be a list of input ids (strings), not {short(value)}")
    for v in value:
        optional_text("an input id", v)
    return list(value)


def count_arg(name: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_SEQ:
        raise BadInput(f"{name} must be a whole number from {minimum} to {MAX_SEQ}, not {short(value)}")
    return value


def short(value: Any) -> str:
    return " ".join(repr(value)[:60].split())
