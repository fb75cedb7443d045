"""Structured output that degrades by itself: ``json_schema`` -> ``json_object`` -> plain text.

Providers differ in what ``response_format`` they take: OpenAI and vLLM take a JSON schema,
DeepSeek only ``json_object``, and the llama.cpp server this was first seen on answered HTTP 500
to ``json_schema``. :class:`memlane.llm.chat.ChatModel` starts at the best format the settings
allow and steps down on a *refusal*, then remembers the format that worked for the provider
(``base_url`` + ``model``), in-process and in a shared :class:`FormatMemory` (Redis), so every
worker pays for the discovery once.

The rule (pure, :func:`refusal`), for a request that carried a ``response_format``:

- only HTTP 400, 422 and 500 can be refusals; 429, 401/403/404, 408, 502-504, timeouts and
  connection errors never are (they say nothing about the format);
- a 400/422/500 whose error message *names* structured output (``response_format``,
  ``json_schema``, ``json_object``, ``schema``, ``grammar``) is a refusal: the call is sent again
  at once in the next format;
- an unnamed 400/422 is *suspected*: the call is sent once in the next format, and the step is
  kept (and remembered) only if that call succeeds, i.e. the failure followed the format. If it
  fails too, the first error is raised and nothing is remembered;
- an unnamed 500 is an ordinary server error (Retryable), never a refusal: a transient fault must
  not cost a provider its schema.

A remembered format expires (``llm.response_format_ttl_s``, a day by default), so a provider that
was upgraded, or a misread refusal, is probed again once a day at the cost of one refused call.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Any, Protocol

from memlane.config_sections import OutputFormat as OutputFormat  # re-exported: it is a setting

REFUSAL_STATUSES = frozenset({400, 422, 500})
_NAMES_FORMAT = re.compile(r"response_format|json_schema|json_object|schema|grammar", re.I)


ORDER = (OutputFormat.JSON_SCHEMA, OutputFormat.JSON_OBJECT, OutputFormat.TEXT)


class Refusal(StrEnum):
    """What a failed structured call says about its format."""

    NONE = "none"  # not about the format: raise as usual
    NAMED = "named"  # the error names the format: step down
    SUSPECTED = "suspected"  # an unnamed 400/422: step down once, keep it only if that works


def next_format(fmt: OutputFormat) -> OutputFormat | None:
    """The format to try after ``fmt`` is refused (None after plain text) (pure)."""
    at = ORDER.index(fmt)
    return ORDER[at + 1] if at + 1 < len(ORDER) else None


def refusal(fmt: OutputFormat, status: int | None, message: str) -> Refusal:
    """Whether an error to a call made in ``fmt`` refuses that format (pure; see the module)."""
    if fmt is OutputFormat.TEXT or status not in REFUSAL_STATUSES:
        return Refusal.NONE
    if _NAMES_FORMAT.search(message or ""):
        return Refusal.NAMED
    return Refusal.SUSPECTED if status != 500 else Refusal.NONE


def response_format(
    fmt: OutputFormat, name: str, schema: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The ``response_format`` request field for ``fmt`` (None for plain text) (pure).

    The schema is sent non-strict: OpenAI's strict mode would refuse any schema that leaves a
    property optional, and the pipelines validate the output themselves anyway.
    """
    if fmt is OutputFormat.TEXT:
        return None
    if fmt is OutputFormat.JSON_OBJECT or schema is None:
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": schema, "strict": False},
    }


def provider_id(base_url: str | None, model: str) -> str:
    """A short stable id of a provider: ``base_url`` + ``model`` (pure; no secret in it)."""
    raw = f"{(base_url or 'default').rstrip('/')}|{model}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


class FormatMemory(Protocol):
    """Where the format that works for a provider is shared between processes."""

    def get(self, provider: str) -> OutputFormat | None:
        """The format remembered for ``provider``, if any (never raises)."""

    def remember(self, provider: str, fmt: OutputFormat) -> None:
        """Share that ``provider`` works in ``fmt`` (never raises)."""
