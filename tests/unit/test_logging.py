"""Log redaction: keys, tokens and passwords never reach the rendered output."""

from __future__ import annotations

import io
import json

import structlog

from memlane.config_sections import LogFormat, LogSettings
from memlane.logging import REDACTED, configure_logging, redact_secrets


def test_secret_named_fields_are_masked() -> None:
    """Fields named like api_key, token, password or authorization are replaced."""
    event = {"event": "x", "api_key": "abc", "Authorization": "Bearer zzz", "db_password": "p"}
    out = redact_secrets(None, "info", dict(event))
    assert out["api_key"] == out["Authorization"] == out["db_password"] == REDACTED
    assert out["event"] == "x"


def test_secret_shaped_values_are_masked_anywhere() -> None:
    """OpenAI-style keys, bearer tokens and URL passwords are scrubbed inside any value."""
    event = {
        "event": "calling with sk-abcdef1234567890XYZ",
        "url": "redis://user:hunter2@redis:6379/0",
        "headers": {"Authorization": "Bearer abcdefghijkl", "x": ["sk-zzzzzzzzzzzz"]},
    }
    out = redact_secrets(None, "info", event)
    text = json.dumps(out)
    for secret in ("sk-abcdef1234567890XYZ", "hunter2", "abcdefghijkl", "sk-zzzzzzzzzzzz"):
        assert secret not in text
    assert "redis://" in out["url"] and "@redis:6379/0" in out["url"]


def test_ordinary_values_are_untouched() -> None:
    """Redaction does not eat normal content."""
    event = {
        "event": "batch_consolidated",
        "user_id": "u1",
        "turns": 3,
        "prompt_tokens": 120,
        "note": "sky is blue",
    }
    assert redact_secrets(None, "info", dict(event)) == event


def test_json_output_is_redacted_end_to_end() -> None:
    """Through the configured pipeline, the JSON line holds no secret."""
    configure_logging(LogSettings(format=LogFormat.JSON, level="INFO"), force=True)
    buf = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(buf))
    try:
        structlog.get_logger("t").info("connect", password="pw-123", dsn="http://a:b-secret@h")
        line = json.loads(buf.getvalue().strip().splitlines()[-1])
    finally:
        configure_logging(LogSettings(), force=True)
        structlog.configure(logger_factory=structlog.PrintLoggerFactory())
    assert line["password"] == REDACTED
    assert "b-secret" not in line["dsn"]
    assert line["event"] == "connect" and line["level"] == "info"
