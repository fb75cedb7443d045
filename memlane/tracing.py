"""Optional OpenTelemetry tracing of one turn's path: add_turns -> dispatch -> consolidate -> store.

Off unless ``tracing.enabled`` (and the ``otel`` extra installed): then every function here is a
cheap no-op and ``opentelemetry`` is never imported. The path crosses Redis and Celery:

- ``add_turns`` runs in a span and stores its ``traceparent`` with each buffered turn;
- dispatch runs in a span (beat starts it, not a turn) and puts its context in the Celery
  headers of each consolidate task it sends (:func:`headers`);
- the consolidate task continues that context (:func:`from_headers`); each batch's span links
  to the ``add_turns`` spans of its turns, and the store write is a child of the batch's span.

Spans carry no user id and no content (as the metrics' labels): counts and batch sizes only.
Each process calls :func:`configure_tracing` once (a worker in each pool process, after the
fork: an exporter's thread does not survive ``fork``).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Sequence
from typing import Any

from memlane.config_sections import TracingSettings
from memlane.errors import ConfigError

_state: dict[str, Any] = {}  # the tracer once configured (one per process, like the metrics)
TRACEPARENT = "traceparent"


def configure_tracing(settings: TracingSettings, service: str) -> bool:
    """Install a tracer provider for this process when tracing is enabled; True if it is."""
    if not settings.enabled:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError as e:
        raise ConfigError(
            "tracing.enabled needs the otel extra: pip install 'memlane[otel]'"
        ) from e

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    processor: SpanProcessor
    if settings.otlp_endpoint:
        try:
            otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        except ImportError as e:
            raise ConfigError(
                "tracing.otlp_endpoint needs opentelemetry-exporter-otlp-proto-http installed"
            ) from e
        processor = BatchSpanProcessor(otlp.OTLPSpanExporter(endpoint=settings.otlp_endpoint))
    else:  # one JSON object a line, appended to a file (or stderr): for a look, not production
        out = open(settings.console_path, "a", encoding="utf-8") if settings.console_path else None  # noqa: SIM115
        _state["out"] = out  # closed by shutdown()
        exporter = ConsoleSpanExporter(
            out=out or _stderr(), formatter=lambda span: span.to_json(indent=None) + "\n"
        )
        processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    _state["provider"] = provider
    _state["tracer"] = provider.get_tracer("memlane")
    return True


def _stderr() -> Any:
    import sys

    return sys.stderr


def enabled() -> bool:
    """Whether this process traces."""
    return "tracer" in _state


@contextlib.contextmanager
def span(
    name: str,
    parent: Any = None,
    links: Sequence[str | None] = (),
    **attributes: int | str,
) -> Iterator[None]:
    """A span named ``name`` (a child of the current one, or of ``parent``), linked to the spans
    whose ``traceparent`` strings are given; nothing at all when tracing is off."""
    tracer = _state.get("tracer")
    if tracer is None:
        yield
        return
    from opentelemetry import trace

    linked = [trace.Link(c) for c in _span_contexts(links)]
    with tracer.start_as_current_span(name, context=parent, links=linked, attributes=attributes):
        yield


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (None when tracing is off)."""
    return headers().get(TRACEPARENT)


def headers() -> dict[str, str]:
    """The current context as W3C headers, for a Celery message (empty when tracing is off)."""
    if not enabled():
        return {}
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def from_headers(carrier: Any) -> Any:
    """The context a message's headers carry (anything with ``get``: a dict, a Celery task's
    ``request``); None when tracing is off or there is none."""
    value = carrier.get(TRACEPARENT) if enabled() else None
    if not value:
        return None
    from opentelemetry.propagate import extract

    return extract({TRACEPARENT: str(value)})


def _span_contexts(parents: Sequence[str | None]) -> list[Any]:
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    found = {}
    for value in parents:
        if value:
            ctx = trace.get_current_span(extract({TRACEPARENT: value})).get_span_context()
            if ctx.is_valid:
                found[(ctx.trace_id, ctx.span_id)] = ctx
    return list(found.values())


def shutdown() -> None:
    """Flush and stop this process's exporter."""
    provider = _state.pop("provider", None)
    _state.pop("tracer", None)
    if provider is not None:
        provider.shutdown()
    out = _state.pop("out", None)
    if out is not None:
        out.close()
