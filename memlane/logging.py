"""structlog, configured once: console output for humans, JSON lines for production.

Every event goes through one redaction processor (:class:`RedactSecrets`) before any renderer
sees it: memlane's own structlog events, and stdlib log records (Celery's, redis-py's, ...),
which the root handler renders through the same processors (routine ones demoted to DEBUG
first, :mod:`memlane.log_filters`). It masks the configured secret
values themselves (:class:`memlane.redaction.Redactor`), anything shaped like a key, token or
URL password, and every field named like a secret.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

from memlane import log_filters
from memlane.config_sections import LogFormat, LogSettings
from memlane.redaction import REDACTED, Redactor, is_secret_name

__all__ = ["REDACTED", "RedactSecrets", "configure_logging", "get_logger", "redact_secrets"]


# ProcessorFormatter's bookkeeping: the stdlib record itself, never rendered.
_FORMATTER_META = frozenset({"_record", "_from_structlog"})


class RedactSecrets:
    """structlog processor: mask secret-named fields, configured secrets and secret shapes."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if key in _FORMATTER_META:
                continue
            value = event_dict[key]
            masked = is_secret_name(key) and value
            event_dict[key] = REDACTED if masked else self.redactor.value(value)
        return event_dict


# Shape-only redaction, for code that logs before settings exist.
redact_secrets = RedactSecrets(Redactor())

_configured = False
_HANDLER_MARK = "_memlane_handler"


def configure_logging(
    settings: LogSettings, force: bool = False, redactor: Redactor | None = None
) -> None:
    """Configure structlog and stdlib logging once per process.

    ``redactor`` (built from the settings' secrets) masks the configured secret values; a
    later call without ``force`` is a no-op, so the first caller, which has the whole
    settings, decides.
    """
    global _configured
    if _configured and not force:
        return
    redact = RedactSecrets(redactor or Redactor())
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if settings.format is LogFormat.JSON
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    level = logging.getLevelName(settings.level)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    _route_stdlib(level, renderer, [structlog.stdlib.add_logger_name, *shared])
    _configured = True


def _route_stdlib(level: int, renderer: Any, pre_chain: list[Any]) -> None:
    """Render stdlib records (Celery, libraries) through the same processors, on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=pre_chain,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    log_filters.install()  # routine library chatter (the dispatch tick) at DEBUG


def get_logger(name: str) -> Any:
    """A structlog logger bound with the module name."""
    return structlog.get_logger(name)
