"""The wiring of a worker process: every port the tasks hand to the pipelines, in one place.

A :class:`Wiring` is built once per process from the settings (``worker.app.create_app`` builds
it and attaches it to the Celery app; tests and benchmarks build their own). It holds the
process's :class:`~memlane.services.Services` (Redis, buffer, leases, store, embedder; each
created on first use and again after a fork) and the process's models: one chat model, and the
LLM extractor over it, per process id, so a pool child never uses its parent's HTTP clients. The
chat model gets the prompts' output schemas and shares the structured output format it learns
for its provider through Redis (:mod:`memlane.buffer.llm_formats`), and the provider's rpm/tpm
window when ``llm.rpm`` or ``llm.tpm`` is set (:mod:`memlane.buffer.provider_limits`).
Nothing here is global and nothing imports Celery.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from memlane.buffer.attempts import RedisAttempts
from memlane.buffer.extraction_cache import RedisExtractionCache
from memlane.buffer.forgetting import WriteGuard, guarded_write
from memlane.buffer.llm_formats import RedisOutputFormats
from memlane.buffer.nightly import NightlyFanOut
from memlane.buffer.rejections import RejectionCounter
from memlane.buffer.status import TaskStatus
from memlane.buffer.unreflected import UnreflectedCounter
from memlane.buffer.usage import UsageRecorder
from memlane.config import Settings
from memlane.errors import LLMNotConfigured
from memlane.llm.chat import ChatModel
from memlane.redaction import Redactor
from memlane.services import Services
from memlane.store.fusion import Fusion
from pipelines.consolidation.run import ConsolidationPorts
from pipelines.extraction.run import ExtractorOptions, LLMExtractor
from pipelines.fanout import WAVE_SIZE, NightlyJob
from pipelines.maintenance.run import MaintenancePorts
from pipelines.prompts.schemas import OUTPUT_SCHEMAS
from pipelines.reflection.run import EarlyReflection, ReflectionPorts, ReflectOptions


@dataclass
class _Models:
    """One process's chat model, and the extractor over it (built on first use)."""

    chat: ChatModel
    extractor: LLMExtractor | None = None


