"""The chat model over real HTTP against the fake server; MemoryChat and the chat REPL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.config_sections import LLMSettings
from memlane.errors import LLMBadOutput, LLMError, LLMRateLimited, LLMUnavailable, Retryable
from memlane.llm.chat import ChatModel
from memlane.memory_chat import MemoryChat
from pipelines.consolidation.run import consolidate_user
from pipelines.wiring import Wiring
from tests.support.llm_rig import llm_overrides
from tests.support.llm_server import LLMServer, extraction_reply, request_text
from worker.chat_repl import run_repl

SH = ZoneInfo("Asia/Shanghai")
T = datetime(2024, 10, 26, 21, 26, tzinfo=SH)
KEY = "sk-test-secret-key-0123456789"
ASK = [{"role": "user", "content": "hi"}]


@pytest.fixture
def model(llm_server: LLMServer) -> Iterator[ChatModel]:
    """A chat model on the fake server with a secret key and a 1 s timeout."""
    settings = LLMSettings(base_url=llm_server.url, model="fake-llm", timeout_s=1.0, api_key=KEY)
    built = ChatModel(settings)
    yield built
    built.close()


def test_json_completions_use_json_mode_and_report_usage(
    model: ChatModel, llm_server: LLMServer
) -> None:
    """JSON mode is requested; fenced replies parse; usage comes from the response."""
    llm_server.add_rule("hi", '```json\n{"observations": []}\n```')
    data, usage = model.complete_json(ASK, "extract")
    assert data == {"observations": []}
    assert usage.model == "fake-llm" and usage.prompt_tokens >= 1
    [body] = llm_server.chat_requests()
    assert body["response_format"] == {"type": "json_object"} and body["temperature"] == 0


def test_json_mode_can_be_switched_off(llm_server: LLMServer) -> None:
    """Providers without JSON mode get plain requests and tolerant parsing."""
    settings = LLMSettings(base_url=llm_server.url, json_mode=False)
    with closing(ChatModel(settings)) as model:
        model.complete_json(ASK, "extract")
    assert "response_format" not in llm_server.chat_requests()[0]


@pytest.mark.parametrize(
    ("fault", "error", "retryable"),
    [
        ("429", LLMRateLimited, True),
        ("500", LLMUnavailable, True),
        ("timeout", LLMUnavailable, True),
        ("400", LLMError, False),
        ("malformed", LLMBadOutput, False),
        ("empty", LLMBadOutput, False),
    ],
)
def test_provider_errors_map_onto_the_hierarchy(
    model: ChatModel, llm_server: LLMServer, fault: str, error: type[Exception], retryable: bool
) -> None:
    """429 / 5xx / timeouts are Retryable; other 4xx and bad output are not.

    Two faults are queued: a bare 400 to a JSON-mode call is first retried in plain text (it
    could be a refusal of the format, see memlane.llm.formats); a 400 there too is the error.
    """
    llm_server.fail_next(2, fault)
    with pytest.raises(error) as caught:
        model.complete_json(ASK, "extract")
    assert isinstance(caught.value, Retryable) is retryable


def test_an_unreachable_endpoint_is_unavailable() -> None:
    """A refused connection is LLMUnavailable."""
    settings = LLMSettings(base_url="http://127.0.0.1:9/v1", timeout_s=1.0)
    with closing(ChatModel(settings)) as model, pytest.raises(LLMUnavailable):
        model.complete_json(ASK, "extract")


def test_own_retries_back_off_on_transient_errors(llm_server: LLMServer) -> None:
    """With retries, two 500s then a good answer succeed in three calls; sleeps are backoffs."""
    slept: list[float] = []
    settings = LLMSettings(base_url=llm_server.url, timeout_s=1.0)
    llm_server.fail_next(2, "500")
    with closing(ChatModel(settings, retries=2, sleep=slept.append)) as model:
        assert model.complete_json(ASK, "extract")[0] == {"observations": [], "links": []}
    assert llm_server.chat_calls == 3 and len(slept) == 2 and all(s > 0 for s in slept)


def test_the_key_is_sent_but_never_logged(model: ChatModel, llm_server: LLMServer) -> None:
    """Log lines of successful and failed calls never contain the key."""
    llm_server.fail_next(2, "400")  # JSON mode, then plain text: both refused
    with capture_logs() as logs:
        with pytest.raises(LLMError):
            model.complete_json(ASK, "extract")
        model.complete_json(ASK, "extract")
    assert logs and KEY not in repr(logs)
    assert llm_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert {e["event"] for e in logs} >= {"llm_call", "llm_call_failed"}


# -- MemoryChat and the REPL ------------------------------------------------------------------


@pytest.fixture
def settings(make_settings: Callable[..., Settings], llm_server: LLMServer) -> Settings:
    """Settings on the fake server."""
    return make_settings(**llm_overrides(llm_server))


def _remember_guitar(client: MemoryClient, llm_server: LLMServer) -> None:
    llm_server.add_rule(
        "我的爱好是吉他", extraction_reply({"content": "用户爱好是吉他。", "subject": "hobby"})
    )
    client.add_turns("u1", [{"role": "user", "content": "我的爱好是吉他。", "ts": T}])
    svc = client.services
    token = svc.leases.acquire("u1")
    assert token is not None
    with Wiring(svc.settings, svc) as wiring:
        consolidate_user(wiring.consolidation_ports(), "u1", token, 20, 3)
    svc.leases.release("u1", token)


def test_memory_chat_answers_with_memories_and_remembers_the_exchange(
    settings: Settings, llm_server: LLMServer
) -> None:
    """The reply comes with the memories used; both turns are buffered for consolidation."""
    with MemoryClient(settings) as client, closing(ChatModel(settings.llm)) as model:
        _remember_guitar(client, llm_server)
        llm_server.add_rule("乐器爱好", "你喜欢弹吉他呀！最近练了什么曲子？")
        chat = MemoryChat(client, model)
        reply = chat.chat("u1", "你知道我的乐器爱好是什么?", now=T)
        assert reply.reply == "你喜欢弹吉他呀！最近练了什么曲子？"
        assert reply.memories[0].memory.content == "用户爱好是吉他。"
        system = llm_server.chat_requests()[-1]["messages"][0]["content"]
        assert "- [2024-10-26 21:26 周六] 用户爱好是吉他。" in system
        assert "response_format" not in llm_server.chat_requests()[-1]
        assert client.pending("u1") == 2

        llm_server.add_rule("刚才", "你刚才问我你的乐器爱好。")
        again = chat.chat("u1", "我刚才问了你什么乐器的问题？", now=T)
        assert any(m.pending for m in again.memories)  # read-your-writes from the buffer
        history = [m["content"] for m in llm_server.chat_requests()[-1]["messages"][1:]]
        assert history[:2] == ["你知道我的乐器爱好是什么?", "你喜欢弹吉他呀！最近练了什么曲子？"]


def test_memory_chat_stamps_the_reply_on_the_given_clock(
    settings: Settings, llm_server: LLMServer
) -> None:
    """With ``now=``, both pushed turns are on that clock: the reply just after the question."""
    with MemoryClient(settings) as client, closing(ChatModel(settings.llm)) as model:
        llm_server.add_rule("上海", "恭喜搬家！")
        MemoryChat(client, model).chat("u1", "我上周刚搬到上海。", now=T)
        question, reply = (b.turn for b in client.services.buffer.read("u1", 10))
    assert question.ts == T
    assert reply.role == "assistant" and reply.content == "恭喜搬家！"
    assert T <= reply.ts < T + timedelta(seconds=30)  # not the real clock, years later


def test_the_repl_chats_until_quit(settings: Settings, llm_server: LLMServer) -> None:
    """Typed lines get replies; /memories lists what was recalled; /quit leaves."""
    with MemoryClient(settings) as client:
        _remember_guitar(client, llm_server)
    llm_server.add_rule("乐器", "你喜欢吉他！")
    lines = iter(["你知道我的乐器爱好是什么?", "", "/memories", "/quit"])
    out: list[str] = []
    assert run_repl(settings, "u1", read=lambda _: next(lines), write=out.append) == 0
    text = "\n".join(out)
    assert "bot> 你喜欢吉他！" in text
    assert "用户爱好是吉他。" in text


def test_the_repl_needs_a_configured_model(make_settings: Callable[..., Settings]) -> None:
    """Without an LLM the REPL says so and exits 2."""
    out: list[str] = []
    assert run_repl(make_settings(), "u1", read=lambda _: "/quit", write=out.append) == 2
    assert "no LLM configured" in out[0]


def test_request_text_helper_reads_the_last_user_message() -> None:
    """The server's matcher looks at the last user message by default."""
    body = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ]
    }
    assert request_text(body, "last_user") == "c" and request_text(body) == "S\na\nb\nc"
