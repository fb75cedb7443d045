"""The buffer gauges read from a real Redis at scrape time (:mod:`memlane.buffer.gauges`), and
the lease-loss counter moved by a lease really taken away."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import redis
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from memlane.buffer.gauges import BufferCollector
from memlane.buffer.keys import Keys
from memlane.buffer.lease import Leases, Outcome, run_leased
from memlane.buffer.rejections import RejectionCounter
from memlane.buffer.turns import TurnBuffer
from memlane.ids import default_turn_id
from memlane.models import Role, Turn
from tests.support.api_proc import free_port

pytestmark = pytest.mark.redis


def turns(user: str, n: int) -> list[Turn]:
    """``n`` valid turns of ``user``."""
    ts = datetime(2024, 10, 26, 13, 26, tzinfo=UTC)
    return [
        Turn(user, Role.USER, f"t{i}", ts, default_turn_id(user, None, ts, "user", f"t{i}"))
        for i in range(n)
    ]


def scrape(collector: BufferCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The collector's samples, through a registry and the text format as Prometheus reads it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_gauges_sum_the_buffer_and_name_no_user(redis_client: redis.Redis, key_prefix: str) -> None:
    """Two users' turns are summed; a flushed user (scored 0 in the index) still gets its real
    age; a parked letter and the check counters per model are exported; no user id is."""
    keys = Keys(key_prefix)
    buffer = TurnBuffer(redis_client, keys)
    checks = RejectionCounter(redis_client, keys)
    started_ms = int(time.time() * 1000)
    buffer.push("gauge-u1", turns("gauge-u1", 3))
    buffer.push("gauge-u2", turns("gauge-u2", 2))
    buffer.request_flush("gauge-u2")  # its pending score becomes 0
    checks.record("model-a", {"speaker": 2, "grounding": 1})
    redis_client.hset(keys.dead, "b-1", "{}")
    now_ms = started_ms + 90_000
    samples = scrape(BufferCollector(lambda: buffer, lambda: checks, lambda: now_ms))
    assert samples[("memlane_buffered_turns", ())] == 5
    assert samples[("memlane_buffered_users", ())] == 2
    age = samples[("memlane_oldest_pending_age_seconds", ())]
    assert 85 <= age <= 95  # not 1.7e9 s since the epoch
    assert samples[("memlane_dead_letters_parked", ())] == 1
    check = "memlane_llm_checks_total"
    assert samples[(check, (("check", "speaker"), ("model", "model-a")))] == 2
    assert samples[(check, (("check", "grounding"), ("model", "model-a")))] == 1
    assert samples[("memlane_redis_up", ())] == 1
    assert not any("gauge-u" in v for _, labels in samples for _, v in labels)


def test_an_unreachable_redis_is_reported_not_raised(key_prefix: str) -> None:
    """With nothing listening where Redis should be, the scrape still answers: redis_up 0."""
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    keys = Keys(key_prefix)
    collector = BufferCollector(
        lambda: TurnBuffer(dead, keys), lambda: RejectionCounter(dead, keys)
    )
    samples = scrape(collector)
    assert samples == {("memlane_redis_up", ()): 0}
    dead.close()


def test_a_lost_lease_is_counted_once(redis_client: redis.Redis, key_prefix: str) -> None:
    """A run whose lease another worker took ends LOST and moves lease_losses by one."""
    leases = Leases(redis_client, Keys(key_prefix), ttl_s=60)
    before = REGISTRY.get_sample_value("memlane_lease_losses_total") or 0.0

    def work(token: str) -> None:
        leases.release("lease-u1", token)  # as if it had expired ...
        assert leases.acquire("lease-u1") is not None  # ... and another worker took it
        leases.check("lease-u1", token)

    token = leases.acquire("lease-u1")
    assert token is not None
    assert run_leased(leases, "lease-u1", work, token=token).outcome is Outcome.LOST
    assert REGISTRY.get_sample_value("memlane_lease_losses_total") == before + 1
