"""Serving the metrics: one registry per exporter, in Prometheus' text format.

An exporter shows two things: the counters and histograms this process (or, in multiprocess
mode, every process writing to ``PROMETHEUS_MULTIPROC_DIR``) has counted, and the figures read
from Redis at scrape time (:class:`memlane.buffer.gauges.BufferCollector`). The HTTP service
builds one for ``/metrics`` (:mod:`service.routes_metrics`); a worker's main process builds one
over its pool's files and serves it on its own port (:mod:`worker.metrics`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from memlane.buffer.gauges import BufferCollector
from memlane.buffer.rejections import RejectionCounter
from memlane.metrics import metrics
from memlane.services import Services

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiproc_dir() -> str | None:
    """The directory of multiprocess mode, when this process runs in it."""
    return os.environ.get(MULTIPROC_ENV) or None


class _Registry:
    """Yields another registry's families (the default one) from inside ours."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def collect(self) -> Any:
        return self._inner.collect()


def build_registry(services: Services | None) -> CollectorRegistry:
    """A registry with this process's (or the multiprocess directory's) metrics and, given
    ``services``, the buffer read from Redis at scrape time."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    metrics()  # make the families exist (unlabelled counters show 0 before their first use)
    registry = CollectorRegistry(auto_describe=False)
    path = multiproc_dir()
    if path is not None:
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Registry(REGISTRY))
    if services is not None:
        registry.register(
            BufferCollector(
                lambda: services.buffer, lambda: RejectionCounter(services.redis, services.keys)
            )
        )
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of ``registry`` and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry), CONTENT_TYPE_LATEST
