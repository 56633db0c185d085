"""memstore: an event-sourced memory store for LLM agents."""

from .clock import Cutoff
from .errors import BadInput, InvalidOperation, MemstoreError, NotFound, StoreUnavailable
from .records import Event, Input, Memory
from .store import MemoryStore

__all__ = ["MemoryStore", "Event", "Memory", "Input", "Cutoff", "MemstoreError", "NotFound",
           "InvalidOperation", "BadInput", "StoreUnavailable"]
