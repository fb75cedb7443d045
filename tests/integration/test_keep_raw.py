"""LLM mode keeps the user's words (issue 13, point 1): every turn is stored raw beside the
observations by default, and retrieval folds a raw turn into the observation that covers it.

Real Redis, real SQLite and Elasticsearch, real local embeddings; the chat endpoint is the fake.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from elasticsearch import Elasticsearch

from memlane.config import Settings
from memlane.models import MemoryKind
from tests.support.llm_rig import LLMRig, llm_overrides
from tests.support.llm_server import LLMServer, extraction_reply

pytestmark = pytest.mark.redis

SH = ZoneInfo("Asia/Shanghai")
T = datetime(2024, 10, 26, 21, 26, tzinfo=SH)
TURNS = [
    ("user", "我住在杭州，今天天气真不错。"),
    ("assistant", "听起来很惬意！"),
    ("user", "我的爱好是吉他。"),
    ("user", "晚饭吃了饺子，有点撑。"),
]


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def rig(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], llm_server: LLMServer
) -> Iterator[LLMRig]:
    """An LLM rig with the default settings (turns kept raw) on each store backend."""
    store: dict[str, Any] = {"backend": request.param}
    index = f"keepraw-{uuid.uuid4().hex[:10]}"
    if request.param == "elasticsearch":
        es_url = request.getfixturevalue("es_url")
        store |= {"es_url": es_url, "es_index": index}
    built = LLMRig(make_settings(**llm_overrides(llm_server), store=store), llm_server)
    yield built
    built.close()
    if request.param == "elasticsearch":
        es = Elasticsearch(es_url)
        names = list(es.indices.get(index=f"{index}*"))
        if names:
            es.indices.delete(index=",".join(names))
        es.close()


def consolidate(rig: LLMRig, llm_server: LLMServer) -> list[str]:
    """Push the four turns; the model extracts the guitar only. Returns the turn ids."""
    assert rig.settings.batching.keep_raw_turns  # the default
    llm_server.add_rule(
        "我的爱好是吉他",
        extraction_reply({"content": "用户爱好是吉他。", "source_turns": [3], "subject": "hobby"}),
    )
    ids = rig.push("u", [(r, c, T + timedelta(minutes=i)) for i, (r, c) in enumerate(TURNS)])
    rig.consolidate("u")
    return ids


def test_every_turn_is_kept_raw_beside_the_observations(rig: LLMRig, llm_server: LLMServer) -> None:
    """Four turns and one observation: five memories, nothing the user said is lost."""
    ids = consolidate(rig, llm_server)
    memories = rig.memories("u")
    raw = {m.source_turn_ids[0]: m for m in memories if m.kind is MemoryKind.RAW}
    assert set(raw) == set(ids)
    assert raw[ids[1]].metadata["role"] == "assistant"
    [guitar] = [m for m in memories if m.kind is MemoryKind.OBSERVATION]
    assert guitar.source_turn_ids == [ids[2]]
    assert rig.client.pending("u") == 0


def test_an_observation_ranks_above_the_raw_turn_it_covers_and_folds_it(
    rig: LLMRig, llm_server: LLMServer
) -> None:
    """The guitar observation comes first and its raw turn is not returned beside it; turns no
    observation covers (杭州, 饺子) are still recalled."""
    consolidate(rig, llm_server)
    hits = rig.client.retrieve("u", "你知道我的乐器爱好是什么?", top_k=10, now=T)
    assert hits[0].memory.content == "用户爱好是吉他。"
    assert "我的爱好是吉他。" not in [h.memory.content for h in hits]
    hangzhou = rig.client.retrieve("u", "我住在哪里?", top_k=3, now=T)
    assert any("杭州" in h.memory.content for h in hangzhou)
