"""Per-process dependencies for tasks, built once from settings (never at import time)."""

from __future__ import annotations

import os
import socket
import threading
import uuid

from memlane.buffer.attempts import RedisAttempts
from memlane.buffer.extraction_cache import RedisExtractionCache
from memlane.buffer.usage import UsageRecorder
from memlane.config import Settings, load_settings
from memlane.llm.chat import ChatModel
from memlane.logging import configure_logging, get_logger
from memlane.redaction import Redactor
from memlane.services import Services
from memlane.store.fusion import Fusion
from pipelines.consolidate import ConsolidationPorts
from pipelines.extractor import ExtractorOptions, LLMExtractor

log = get_logger(__name__)
_lock = threading.Lock()
_services: Services | None = None
# This worker's id, made in the main process before the pool forks, so the pool shares it:
# attempts started here are recorded under it, and a deliberate stop marks it.
_worker_id = ""
# (pid, id(services)) -> (services, extractor); holding the services keeps their id unique.
_extractors: dict[tuple[int, int], tuple[Services, LLMExtractor]] = {}


def install(settings: Settings) -> Services:
    """Use these settings for this process's tasks (the worker calls it at start-up)."""
    global _services, _worker_id
    with _lock:
        _services = Services(settings)
        configure_logging(settings.log, redactor=Redactor.from_settings(settings))
        _worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        if settings.llm.configured:
            log.info("llm_mode", model=settings.llm.model, base_url=settings.llm.base_url)
        else:
            log.info("no LLM configured: raw mode")
        return _services


def services() -> Services:
    """This process's services, built from the environment on first use."""
    with _lock:
        current = _services
    return current if current is not None else install(load_settings())


def worker_id() -> str:
    """The id of this worker (main process and pool), set by :func:`install`."""
    with _lock:
        return _worker_id


def attempts(svc: Services) -> RedisAttempts:
    """The attempt counter, holding attempts on behalf of this worker."""
    return RedisAttempts(svc.redis, svc.keys, holder=worker_id())


def build_extractor(svc: Services) -> LLMExtractor:
    """A new LLM extractor over these services (chat model, cache, usage counters)."""
    settings = svc.settings
    return LLMExtractor(
        chat=ChatModel(settings.llm),
        store=svc.store,
        embedder=svc.embedder,
        cache=RedisExtractionCache(svc.redis, svc.keys, settings.batching.extraction_cache_ttl_s),
        tz=settings.tz,
        usage=UsageRecorder(svc.redis, svc.keys),
        options=ExtractorOptions(fusion=Fusion.of(settings.retrieval)),
    )


def extractor(svc: Services) -> LLMExtractor | None:
    """This process's extractor for ``svc``: None in raw mode; rebuilt after a fork."""
    if not svc.settings.llm.configured:
        return None
    key = (os.getpid(), id(svc))
    with _lock:
        if key not in _extractors:
            _extractors[key] = (svc, build_extractor(svc))
        return _extractors[key][1]


def consolidation_ports(svc: Services) -> ConsolidationPorts:
    """The ports of the consolidation pipeline: LLM extraction when configured, else raw mode."""
    counter = attempts(svc)
    return ConsolidationPorts(
        buffer=svc.buffer,
        leases=svc.leases,
        store=svc.store,
        embedder=svc.embedder,
        attempts=counter,
        extractor=extractor(svc),
        redactor=Redactor.from_settings(svc.settings),
        stop_requested=counter.stop_requested,
    )
