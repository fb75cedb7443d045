"""Attempt counters on a real Redis: crashes count, a deliberate stop gives its attempt back."""

from __future__ import annotations

import pytest
import redis

from memlane.buffer.attempts import RedisAttempts
from memlane.buffer.keys import Keys

pytestmark = pytest.mark.redis


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    """The test's own key prefix."""
    return Keys(key_prefix)


def test_each_start_counts_when_nobody_was_stopped(redis_client: redis.Redis, keys: Keys) -> None:
    """Three starts by a live worker (crashes, as far as the counter knows) make three attempts."""
    worker = RedisAttempts(redis_client, keys, holder="w1")
    assert [worker.incr("b1") for _ in range(3)] == [1, 2, 3]
    assert not worker.stop_requested()


def test_a_stopped_workers_unfinished_attempt_is_given_back(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """w1 starts the batch twice and is stopped mid-attempt: w2's start makes it 2, not 3."""
    w1 = RedisAttempts(redis_client, keys, holder="w1")
    w2 = RedisAttempts(redis_client, keys, holder="w2")
    assert w1.incr("b1") == 1
    assert w1.incr("b1") == 2
    w1.mark_stopping()
    assert w1.stop_requested() and not w2.stop_requested()
    assert w2.incr("b1") == 2
    assert w2.incr("b1") == 3  # w2 was not stopped: its own unfinished attempt counts
    w3 = RedisAttempts(redis_client, keys, holder="w3")
    assert w3.incr("b1") == 4


def test_an_attempt_that_ended_is_never_given_back(redis_client: redis.Redis, keys: Keys) -> None:
    """An attempt ended by a transient fault is forgiven once; a later stop gives nothing back."""
    w1 = RedisAttempts(redis_client, keys, holder="w1")
    w2 = RedisAttempts(redis_client, keys, holder="w2")
    assert w1.incr("b1") == 1
    assert w1.incr("b1") == 2
    w1.forgive("b1")
    w1.mark_stopping()
    assert w2.incr("b1") == 2
    w2.forgive("b1")
    w2.forgive("b1")
    w2.forgive("b1")  # never below zero
    assert redis_client.hget(keys.attempts, "b1") is None
    w1.incr("b2")
    w1.clear("b2")
    assert redis_client.hget(keys.attempts, "b2") is None


def test_counts_written_by_older_versions_still_count(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """A bare integer from before holders existed reads as that many attempts."""
    redis_client.hset(keys.attempts, "b1", 3)
    assert RedisAttempts(redis_client, keys, holder="w1").incr("b1") == 4
    redis_client.hset(keys.attempts, "b2", 3)
    RedisAttempts(redis_client, keys).forgive("b2")
    assert RedisAttempts(redis_client, keys).incr("b2") == 3


def test_no_holder_means_no_stop_tracking(redis_client: redis.Redis, keys: Keys) -> None:
    """Outside a worker (no holder) nothing is marked and every start counts."""
    anon = RedisAttempts(redis_client, keys)
    anon.mark_stopping()
    assert redis_client.zcard(keys.stopped_workers) == 0
    assert not anon.stop_requested()
    assert [anon.incr("b1"), anon.incr("b1")] == [1, 2]
