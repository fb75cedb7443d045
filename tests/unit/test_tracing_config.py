"""Tracing without its packages fails at start-up with one line naming the setting."""

from __future__ import annotations

import sys

import pytest

from memlane.config_sections import TracingSettings
from memlane.errors import ConfigError
from memlane.tracing import configure_tracing, shutdown


def test_tracing_off_needs_nothing() -> None:
    """With tracing off nothing is imported or configured."""
    assert configure_tracing(TracingSettings(), "memlane-test") is False


def test_enabled_without_the_otel_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing SDK (None in sys.modules makes its import fail) is a ConfigError naming
    ``tracing.enabled`` and the extra to install."""
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.resources", None)
    with pytest.raises(ConfigError, match=r"tracing\.enabled.*memlane\[otel\]"):
        configure_tracing(TracingSettings(enabled=True), "memlane-test")


def test_an_otlp_endpoint_without_its_exporter_names_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``tracing.otlp_endpoint`` without the OTLP exporter package says which one to install."""
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    settings = TracingSettings(enabled=True, otlp_endpoint="http://127.0.0.1:4318/v1/traces")
    try:
        with pytest.raises(ConfigError, match=r"tracing\.otlp_endpoint.*otlp-proto-http"):
            configure_tracing(settings, "memlane-test")
    finally:
        shutdown()
