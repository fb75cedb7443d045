"""memlane: long-term memory for chatbots, run as a background service."""

from memlane.client import MemoryClient
from memlane.config import Settings, load_settings
from memlane.models import Memory, MemoryKind, MemoryStatus, Role
from memlane.retrieval.context import format_context
from memlane.retrieval.ranking import RetrievedMemory

__all__ = [
    "Memory",
    "MemoryClient",
    "MemoryKind",
    "MemoryStatus",
    "RetrievedMemory",
    "Role",
    "Settings",
    "format_context",
    "load_settings",
]
