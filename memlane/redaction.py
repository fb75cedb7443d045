"""Redaction of secrets: the configured values themselves, and anything shaped like a secret.

A :class:`Redactor` is built from the settings' secret values (:meth:`Settings.secret_values`:
API keys, passwords, passwords inside URLs). It replaces every occurrence of them with ``***``,
whatever they look like, including their URL-encoded and JSON-escaped spellings, so an endpoint
that echoes the key in an error body cannot leak it. It also masks values shaped like a secret
it was never told about (``sk-...`` keys, bearer tokens, ``scheme://user:password@`` with or
without a user name). It is pure: the log processors (:mod:`memlane.logging`), the dead-letter
writer and the command line all use one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from memlane.config import Settings

REDACTED = "***"
# Whole-name matches only: "access_token" is a secret, "prompt_tokens" is a count.
_SECRET_NAME = re.compile(
    r"(?:^|[_-])(api[_-]?key|access[_-]?key|token|secret|password|passwd|pwd|authorization"
    r"|credentials?)$",
    re.I,
)
_SECRET_SHAPE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}"  # OpenAI-style keys
    r"|Bearer\s+[A-Za-z0-9._\-~+/]{8,}=*"  # bearer tokens
    r"|(?<=://)[^:/@\s]*:[^@/\s]+(?=@))"  # [user]:password in URLs (redis://:pw@host too)
)


def is_secret_name(key: object) -> bool:
    """True for a field name that holds a secret (``api_key``, ``db_password``, ...)."""
    return isinstance(key, str) and bool(_SECRET_NAME.search(key))


def _spellings(secret: str) -> set[str]:
    """The ways a secret shows up in text: raw, URL-encoded, JSON-escaped."""
    return {
        secret,
        quote(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


@dataclass(frozen=True)
class Redactor:
    """Masks the given secret values (and secret-shaped text) in strings and nested data."""

    secrets: tuple[str, ...] = ()
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        forms = {form for s in self.secrets if s for form in _spellings(s) if form}
        if forms:
            # Longest first, so a secret that contains another is masked whole.
            alternation = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
            object.__setattr__(self, "_pattern", re.compile(alternation))

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        """A redactor for every secret these settings hold."""
        return cls(settings.secret_values())

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Redactor:
        """A redactor for these values (empty ones are ignored)."""
        return cls(tuple(s for s in secrets if s))

    def text(self, value: str) -> str:
        """``value`` with every configured secret and secret-shaped substring masked."""
        if self._pattern is not None:
            value = self._pattern.sub(REDACTED, value)
        return _SECRET_SHAPE.sub(REDACTED, value)

    def value(self, value: Any) -> Any:
        """Any value with its strings redacted; mapping entries with secret names masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                k: REDACTED if is_secret_name(k) and v else self.value(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        if value is None or isinstance(value, bool | int | float):
            return value
        # Anything else is rendered through str()/repr() later (exceptions, paths, models):
        # replace it by its redacted text only when that text held a secret.
        for shown in (str(value), repr(value)):
            if (masked := self.text(shown)) != shown:
                return masked
        return value
