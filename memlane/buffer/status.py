"""The status record of a lifecycle task: how a ``reflect`` or ``maintain`` run ended.

There is no Celery result backend (results are ignored), so a task that someone may wait for
leaves this record instead: a JSON object under ``Keys.task_status(task_id)``, kept
:data:`STATUS_TTL_S`. ``memlane reflect USER --wait`` and ``memlane maintain [USER] --wait``
enqueue the task under an id of their own and read the record back. The object is the task's
result: the pipeline's counts (``observations``, ``written``, ``memories``, ...), or
``{"lease_lost": true}``, ``{"skipped": "raw mode"}`` or ``{"error": "..."}``.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from memlane.buffer.keys import Keys
from memlane.errors import RedisUnavailable

STATUS_TTL_S = 3600


class TaskStatus:
    """Writes and reads task status records."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: int = STATUS_TTL_S) -> None:
        self._r = client
        self._keys = keys
        self._ttl_s = ttl_s

    def record(self, task_id: str, result: dict[str, Any]) -> None:
        """Leave ``result`` as the record of ``task_id`` (replacing an earlier one)."""
        payload = json.dumps(result, ensure_ascii=False)
        try:
            self._r.set(self._keys.task_status(task_id), payload, ex=self._ttl_s)
        except redis.RedisError as e:
            raise RedisUnavailable(f"task status write failed: {e}") from e

    def get(self, task_id: str) -> dict[str, Any] | None:
        """The record of ``task_id``, or None while the task has not finished (or expired)."""
        try:
            raw = self._r.get(self._keys.task_status(task_id))
        except redis.RedisError as e:
            raise RedisUnavailable(f"task status read failed: {e}") from e
        if raw is None:
            return None
        found: dict[str, Any] = json.loads(raw)  # type: ignore[arg-type]
        return found