class Wiring:
    """Builds the pipelines' ports from the settings for one process (and its pool children).

    ``worker_id`` names this worker in the attempt counters; it is made when the wiring is
    built, in the worker's main process before the pool forks, so the pool shares it.
    """

    def __init__(
        self, settings: Settings, services: Services | None = None, worker_id: str | None = None
    ) -> None:
        self.settings = settings
        self.services = services if services is not None else Services(settings)
        self._own_services = services is None
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._models: dict[int, _Models] = {}

    # -- models: one per process, None in raw mode ----------------------------------------------

    def chat_model(self) -> ChatModel | None:
        """This process's chat model (None in raw mode); a fork gets its own."""
        models = self._process_models()
        return models.chat if models is not None else None

    def extractor(self) -> LLMExtractor | None:
        """This process's LLM extractor (None in raw mode); a fork gets its own."""
        models = self._process_models()
        if models is None:
            return None
        with self._lock:
            if models.extractor is None:
                models.extractor = self.build_extractor(models.chat)
            return models.extractor

    def build_extractor(self, chat: ChatModel | None = None) -> LLMExtractor:
        """A new extractor (on this process's chat model unless one is given)."""
        settings, svc = self.settings, self.services
        model = chat or self.chat_model()
        if model is None:
            raise LLMNotConfigured("extraction needs a chat model; none is configured (raw mode)")
        return LLMExtractor(
            chat=model,
            store=svc.store,
            embedder=svc.embedder,
            cache=RedisExtractionCache(
                svc.redis, svc.keys, settings.batching.extraction_cache_ttl_s
            ),
            tz=settings.tz,
            usage=self.usage(),
            options=ExtractorOptions(fusion=Fusion.of(settings.retrieval)),
            checks=RejectionCounter(svc.redis, svc.keys),
        )

    def _process_models(self) -> _Models | None:
        if not self.settings.llm.configured:
            return None
        pid = os.getpid()
        with self._lock:
            models = self._models.get(pid)
            if models is None:
                self._models = {pid: _Models(self._new_chat_model())}  # a parent's stay his
                models = self._models[pid]
            return models

    def _new_chat_model(self) -> ChatModel:
        """A chat model with the prompts' output schemas, sharing what it learns in Redis."""
        llm, svc = self.settings.llm, self.services
        formats = RedisOutputFormats(svc.redis, svc.keys, llm.response_format_ttl_s)
        limiter = svc.provider_limiter if (llm.rpm or llm.tpm) else None
        return ChatModel(llm, schemas=OUTPUT_SCHEMAS, formats=formats, limiter=limiter)

    # -- Redis adapters -------------------------------------------------------------------------

    def attempts(self) -> RedisAttempts:
        """The attempt counters, holding attempts on behalf of this worker."""
        return RedisAttempts(self.services.redis, self.services.keys, holder=self.worker_id)

    def usage(self) -> UsageRecorder:
        """The token usage counters."""
        return UsageRecorder(self.services.redis, self.services.keys)

    def unreflected(self) -> UnreflectedCounter:
        """The unreflected-observation counts and the early-reflection marker."""
        return UnreflectedCounter(self.services.redis, self.services.keys)

    def night(self, job: NightlyJob) -> NightlyFanOut:
        """The claims of a nightly job."""
        return NightlyFanOut(self.services.redis, self.services.keys, job, WAVE_SIZE)

    def task_status(self) -> TaskStatus:
        """The task status records (``memlane reflect --wait``)."""
        return TaskStatus(self.services.redis, self.services.keys)

    def write_guard(self, user_id: str, token: str) -> WriteGuard:
        """Store writes under this lease: refused, or undone, if the user is forgotten meanwhile."""
        svc = self.services
        return lambda ids: guarded_write(svc.leases, svc.store, user_id, token, ids)

    # -- the pipelines' ports -------------------------------------------------------------------

    def consolidation_ports(self) -> ConsolidationPorts:
        """Consolidation's ports: LLM extraction when a model is configured, else raw mode."""
        svc = self.services
        counter = self.attempts()
        return ConsolidationPorts(
            buffer=svc.buffer,
            leases=svc.leases,
            store=svc.store,
            embedder=svc.embedder,
            attempts=counter,
            extractor=self.extractor(),
            redactor=Redactor.from_settings(self.settings),
            stop_requested=counter.stop_requested,
            keep_raw=self.settings.batching.keep_raw_turns,
        )

    def reflection_ports(self) -> ReflectionPorts:
        """Reflection's ports; raises :class:`LLMNotConfigured` in raw mode."""
        chat = self.chat_model()
        if chat is None:
            raise LLMNotConfigured("reflection needs a chat model; none is configured (raw mode)")
        svc = self.services
        return ReflectionPorts(
            store=svc.store,
            chat=chat,
            embedder=svc.embedder,
            tz=self.settings.tz,
            usage=self.usage(),
            counter=self.unreflected(),
        )

    def reflect_options(self) -> ReflectOptions:
        """The configured LLM budget of one reflection run."""
        return ReflectOptions(max_llm_calls=self.settings.reflection.max_llm_calls)

    def maintenance_ports(self) -> MaintenancePorts:
        """Maintenance's ports (its LLM part is skipped in raw mode)."""
        return MaintenancePorts(
            store=self.services.store,
            tz=self.settings.tz,
            chat=self.chat_model(),
            usage=self.usage(),
        )

    def early_reflection(self, send: Callable[[str], None]) -> EarlyReflection | None:
        """The early-reflection trigger sending with ``send``; None in raw mode."""
        if not self.settings.llm.configured:
            return None
        return EarlyReflection(self.unreflected(), self.settings.reflection.early_threshold, send)

    # -- life cycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close this process's models, and the services if the wiring made them."""
        with self._lock:
            models = self._models.pop(os.getpid(), None)
        if models is not None:
            models.chat.close()
        if self._own_services:
            self.services.close()

    def __enter__(self) -> Wiring:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
