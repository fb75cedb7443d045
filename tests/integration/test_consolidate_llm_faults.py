"""LLM consolidation under faults: bad output, 429/500/timeouts, and crashes after the cache.

Consolidation runs in-process (one call = one task attempt); the worker test at the end runs the
seed scenario through a real Celery worker and beat talking to the fake LLM server over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.errors import LLMBadOutput, LLMRateLimited, LLMUnavailable, Retryable, StoreUnavailable
from memlane.ids import batch_id
from pipelines.consolidation.replay import replay_dead_letter
from tests.support.llm_rig import LLMRig, llm_overrides
from tests.support.llm_server import LLMServer, extraction_reply
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker_proc import Cluster, flush_db, fresh_db_url, worker_settings_overrides

pytestmark = pytest.mark.redis

SH = ZoneInfo("Asia/Shanghai")
T = datetime(2024, 10, 26, 21, 26, tzinfo=SH)
GUITAR = extraction_reply({"content": "用户爱好是吉他。", "subject": "hobby"})


@pytest.fixture
def rig(make_settings: Callable[..., Settings], llm_server: LLMServer) -> Iterator[LLMRig]:
    """Settings on the fake server, 3 attempts per batch, a 1 s client timeout."""
    # Only what the extraction writes; the raw turns kept beside it: test_keep_raw.py.
    settings = make_settings(
        **llm_overrides(llm_server), batching={"max_attempts": 3, "keep_raw_turns": False}
    )
    built = LLMRig(settings, llm_server)
    yield built
    built.close()


def _guitar_turns(rig: LLMRig, user: str = "u") -> list[str]:
    return rig.push(user, [("user", "我的爱好是吉他。", T), ("assistant", "真棒！", T)])


@pytest.mark.parametrize("fault", ["malformed", "wrong_schema"])
def test_bad_output_is_retried_then_dead_lettered_with_its_turns(
    rig: LLMRig, llm_server: LLMServer, fault: str
) -> None:
    """Bad output raises a retryable error until the last attempt, which parks the batch."""
    llm_server.add_rule("吉他", fault=fault)
    ids = _guitar_turns(rig)
    for _ in range(2):
        with pytest.raises(LLMBadOutput) as caught:
            rig.consolidate("u")
        assert isinstance(caught.value, Retryable)
        assert rig.client.pending("u") == 2
    result = rig.consolidate("u")
    assert len(result.dead_lettered) == 1 and result.memories == 0
    assert llm_server.chat_calls == 3
    [letter] = rig.svc.buffer.dead_letters("u")
    assert letter["reason"].startswith("LLMBadOutput")
    assert [e.turn.turn_id for e in rig.svc.buffer.dead_letter_entries(letter)] == ids
    assert rig.client.pending("u") == 0 and rig.memories("u") == []

    llm_server.reset()
    llm_server.add_rule("吉他", GUITAR)
    token = rig.svc.leases.acquire("u")
    assert token is not None
    assert replay_dead_letter(rig.ports(), letter, token) == 1
    rig.svc.leases.release("u", token)
    assert [m.content for m in rig.memories("u")] == ["用户爱好是吉他。"]
    assert rig.svc.buffer.dead_letters("u") == []


@pytest.mark.parametrize(
    ("fault", "error"),
    [("429", LLMRateLimited), ("500", LLMUnavailable), ("timeout", LLMUnavailable)],
)
def test_transient_llm_errors_keep_the_turns_for_the_retry(
    rig: LLMRig, llm_server: LLMServer, fault: str, error: type[Exception]
) -> None:
    """429, 500 and a timeout raise Retryable errors; the turns wait; the next run succeeds."""
    llm_server.add_rule("吉他", GUITAR)
    llm_server.fail_next(1, fault)
    _guitar_turns(rig)
    with pytest.raises(error) as caught:
        rig.consolidate("u")
    assert isinstance(caught.value, Retryable)
    assert rig.client.pending("u") == 2 and rig.memories("u") == []
    assert rig.consolidate("u").memories == 1
    assert llm_server.chat_calls == 2
    assert rig.client.pending("u") == 0


def test_a_failed_arbitration_reuses_the_cached_extraction(
    rig: LLMRig, llm_server: LLMServer
) -> None:
    """Call #2 fails after call #1 was cached: the retry makes call #2 only."""
    llm_server.add_rule(
        "我住在北京", extraction_reply({"content": "用户住在北京。", "subject": "location"})
    )
    llm_server.add_rule(
        "搬到上海", extraction_reply({"content": "用户现在住在上海。", "subject": "location"})
    )
    llm_server.add_rule("第 0 组", fault="500", times=1)
    llm_server.add_rule("第 0 组", {"decisions": [{"pair": 0, "relation": "contradiction"}]})
    rig.push("u", [("user", "我住在北京。", T)])
    rig.consolidate("u")
    rig.push("u", [("user", "我上个月搬到上海了。", T + timedelta(weeks=6))])
    with pytest.raises(LLMUnavailable):
        rig.consolidate("u")
    rig.consolidate("u")
    assert (rig.extraction_calls(), rig.arbitration_calls()) == (2, 2)
    superseded = [m for m in rig.memories("u") if m.superseded_by]
    assert [m.content for m in superseded] == ["用户住在北京。"]


