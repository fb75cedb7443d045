"""What the memory API uses of a process: :class:`memlane.services.MemoryServices` is one."""

from __future__ import annotations

from typing import Protocol

from memlane.buffer.lease import Leases
from memlane.buffer.turns import TurnBuffer
from memlane.config import Settings
from memlane.llm.embeddings import Embedder
from memlane.store.base import MemoryStore


class MemoryServices(Protocol):
    """The adapters the memory API reads and writes through."""

    @property
    def settings(self) -> Settings:
        """The settings (``embedding.dims``, ``limits``)."""

    @property
    def store(self) -> MemoryStore:
        """The memory store."""

    @property
    def embedder(self) -> Embedder:
        """The embedder (an edited version is re-embedded; an import fills missing vectors)."""

    @property
    def buffer(self) -> TurnBuffer:
        """The turn buffer (known users and their activity)."""

    @property
    def leases(self) -> Leases:
        """Per-user leases: edits and deletes run under the user's lease."""
