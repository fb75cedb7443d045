"""Provider limits of the chat model: the Redis window, Retry-After, slow replies, real workers.

The window is the real Lua script in the session's Redis; the provider is the fake server. The
last test runs two real worker processes against one Redis and checks that they stay inside
the requests-per-window limit, that calls refused for waiting too long are retried by Celery,
and that every batch is stored exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from memlane.buffer.keys import Keys
from memlane.buffer.provider_limits import RedisProviderLimiter
from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.errors import LLMRateLimited, LLMUnavailable, RedisUnavailable
from memlane.llm.chat import ChatModel
from memlane.llm.limits import RateLimits, limit_stats
from tests.support.llm_rig import LLMRig, llm_overrides
from tests.support.llm_server import LLMServer, extraction_reply
from tests.support.worker_proc import (
    Cluster,
    flush_db,
    fresh_db_url,
    wait_until,
    worker_settings_overrides,
)

pytestmark = pytest.mark.redis

SH = ZoneInfo("Asia/Shanghai")
T = datetime(2024, 10, 26, 21, 26, tzinfo=SH)
GUITAR = extraction_reply({"content": "用户爱好是吉他。", "subject": "hobby"})
CHAT = "/chat/completions"


@pytest.fixture
def limiter(redis_client: redis.Redis, key_prefix: str) -> RedisProviderLimiter:
    """The Redis window under the test's key prefix."""
    return RedisProviderLimiter(redis_client, Keys(key_prefix))


def test_window_admits_up_to_the_limit_then_says_how_long(
    limiter: RedisProviderLimiter,
) -> None:
    """rpm 180 over 1 s admits 3 grants, answers the 4th with a wait <= 1 s, then admits it."""
    limits = RateLimits(rpm=180, window_s=1.0)
    grants = [limiter.acquire("p", f"g{i}", limits, 0) for i in range(4)]
    assert [g.admitted for g in grants] == [True, True, True, False]
    assert 0 < grants[3].wait_s <= 1.001
    wait_until(lambda: limiter.acquire("p", "g3", limits, 0).admitted, 5, "a place after 1 s")


def test_window_counts_tokens_and_settles_to_the_real_spend(
    limiter: RedisProviderLimiter, redis_client: redis.Redis, key_prefix: str
) -> None:
    """tpm 6000 over 1 s holds 100 tokens; settling 80 down to 10 makes room for 30 more."""
    limits = RateLimits(tpm=6000, window_s=1.0)
    assert limiter.acquire("p", "a", limits, 80).admitted
    assert not limiter.acquire("p", "b", limits, 30).admitted
    limiter.settle("p", "a", 10, limits)
    assert limiter.acquire("p", "b", limits, 30).admitted
    assert redis_client.hget(Keys(key_prefix).limit_tokens("p"), "_sum") == b"40"


def test_unreachable_redis_is_retryable_and_nothing_is_sent(
    make_settings: Callable[..., Settings], llm_server: LLMServer
) -> None:
    """With Redis down the limiter raises RedisUnavailable (Retryable); the model is not called."""
    settings = make_settings(**llm_overrides(llm_server, rpm=60))
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    chat = ChatModel(settings.llm, limiter=RedisProviderLimiter(dead, Keys("t")))
    try:
        with pytest.raises(RedisUnavailable):
            chat.complete_text([{"role": "user", "content": "hi"}])
    finally:
        chat.close()
        dead.close()
    assert llm_server.chat_calls == 0


@pytest.fixture
def rig_for(
    make_settings: Callable[..., Settings], llm_server: LLMServer
) -> Iterator[Callable[..., LLMRig]]:
    """Builds an in-process consolidation rig with the given llm settings."""
    made: list[LLMRig] = []

    def build(**llm: object) -> LLMRig:
        settings = make_settings(
            **llm_overrides(llm_server, **llm), batching={"keep_raw_turns": False}
        )
        made.append(LLMRig(settings, llm_server))
        return made[-1]

    yield build
    for rig in made:
        rig.close()


def test_a_429_with_retry_after_2_is_retried_after_2_s_and_stored_once(
    rig_for: Callable[..., LLMRig], llm_server: LLMServer
) -> None:
    """A 429 with Retry-After: 2 is sent again >= 2 s later, in the same run; one memory."""
    rig = rig_for(call_budget_s=10.0, timeout_s=6.0)  # may wait 3 s
    llm_server.add_rule("吉他", GUITAR)
    llm_server.retry_after = "2"
    llm_server.fail_next(1, "429")
    rig.push("u", [("user", "我的爱好是吉他。", T)])
    assert rig.consolidate("u").memories == 1
    first, second = llm_server.arrivals(CHAT)
    assert second - first >= 2.0
    assert [m.content for m in rig.memories("u")] == ["用户爱好是吉他。"]
    assert rig.client.pending("u") == 0