def test_a_crash_after_the_cached_extraction_calls_the_llm_once(
    rig: LLMRig, llm_server: LLMServer
) -> None:
    """A worker killed after extraction but before the store write: the retry reuses the cache."""
    llm_server.add_rule("吉他", GUITAR)
    _guitar_turns(rig)
    entries = rig.svc.buffer.read("u", 20)
    batch = batch_id("u", entries[0].entry_id, entries[-1].entry_id)
    crashed = rig.extractor()("u", batch, entries)  # the worker dies right after this
    assert rig.memories("u") == [] and llm_server.chat_calls == 1
    cache_key = rig.svc.keys.extraction(batch)
    assert rig.svc.redis.ttl(cache_key) > 0
    assert rig.consolidate("u").memories == 1
    assert llm_server.chat_calls == 1
    assert [m.id for m in rig.memories("u")] == [m.id for m in crashed.memories]
    assert not rig.svc.redis.exists(cache_key)  # committed: the cache is dropped


@pytest.mark.elasticsearch
def test_an_unreachable_store_after_the_llm_call_retries_without_a_new_call(
    make_settings: Callable[..., Settings], llm_server: LLMServer, es_url: str, es_index: str
) -> None:
    """Elasticsearch goes away between the LLM call and the write; the retry writes the same ids."""
    proxy = TcpProxy.for_url(es_url).start()
    store = {
        "backend": "elasticsearch",
        "es_url": proxy.url,
        "es_index": es_index,
        "es_timeout_s": 3,
    }
    no_raw = {"keep_raw_turns": False}  # the observation alone (raw turns: test_keep_raw.py)
    rig = LLMRig(
        make_settings(**llm_overrides(llm_server), store=store, batching=no_raw), llm_server
    )

    cut: list[bool] = []

    def cut_then_answer(body: dict[str, Any]) -> dict[str, Any]:
        proxy.cut()
        cut.append(True)
        return GUITAR

    try:
        llm_server.add_rule("吉他", cut_then_answer, times=1)
        llm_server.add_rule("吉他", GUITAR)
        _guitar_turns(rig)
        with pytest.raises(StoreUnavailable):
            rig.consolidate("u")
        assert rig.client.pending("u") == 2
        proxy.restore()
        cut.clear()
        assert rig.consolidate("u").memories == 1
        assert llm_server.chat_calls == 1
        [memory] = rig.memories("u")
        assert memory.content == "用户爱好是吉他。" and memory.user_id == "u"
    finally:
        if cut:
            proxy.restore()
        rig.close()
        proxy.stop()


@pytest.mark.celery
@pytest.mark.timeout(180)
def test_seed_scenario_through_a_real_worker(
    make_settings: Callable[..., Settings], llm_server: LLMServer, redis_url: str, tmp_path: Path
) -> None:
    """Push, let a real worker and beat consolidate with the LLM over HTTP, then recall."""
    llm_server.add_rule("我的爱好是吉他", GUITAR)
    url = fresh_db_url(redis_url)
    settings = make_settings(redis={"url": url}, **worker_settings_overrides())
    llm_env = {"llm__base_url": llm_server.url, "llm__model": "fake-llm", "llm__timeout_s": 5}
    try:
        with (
            Cluster(settings, tmp_path / "procs", extra_env=llm_env) as cluster,
            MemoryClient(settings) as client,
        ):
            cluster.worker(concurrency=1)
            cluster.beat()
            client.add_turns("u1", [{"role": "user", "content": "我的爱好是吉他。", "ts": T}])
            assert client.flush("u1", wait=True, timeout=90)
            hits = client.retrieve("u1", "你知道我的乐器爱好是什么?", now=T)
            assert hits[0].memory.content == "用户爱好是吉他。"
            assert hits[0].memory.metadata["model"] == "fake-llm"
            assert llm_server.chat_calls == 1
    finally:
        flush_db(url)
