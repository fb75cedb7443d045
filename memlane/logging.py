"""structlog, configured once: console output for humans, JSON lines for production.

:func:`redact_secrets` is a pure processor that masks anything that looks like a key, token or
password, both by field name and by value shape, before any renderer sees the event.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from memlane.config import LogFormat, LogSettings

REDACTED = "***"
# Whole-name matches only: "access_token" is a secret, "prompt_tokens" is a count.
_SECRET_KEY = re.compile(
    r"(?:^|[_-])(api[_-]?key|access[_-]?key|token|secret|password|passwd|pwd|authorization"
    r"|credentials?)$",
    re.I,
)
_SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}"  # OpenAI-style keys
    r"|Bearer\s+[A-Za-z0-9._\-]{8,}"  # bearer tokens
    r"|(?<=://)[^:/@\s]+:[^@/\s]+(?=@))"  # user:password in URLs
)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret_key(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key))


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named fields and secret-shaped values."""
    for key in list(event_dict):
        value = event_dict[key]
        event_dict[key] = REDACTED if _is_secret_key(key) and value else _scrub(value)
    return event_dict


_configured = False


def configure_logging(settings: LogSettings, force: bool = False) -> None:
    """Configure structlog and stdlib logging once per process."""
    global _configured
    if _configured and not force:
        return
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if settings.format is LogFormat.JSON
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    level = logging.getLevelName(settings.level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _configured = True


def get_logger(name: str) -> Any:
    """A structlog logger bound with the module name."""
    return structlog.get_logger(name)