def test_a_retry_after_beyond_the_budget_is_left_to_the_task(
    rig_for: Callable[..., LLMRig], llm_server: LLMServer
) -> None:
    """Retry-After 3600 is not slept: a Retryable error capped at the budget, turns kept."""
    rig = rig_for(call_budget_s=4.0, timeout_s=4.0)
    llm_server.add_rule("吉他", GUITAR)
    llm_server.retry_after = "3600"
    llm_server.fail_next(1, "429")
    rig.push("u", [("user", "我的爱好是吉他。", T)])
    started = time.monotonic()
    with pytest.raises(LLMRateLimited) as caught:
        rig.consolidate("u")
    assert time.monotonic() - started < 2.0
    assert caught.value.retry_after_s == 4.0
    assert rig.client.pending("u") == 1 and rig.memories("u") == []
    assert rig.consolidate("u").memories == 1  # the next attempt stores it, once
    assert [m.content for m in rig.memories("u")] == ["用户爱好是吉他。"]


def test_a_slow_reply_after_a_wait_is_cut_at_the_budget(
    make_settings: Callable[..., Settings],
    llm_server: LLMServer,
    limiter: RedisProviderLimiter,
) -> None:
    """After a ~1.5 s limiter wait a slow reply gets only the rest of a 4 s budget, not 4 s more."""
    settings = make_settings(
        **llm_overrides(llm_server, rpm=40, limit_window_s=1.5, call_budget_s=4.0, timeout_s=4.0)
    )
    chat = ChatModel(settings.llm, limiter=limiter)
    try:
        chat.complete_text([{"role": "user", "content": "first"}])  # fills the 1.5 s window
        llm_server.reply_delay_s = 5.0
        started = time.monotonic()
        with pytest.raises(LLMUnavailable):
            chat.complete_text([{"role": "user", "content": "second"}])
        elapsed = time.monotonic() - started
    finally:
        llm_server.reply_delay_s = 0.0
        chat.close()
    assert 3.5 <= elapsed <= 4.8  # ~1.5 s waiting + ~2.5 s request, never 1.5 + 4
    assert limit_stats()[chat._gate.key]["waits"] >= 1


def test_two_workers_stay_within_rpm_and_retry_long_waits_losing_nothing(
    make_settings: Callable[..., Settings],
    llm_server: LLMServer,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Two worker processes, 10 users, 4 calls per 4 s: within the limit, each batch once."""
    llm_server.add_rule("吉他", GUITAR)
    url = fresh_db_url(redis_url)
    settings = make_settings(
        redis={"url": url},
        embedding={"base_url": llm_server.url, "model": "fake-embed"},
        **worker_settings_overrides(keep_raw_turns=False),
    )
    users = [f"u{i}" for i in range(10)]
    llm_env = {
        "llm__base_url": llm_server.url,
        "llm__model": "fake-llm",
        "llm__timeout_s": 2,  # a call may wait 1 s: a full 4 s window must go back to Celery
        "llm__call_budget_s": 2,
        "llm__rpm": 60,
        "llm__limit_window_s": 4,  # 4 calls in any 4 s
    }
    try:
        with (
            Cluster(settings, tmp_path / "procs", extra_env=llm_env) as cluster,
            MemoryClient(settings) as client,
        ):
            cluster.worker("w1", concurrency=1)
            cluster.worker("w2", concurrency=1)
            cluster.beat()
            for user in users:
                client.add_turns(user, [{"role": "user", "content": "我的爱好是吉他。", "ts": T}])

            def all_stored() -> bool:
                return all(client.pending(u) == 0 for u in users) and all(
                    len(client.services.store.list(u, limit=10).memories) == 1 for u in users
                )

            wait_until(all_stored, 150, "every user's batch stored")
            logs = cluster.logs()
    finally:
        flush_db(url)
    assert llm_server.chat_calls == len(users)  # a refused wait sent nothing; no duplicate
    assert llm_server.max_in_window(CHAT, 3.0) <= 4  # 1 s of slack: admission vs arrival
    assert "LimitWaitTooLong" in logs or "provider's limits" in logs  # retried by Celery
    arrivals = llm_server.arrivals(CHAT)
    assert arrivals[-1] - arrivals[0] >= 8.0  # 10 calls at 4 per 4 s take two windows


def test_a_calls_reservation_is_corrected_to_the_reported_usage(
    make_settings: Callable[..., Settings],
    llm_server: LLMServer,
    limiter: RedisProviderLimiter,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    """With tpm set, the window holds the provider's total_tokens, not memlane's estimate."""
    settings = make_settings(**llm_overrides(llm_server, tpm=100_000))
    chat = ChatModel(settings.llm, limiter=limiter)
    try:
        _, usage = chat.complete_text([{"role": "user", "content": "我的爱好是吉他。" * 20}])
    finally:
        chat.close()
    held = redis_client.hget(Keys(key_prefix).limit_tokens(chat._gate.key), "_sum")
    assert usage.total_tokens > 0 and int(held or 0) == usage.total_tokens
