"""MemoryClient.retrieve against real Redis and a real store (SQLite and Elasticsearch)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from memlane.client import MemoryClient
from memlane.ids import custom_memory_id
from memlane.llm.searches import in_progress
from memlane.models import Memory, MemoryKind
from memlane.retrieval.context import format_context

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 10, 26, 21, 26, tzinfo=TZ)


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def client(request: pytest.FixtureRequest, make_settings: Any) -> Iterator[MemoryClient]:
    """A client on a fresh store of each backend, sharing the session's Redis."""
    store: dict[str, Any] = {"backend": request.param}
    if request.param == "elasticsearch":
        # es_index's indices are deleted after the test, once the client is closed.
        store |= {"es_url": request.getfixturevalue("es_url")}
        store |= {"es_index": request.getfixturevalue("es_index")}
    c = MemoryClient(make_settings(store=store))
    yield c
    c.close()


def put(client: MemoryClient, user: str, content: str, **kw: Any) -> Memory:
    """Store one memory directly (embedded as a passage), bypassing the queue."""
    svc = client.services
    fields: dict[str, Any] = {"recorded_at": NOW - timedelta(days=3)} | kw
    kind = fields.pop("kind", MemoryKind.OBSERVATION)
    m = Memory(custom_memory_id(user, content), user, kind, content, **fields)
    m.embedding = svc.embedder.embed_passages([content])[0]
    svc.store.upsert([m])
    return m


def test_seed_scenario_in_chinese(client: MemoryClient) -> None:
    """你知道我的乐器爱好是什么? finds the guitar among unrelated memories."""
    for text in ["今天天气真不错。", "晚饭吃了饺子。", "我的爱好是吉他。", "明天要早起开会。"]:
        put(client, "u1", text, kind=MemoryKind.RAW)
    results = client.retrieve("u1", "你知道我的乐器爱好是什么?", now=NOW)
    assert results[0].memory.content == "我的爱好是吉他。"
    e = results[0].explanation
    assert e.knn_rank is not None and e.bm25_rank is not None and e.fused > 0
    assert format_context(results[:1], "zh", TZ)[0].endswith("] 我的爱好是吉他。")


def test_seed_scenario_in_english(client: MemoryClient) -> None:
    """The English twin works the same way."""
    for text in [
        "The weather is lovely today.",
        "My hobby is playing the guitar.",
        "I had dumplings for dinner.",
    ]:
        put(client, "u1", text)
    results = client.retrieve("u1", "Do you know what instrument I play?", now=NOW)
    assert "guitar" in results[0].memory.content


def test_time_expression_boosts_the_matching_period(client: MemoryClient) -> None:
    """昨天 / last month prefer the memory from that period over an equal text match."""
    put(client, "u1", "晚饭吃了火锅。", event_time=NOW - timedelta(days=1))
    put(client, "u1", "晚饭吃了烤鸭。", event_time=NOW - timedelta(days=40))
    top = client.retrieve("u1", "我昨天晚饭吃了什么?", now=NOW)[0]
    assert top.memory.content == "晚饭吃了火锅。" and "time" in top.explanation.boosts
    top = client.retrieve("u1", "what did I have for dinner last month? 晚饭", now=NOW)[0]
    assert top.memory.content == "晚饭吃了烤鸭。"


def test_explicit_time_range_filters(client: MemoryClient) -> None:
    """A time_range given by the caller is a filter, not a boost."""
    put(client, "u1", "去了长城。", event_time=NOW - timedelta(days=10))
    put(client, "u1", "去了故宫。", event_time=NOW - timedelta(days=100))
    results = client.retrieve("u1", "去了哪里", now=NOW, time_range=(NOW - timedelta(days=30), NOW))
    assert [r.memory.content for r in results] == ["去了长城。"]


def test_kinds_filter(client: MemoryClient) -> None:
    """kinds restricts results to those kinds."""
    put(client, "u1", "用户喜欢爬山。", kind=MemoryKind.INSIGHT)
    put(client, "u1", "周末去爬山了。", kind=MemoryKind.RAW)
    results = client.retrieve("u1", "爬山", kinds=["insight"], now=NOW)
    assert [r.memory.kind for r in results] == [MemoryKind.INSIGHT]


def test_include_pending_reads_your_writes(client: MemoryClient) -> None:
    """A turn pushed a moment ago (no worker yet) is found only with include_pending."""
    cat = put(client, "u1", "我养了一只猫。")
    client.add_turns("u1", [{"role": "user", "content": "我刚买了一把新的尤克里里。"}])
    without = client.retrieve("u1", "尤克里里", now=NOW)
    # The one stored memory is still found; the buffered turn is not.
    assert [(r.memory.id, r.pending) for r in without] == [(cat.id, False)]
    with_pending = client.retrieve("u1", "尤克里里", now=NOW, include_pending=True)
    assert with_pending[0].pending and "尤克里里" in with_pending[0].memory.content
    assert client.pending("u1") == 1  # retrieval never consumes the buffer


def test_pending_chatter_does_not_crowd_out_memories(client: MemoryClient) -> None:
    """Unrelated buffered turns are not returned as pending results."""
    put(client, "u1", "我的爱好是吉他。")
    client.add_turns("u1", [{"role": "user", "content": "今天股市大跌。"}])
    results = client.retrieve("u1", "吉他", now=NOW, include_pending=True)
    assert results[0].memory.content == "我的爱好是吉他。"
    assert not any(r.pending for r in results)


def test_retrieve_never_returns_another_users_memory_or_pending_turn(
    client: MemoryClient,
) -> None:
    """Tenant isolation holds for stored memories and for the buffer."""
    put(client, "alice", "Alice 的密码提示是小狗的名字。")
    client.add_turns("alice", [{"role": "user", "content": "小狗名字叫旺财。"}])
    coffee = put(client, "bob", "Bob 喜欢喝咖啡。")
    for query in ["小狗的名字", "密码提示", "旺财", "咖啡"]:
        results = client.retrieve("bob", query, now=NOW, include_pending=True)
        # Bob's only memory answers every query (nearest in his own memories); none of Alice's.
        assert [(r.memory.id, r.memory.user_id, r.pending) for r in results] == [
            (coffee.id, "bob", False)
        ]


def test_query_embedding_cache_serves_repeats(client: MemoryClient) -> None:
    """A repeated query is embedded once (the LRU returns the same vector object)."""
    emb = client.services.embedder
    assert emb.embed_query("同一个问题") is emb.embed_query("同一个问题")


def test_a_search_counts_as_in_progress_while_it_embeds_its_query(
    client: MemoryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """retrieve marks itself as a search in progress (the local model reads it to embed side
    by side when another search runs), and unmarks itself when done."""
    embedder = client.services.embedder
    real, seen = embedder.embed_query, []

    def recording(text: str) -> Any:
        seen.append(in_progress())
        return real(text)

    monkeypatch.setattr(embedder, "embed_query", recording)
    put(client, "u-count", "I play the guitar.")
    assert client.retrieve("u-count", "what do I play?")
    assert seen == [1] and in_progress() == 0
