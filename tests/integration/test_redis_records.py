"""Small Redis records against a real server: the task status record and the early marker."""

from __future__ import annotations

import pytest
import redis

from memlane.buffer.keys import Keys
from memlane.buffer.status import STATUS_TTL_S, TaskStatus
from memlane.buffer.unreflected import UnreflectedCounter

pytestmark = pytest.mark.redis


def test_a_task_status_record_round_trips_and_expires(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """record() then get() gives the result back (unicode kept); it lives STATUS_TTL_S."""
    keys = Keys(key_prefix)
    status = TaskStatus(redis_client, keys)
    assert status.get("t1") is None
    status.record("t1", {"observations": 6, "written": ["i-1"], "note": "吉他"})
    assert status.get("t1") == {"observations": 6, "written": ["i-1"], "note": "吉他"}
    assert 0 < redis_client.ttl(keys.task_status("t1")) <= STATUS_TTL_S
    assert status.get("t2") is None


def test_the_early_marker_is_claimed_once_until_ended(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """claim_early succeeds once (with a TTL); after end_early it can be claimed again."""
    keys = Keys(key_prefix)
    counter = UnreflectedCounter(redis_client, keys)
    assert counter.claim_early("u", ttl_s=60)
    assert not counter.claim_early("u", ttl_s=60)
    assert counter.claim_early("other", ttl_s=60)
    assert 0 < redis_client.ttl(keys.early_reflection("u")) <= 60
    counter.end_early("u")
    assert counter.claim_early("u", ttl_s=60)
