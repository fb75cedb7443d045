"""Structured output degrades by itself against the fake server, and every worker learns it once.

The server refuses ``json_schema`` with HTTP 500 and llama.cpp's message, as the real llama.cpp
server did; the chat model steps down to ``json_object``, remembers it in-process and in Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from memlane.buffer.keys import Keys
from memlane.buffer.llm_formats import RedisOutputFormats
from memlane.config import Settings
from memlane.config_sections import LLMSettings
from memlane.errors import LLMError, LLMUnavailable
from memlane.llm.chat import ChatModel
from memlane.llm.formats import OutputFormat
from memlane.models import MemoryKind
from pipelines.prompts.schemas import OUTPUT_SCHEMAS
from tests.support.llm_rig import LLMRig, llm_overrides
from tests.support.llm_server import LLMServer, extraction_reply

ASK = [{"role": "user", "content": "hi"}]
T = datetime(2024, 10, 26, 21, 26, tzinfo=ZoneInfo("Asia/Shanghai"))


def _types(server: LLMServer) -> list[str | None]:
    return [(b.get("response_format") or {}).get("type") for b in server.chat_requests()]


@pytest.fixture
def new_model(
    llm_server: LLMServer, redis_client: redis.Redis, key_prefix: str
) -> Iterator[Callable[[], ChatModel]]:
    """Builds chat models as two workers would: same provider, same Redis, separate processes."""
    settings = LLMSettings(base_url=llm_server.url, model="fake-llm", timeout_s=5.0)
    built: list[ChatModel] = []

    def build() -> ChatModel:
        shared = RedisOutputFormats(redis_client, Keys(key_prefix), ttl_s=3600)
        built.append(ChatModel(settings, schemas=OUTPUT_SCHEMAS, formats=shared))
        return built[-1]

    yield build
    for model in built:
        model.close()


def _shared(redis_client: redis.Redis, key_prefix: str, model: ChatModel) -> Any:
    return redis_client.get(Keys(key_prefix).llm_format(model.provider))


def test_json_schema_refused_with_500_then_json_object_is_used_and_remembered(
    llm_server: LLMServer,
    new_model: Callable[[], ChatModel],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    """llama.cpp's 500 to json_schema: the call succeeds in json_object; the next goes there."""
    llm_server.refuse_format("json_schema", status=500)
    model = new_model()
    assert model.complete_json(ASK, "extract")[0] == {"observations": [], "links": []}
    assert _types(llm_server) == ["json_schema", "json_object"]

    model.complete_json(ASK, "reflect")
    assert _types(llm_server)[2:] == ["json_object"]  # straight there, whatever the prompt

    key = Keys(key_prefix).llm_format(model.provider)
    assert redis_client.get(key) == b"json_object" and 0 < redis_client.ttl(key) <= 3600
    other_worker = new_model()
    other_worker.complete_json(ASK, "extract")
    assert _types(llm_server)[3:] == ["json_object"]  # learned from Redis: no refusal of its own


def test_a_provider_that_takes_json_schema_gets_it(
    llm_server: LLMServer, new_model: Callable[[], ChatModel]
) -> None:
    """No refusal: the prompt's schema is sent, and nothing is learned."""
    model = new_model()
    model.complete_json(ASK, "extract")
    [body] = llm_server.chat_requests()
    assert body["response_format"]["json_schema"]["schema"] == OUTPUT_SCHEMAS["extract"]
    assert model.output_format("extract") is OutputFormat.JSON_SCHEMA


def test_both_json_formats_refused_fall_back_to_plain_json_in_text(
    llm_server: LLMServer, new_model: Callable[[], ChatModel]
) -> None:
    """A server that names both formats in its refusals is asked in plain text, then always."""
    llm_server.refuse_format("json_schema", status=400, message="unknown response_format")
    llm_server.refuse_format("json_object", status=422, message="json_object unsupported")
    llm_server.add_rule("hi", 'Here it is: ```json\n{"observations": [], "links": []}\n```')
    model = new_model()
    assert model.complete_json(ASK, "extract")[0] == {"observations": [], "links": []}
    model.complete_json(ASK, "extract")
    assert _types(llm_server) == ["json_schema", "json_object", None, None]


def test_an_unnamed_400_counts_only_if_the_next_format_then_works(
    llm_server: LLMServer, new_model: Callable[[], ChatModel]
) -> None:
    """A bare 400 to json_schema followed by a good json_object call is a refusal: learned."""
    llm_server.refuse_format("json_schema", status=400, message="bad request")
    model = new_model()
    model.complete_json(ASK, "extract")
    assert _types(llm_server) == ["json_schema", "json_object"]
    assert model.output_format("extract") is OutputFormat.JSON_OBJECT


def test_an_unnamed_400_in_every_format_is_the_request_not_the_format(
    llm_server: LLMServer,
    new_model: Callable[[], ChatModel],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    """Two bare 400s in a row: the first error is raised after two calls; nothing is learned."""
    llm_server.fail_next(2, "400")
    model = new_model()
    with pytest.raises(LLMError, match="400"):
        model.complete_json(ASK, "extract")
    assert _types(llm_server) == ["json_schema", "json_object"]
    assert model.output_format("extract") is OutputFormat.JSON_SCHEMA
    assert _shared(redis_client, key_prefix, model) is None


def test_a_transient_500_is_not_a_refusal(
    llm_server: LLMServer,
    new_model: Callable[[], ChatModel],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    """An unnamed 500 stays a Retryable error: one call, the schema kept for the next."""
    llm_server.fail_next(1, "500")
    model = new_model()
    with pytest.raises(LLMUnavailable):
        model.complete_json(ASK, "extract")
    model.complete_json(ASK, "extract")
    assert _types(llm_server) == ["json_schema", "json_schema"]
    assert _shared(redis_client, key_prefix, model) is None


def test_a_model_without_shared_memory_still_remembers_in_process(llm_server: LLMServer) -> None:
    """With no Redis (a bare ChatModel), the process itself remembers the working format."""
    llm_server.refuse_format("json_schema")
    settings = LLMSettings(base_url=llm_server.url, model="fake-llm", timeout_s=5.0)
    with closing(ChatModel(settings, schemas=OUTPUT_SCHEMAS)) as model:
        model.complete_json(ASK, "extract")
        model.complete_json(ASK, "extract")
    assert _types(llm_server) == ["json_schema", "json_object", "json_object"]


def test_consolidation_through_the_wiring_survives_a_json_schema_refusal(
    make_settings: Callable[..., Settings], llm_server: LLMServer
) -> None:
    """The production wiring sends the extraction schema; refused, the batch is still extracted."""
    llm_server.refuse_format("json_schema", status=500)
    llm_server.add_rule(
        "上海", extraction_reply({"content": "用户上周搬到了上海。", "subject": "location"})
    )
    rig = LLMRig(make_settings(**llm_overrides(llm_server, timeout_s=5.0)), llm_server)
    try:
        rig.push("u1", [("user", "我上周刚搬到上海。", T)])
        rig.consolidate("u1")
        rig.push("u1", [("user", "我上周刚搬到上海，住在浦东。", T)])
        rig.consolidate("u1")
        observations = [m for m in rig.memories("u1") if m.kind == MemoryKind.OBSERVATION]
        assert observations and observations[0].content == "用户上周搬到了上海。"
    finally:
        rig.close()
    assert _types(llm_server) == ["json_schema", "json_object", "json_object"]
