"""memlane: long-term memory for chatbots, run as a background service."""

from memlane.client import MemoryClient
from memlane.config import Settings, load_settings
from memlane.models import Memory, MemoryKind, MemoryStatus, Role
from memlane.ranking import RetrievedMemory
from memlane.retrieval import format_context

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
