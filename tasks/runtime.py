"""Per-process dependencies for tasks, built once from settings (never at import time)."""

from __future__ import annotations

import threading

from memlane.config import Settings, load_settings
from memlane.logging import configure_logging
from memlane.services import Services
from pipelines.consolidate import ConsolidationPorts

_lock = threading.Lock()
_services: Services | None = None


def install(settings: Settings) -> Services:
    """Use these settings for this process's tasks (the worker calls it at start-up)."""
    global _services
    with _lock:
        _services = Services(settings)
        configure_logging(settings.log)
        return _services


def services() -> Services:
    """This process's services, built from the environment on first use."""
    with _lock:
        current = _services
    return current if current is not None else install(load_settings())


def consolidation_ports(svc: Services) -> ConsolidationPorts:
    """The ports of the consolidation pipeline, in raw mode until an extractor is set."""
    return ConsolidationPorts(
        buffer=svc.buffer,
        leases=svc.leases,
        store=svc.store,
        embedder=svc.embedder,
        attempts=svc.attempts,
    )
