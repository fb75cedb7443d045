"""Log redaction: keys, tokens and passwords never reach the rendered output."""

from __future__ import annotations

import io
import json
import logging
import warnings

import structlog

from memlane.config_sections import LogFormat, LogSettings
from memlane.constants import TASK_CONSOLIDATE, TASK_DISPATCH
from memlane.log_filters import QUIET_TASKS, Demote
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


def _celery_record(task: str, level: int = logging.INFO) -> logging.LogRecord:
    """A record as Celery's tracer makes it: the task's name in ``data`` and in ``args``."""
    context = {"id": "abc", "name": task, "runtime": 0.001, "return_value": "[]"}
    record = logging.LogRecord(
        "celery.app.trace", level, __file__, 1, "Task %(name)s[%(id)s] succeeded", (context,), None
    )
    record.data = context
    return record


def test_the_dispatch_tick_is_demoted_and_other_tasks_are_not() -> None:
    """Celery's per-task INFO line is dropped at INFO for the dispatch task only; a warning
    about dispatch and the line of any other task pass unchanged."""
    demote = Demote(tasks=QUIET_TASKS)
    logging.getLogger("celery.app.trace").setLevel(logging.INFO)
    try:
        assert demote.filter(_celery_record(TASK_DISPATCH)) is False
        kept = _celery_record(TASK_CONSOLIDATE)
        assert demote.filter(kept) is True and kept.levelno == logging.INFO
        warning = _celery_record(TASK_DISPATCH, logging.WARNING)
        assert demote.filter(warning) is True and warning.levelname == "WARNING"
        logging.getLogger("celery.app.trace").setLevel(logging.DEBUG)
        debug = _celery_record(TASK_DISPATCH)
        assert demote.filter(debug) is True and debug.levelname == "DEBUG"
    finally:
        logging.getLogger("celery.app.trace").setLevel(logging.NOTSET)


def test_a_python_warning_becomes_one_redacted_log_line() -> None:
    """A multi-line warning reaches the root handler as one line in memlane's format, with a
    secret in its text masked like any other record's."""
    configure_logging(LogSettings(format=LogFormat.JSON, level="INFO"), force=True)
    root = logging.getLogger()
    handler = next(h for h in root.handlers if getattr(h, "_memlane_handler", False))
    buf = io.StringIO()
    stream = handler.setStream(buf)  # type: ignore[attr-defined]
    try:
        # What logging.captureWarnings logs: formatwarning's text, the source line last.
        text = warnings.formatwarning(
            "running as root\nkey sk-abcdef1234567890XYZ\nis set", UserWarning, "x.py", 3, "  f()"
        )
        logging.getLogger("py.warnings").warning("%s", text)
    finally:
        handler.setStream(stream)  # type: ignore[attr-defined]
        configure_logging(LogSettings(), force=True)
    lines = buf.getvalue().strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "warning" and "running as root key" in record["event"]
    assert "f()" not in record["event"]  # the quoted source line is left out
    assert "sk-abcdef1234567890XYZ" not in lines[0]
