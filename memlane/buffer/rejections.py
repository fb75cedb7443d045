"""What the extraction checks refused or repaired, counted per model, for ``memlane stats``.

One hash (``Keys.llm_checks``) with fields ``model|check`` (``pipelines.extraction.checks.Check``
names the checks): an operator sees when a model is not good enough.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from memlane.buffer.keys import Keys
from memlane.logging import get_logger

log = get_logger(__name__)


def parse_counts(raw: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """``{model: {check: n}}`` from the hash's fields (pure; model names may hold "|")."""
    out: dict[str, dict[str, int]] = {}
    for name, value in raw.items():
        model, check = name.rsplit("|", 1)
        out.setdefault(model, {})[check] = int(value)
    return out


class RejectionCounter:
    """Adds a batch's rejections and repairs to the per-model counters."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._key = keys.llm_checks

    def record(self, model: str, counts: dict[str, int]) -> None:
        """Count one batch. A Redis failure is logged, never raised: it must not fail a batch."""
        pipe = self._r.pipeline(transaction=False)
        for check, n in counts.items():
            pipe.hincrby(self._key, f"{model}|{check}", n)
        try:
            pipe.execute()
        except redis.RedisError as e:
            log.warning("check_count_failed", model=model, error=str(e))

    def by_model(self) -> dict[str, dict[str, int]]:
        """Every model's counters."""
        raw: dict[Any, Any] = self._r.hgetall(self._key)  # type: ignore[assignment]
        return parse_counts({_s(k): int(v) for k, v in raw.items()})


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
