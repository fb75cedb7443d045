"""Redaction of the configured secret values themselves, in text, nested data and every log."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from memlane.config import load_settings
from memlane.config_sections import LogFormat, LogSettings
from memlane.logging import REDACTED, configure_logging, get_logger
from memlane.redaction import Redactor

KEY = "mlk_live_7Hq2vT9xZ4pL8wN3"  # not sk-shaped: only the configured value can catch it


def test_a_configured_key_is_masked_whatever_its_shape() -> None:
    """An endpoint echoing the key in an error body: the key is gone from the text."""
    r = Redactor.of([KEY])
    text = f"chat request refused (401): Incorrect API key provided: {KEY}. Check it."
    assert r.text(text) == text.replace(KEY, REDACTED)


@pytest.mark.parametrize(
    "shown",
    [
        "p@ss/w:rd",  # raw
        "p%40ss%2Fw%3Ard",  # URL-encoded, as inside a URL
        json.dumps('p"ss\\w')[1:-1],  # JSON-escaped, as inside a serialised body
    ],
)
def test_encoded_spellings_of_a_secret_are_masked(shown: str) -> None:
    """Secrets are masked raw, URL-encoded and JSON-escaped."""
    r = Redactor.of(["p@ss/w:rd", 'p"ss\\w'])
    assert r.text(f"error: {shown}!") == f"error: {REDACTED}!"


def test_a_url_password_without_a_user_name_is_masked() -> None:
    """`redis://:pw@host` (the usual Redis spelling) loses its password even unconfigured."""
    r = Redactor()
    assert r.text("redis=redis://:hunter2@127.0.0.1:6379/0") == "redis=redis://***@127.0.0.1:6379/0"
    assert r.text("es=https://elastic:hunter2@es:9200") == "es=https://***@es:9200"
    assert r.text("unix:///tmp/redis.sock?db=1") == "unix:///tmp/redis.sock?db=1"
    assert r.text("http://127.0.0.1:9200/x") == "http://127.0.0.1:9200/x"


def test_secrets_from_settings_cover_keys_passwords_and_url_passwords() -> None:
    """Redactor.from_settings masks every secret the settings hold."""
    settings = load_settings(
        environ={
            "MEMLANE_LLM__API_KEY": KEY,
            "MEMLANE_REDIS__URL": "redis://:url-pw-9@redis:6379/0",
            "MEMLANE_STORE__PASSWORD": "es pw #1",
        }
    )
    r = Redactor.from_settings(settings)
    out = r.text(f"{KEY} url-pw-9 es pw #1")
    assert out == f"{REDACTED} {REDACTED} {REDACTED}"


def test_nested_values_and_secret_named_fields() -> None:
    """Mappings, lists, exceptions: every string is scrubbed; secret-named fields are masked."""
    r = Redactor.of([KEY])
    value = {"error": [f"bad {KEY}"], "api_key": "anything", "n": 3, "exc": ValueError(KEY)}
    out = r.value(value)
    assert out == {"error": [f"bad {REDACTED}"], "api_key": REDACTED, "n": 3, "exc": REDACTED}


def test_ordinary_text_is_untouched() -> None:
    """No secrets, no secret shapes: the text comes back as it was."""
    r = Redactor.of([KEY])
    line = "batch_consolidated user_id=u1 turns=3 url=redis://redis:6379/0"
    assert r.text(line) == line
    assert r.value({"prompt_tokens": 120, "note": "sky"}) == {"prompt_tokens": 120, "note": "sky"}


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """JSON logging with KEY configured; yields (structlog output, stdlib output)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(
        LogSettings(format=LogFormat.JSON, level="INFO"), force=True, redactor=Redactor.of([KEY])
    )
    ours, stdlib = io.StringIO(), io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(ours))
    handler = next(h for h in root.handlers if h not in saved[0])
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stdlib)
    try:
        yield ours, stdlib
    finally:
        configure_logging(LogSettings(), force=True)
        structlog.configure(logger_factory=structlog.PrintLoggerFactory())
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_structlog_events_never_carry_the_configured_key(
    captured: tuple[io.StringIO, io.StringIO],
) -> None:
    """llm_call_failed-style events: the echoed key is masked in the JSON line."""
    ours, _ = captured
    get_logger("t").warning("llm_call_failed", error=f"refused (401): key {KEY}")
    line = json.loads(ours.getvalue().strip().splitlines()[-1])
    assert KEY not in ours.getvalue()
    assert line["error"] == f"refused (401): key {REDACTED}" and line["event"] == "llm_call_failed"


def test_stdlib_records_go_through_the_same_redaction(
    captured: tuple[io.StringIO, io.StringIO],
) -> None:
    """A Celery/library record (message, args and traceback) is rendered without the key."""
    _, stdlib = captured
    log = logging.getLogger("celery.worker.consumer")
    log.error("Cannot connect to %s: %s", "redis://:hunter2@h:6379/0", f"echo {KEY}")
    try:
        raise RuntimeError(f"boom {KEY}")
    except RuntimeError:
        log.exception("task failed")
    text = stdlib.getvalue()
    assert KEY not in text and "hunter2" not in text
    first = json.loads(text.splitlines()[0])
    assert first["event"] == f"Cannot connect to redis://***@h:6379/0: echo {REDACTED}"
    assert first["logger"] == "celery.worker.consumer" and first["level"] == "error"
    assert "RuntimeError" in text  # the traceback is kept, only the secret is masked
