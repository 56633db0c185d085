"""Errors a user can cause. The CLI prints them as one line and exits non-zero; nothing else is caught.
The input errors are ValueErrors too, as mem0's are, so code written against mem0 catches them."""


class MemstoreError(Exception):
    """Base of every error that means 'your input or your file', never 'our bug'."""

    exit_code = 1


class NotFound(MemstoreError, ValueError):
    """Unknown memory id in this bank (ids of other banks are indistinguishable from unknown ones)."""


class InvalidOperation(MemstoreError, ValueError):
    """The op does not apply to the memory's current state (e.g. updating a deleted memory)."""


class BadInput(MemstoreError, ValueError):
    """Malformed argument: timestamp, bank name, input file."""


class StoreUnavailable(MemstoreError):
    """Missing, corrupt, foreign or locked database file."""
