"""Policies over the store: the LLM runtime, the Memory Manager variants and the Answer Agent."""

from .agent import MemoryAgent

__all__ = ["MemoryAgent"]
