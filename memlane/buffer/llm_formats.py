"""The structured output each chat provider takes, shared by every worker (``Keys.llm_format``).

:class:`memlane.llm.chat.ChatModel` learns it from a provider's first refusal
(:mod:`memlane.llm.formats`); this adapter shares it, so the other workers start in the format
that works instead of each paying for the refusal. The value expires after
``llm.response_format_ttl_s`` so an upgraded provider is probed again. A Redis failure is logged
and ignored: the model then only relies on what its own process learned.
"""

from __future__ import annotations

import redis

from memlane.buffer.keys import Keys
from memlane.llm.formats import OutputFormat
from memlane.logging import get_logger

log = get_logger(__name__)


class RedisOutputFormats:
    """A :class:`memlane.llm.formats.FormatMemory` in Redis: one key per provider, with a TTL."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: int) -> None:
        self._r = client
        self._keys = keys
        self._ttl_s = ttl_s

    def get(self, provider: str) -> OutputFormat | None:
        """The format remembered for ``provider``; None if unknown, unreadable or Redis fails."""
        try:
            raw = self._r.get(self._keys.llm_format(provider))
        except redis.RedisError as e:
            log.warning("llm_format_read_failed", provider=provider, error=str(e))
            return None
        if raw is None:
            return None
        value = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            return OutputFormat(value)
        except ValueError:
            return None  # written by a newer memlane with a format this one does not know

    def remember(self, provider: str, fmt: OutputFormat) -> None:
        """Share ``fmt`` for ``provider`` for the TTL (a Redis failure is logged, not raised)."""
        try:
            self._r.set(self._keys.llm_format(provider), fmt.value, ex=self._ttl_s)
        except redis.RedisError as e:
            log.warning("llm_format_write_failed", provider=provider, error=str(e))
