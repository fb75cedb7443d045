"""Reflection in-process: real Redis, real stores (SQLite and Elasticsearch), real embeddings.

Only the chat model is faked, by the local OpenAI-compatible server, scripted to assign the
observations it is shown to subjects by keyword.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from memlane.buffer.unreflected import UnreflectedCounter
from memlane.buffer.usage import UsageRecorder
from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.errors import LLMBadOutput, LLMUnavailable
from memlane.models import Memory, MemoryKind, MemoryStatus, SupersedeReason
from memlane.services import Services
from pipelines.reflection.rules import TAG_REFLECTED, TAG_SUBJECT
from pipelines.reflection.run import ReflectionResult, ReflectOptions, reflect_user
from pipelines.wiring import Wiring
from tests.support.lifecycle import (
    backend_settings,  # noqa: F401 (fixture)
    everything,
    is_reflection,
    observation,
    plant,
    reflection_reply,
)
from tests.support.llm_rig import llm_overrides
from tests.support.llm_server import LLMServer, request_text

pytestmark = pytest.mark.redis

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2024, 9, 1, 20, 0, tzinfo=SH)
TOPICS = {
    "hobby": ["吉他", "乐队"],
    "job": ["工程师", "公司", "上班"],
    "food": ["火锅", "辣", "川菜"],
}
FACTS = {
    "hobby": [
        "用户周末练吉他。",
        "用户买了一把新吉他。",
        "用户在乐队里弹吉他。",
        "用户喜欢吉他独奏。",
    ],
    "job": [
        "用户是软件工程师。",
        "用户在一家互联网公司上班。",
        "用户每天九点上班。",
        "用户升职为高级工程师。",
    ],
    "food": ["用户喜欢吃火锅。", "用户能吃辣。", "用户最爱川菜。", "用户周五常去吃火锅。"],
}


@dataclass
class Rig:
    """Services on the fake LLM, and a reflection run under a real lease."""

    svc: Services
    client: MemoryClient
    server: LLMServer

    def reflect(self, user: str, options: ReflectOptions | None = None) -> ReflectionResult:
        token = self.svc.leases.acquire(user)
        assert token is not None
        try:
            with Wiring(self.svc.settings, self.svc) as wiring:
                return reflect_user(wiring.reflection_ports(), user, options)
        finally:
            self.svc.leases.release(user, token)

    def reflection_calls(self) -> int:
        return sum(1 for b in self.server.chat_requests() if is_reflection(b))


def _rig(settings: Settings, server: LLMServer) -> Iterator[Rig]:
    client = MemoryClient(settings)
    server.add_rule(is_reflection, reflection_reply(TOPICS))
    yield Rig(client.services, client, server)
    client.close()


@pytest.fixture
def rig(make_settings: Callable[..., Settings], llm_server: LLMServer) -> Iterator[Rig]:
    """SQLite store, LLM on the fake server scripted with the topic assignment."""
    yield from _rig(make_settings(**llm_overrides(llm_server)), llm_server)


@pytest.fixture
def any_rig(
    backend_settings: Callable[..., Settings],  # noqa: F811
    llm_server: LLMServer,
) -> Iterator[Rig]:
    """The same on each store backend (SQLite, Elasticsearch)."""
    yield from _rig(backend_settings(**llm_overrides(llm_server)), llm_server)


def thirty_observations(rig: Rig, user: str) -> list[Memory]:
    """30 observations, 10 per subject, a day apart; the unreflected count set to match."""
    made = []
    for i in range(30):
        subject = list(FACTS)[i % 3]
        text = FACTS[subject][(i // 3) % 4].replace("。", f"（第{i}次提到）。")
        made.append(observation(rig.svc, user, text, T0 + timedelta(days=i), subject))
    UnreflectedCounter(rig.svc.redis, rig.svc.keys).add(user, len(made))
    return plant(rig.svc, made)


def insights(rig: Rig, user: str, active_only: bool = False) -> list[Memory]:
    found = everything(rig.svc, user, MemoryKind.INSIGHT)
    return [m for m in found if m.status is MemoryStatus.ACTIVE] if active_only else found


def test_thirty_observations_give_three_insights_and_a_rerun_adds_nothing(any_rig: Rig) -> None:
    """3 subjects -> 3 insights with their evidence; the same night again writes nothing."""
    rig = any_rig
    planted = thirty_observations(rig, "u1")
    first = rig.reflect("u1")
    assert (first.observations, first.remaining, first.llm_calls) == (30, 0, 1)
    made = insights(rig, "u1")
    assert sorted(m.subject or "" for m in made) == ["food", "hobby", "job"]
    assert all(m.status is MemoryStatus.ACTIVE for m in made)
    by_subject = {m.subject: m for m in made}
    for subject in FACTS:
        evidence = by_subject[subject].metadata["evidence"].split()
        expected = {m.id for i, m in enumerate(planted) if i % 3 == list(FACTS).index(subject)}
        assert set(evidence) == expected and by_subject[subject].metadata["evidence_count"] == 10
        turns = {t for m in planted if m.id in expected for t in m.source_turn_ids}
        assert set(by_subject[subject].source_turn_ids) == turns
    observations = everything(rig.svc, "u1", MemoryKind.OBSERVATION)
    assert all(o.metadata[TAG_REFLECTED] is True for o in observations)
    assert Counter(o.metadata[TAG_SUBJECT] for o in observations) == {s: 10 for s in FACTS}
    assert UnreflectedCounter(rig.svc.redis, rig.svc.keys).count("u1") == 0
    # Usage counters are kept per UTC day (what `memlane stats` reads).
    usage = UsageRecorder(rig.svc.redis, rig.svc.keys).day(datetime.now(UTC).strftime("%Y-%m-%d"))
    assert usage[("u1", "fake-llm")]["calls"] == 1

    again = rig.reflect("u1")
    assert (again.observations, again.llm_calls, again.written) == (0, 0, [])
    assert sorted(m.id for m in insights(rig, "u1")) == sorted(m.id for m in made)
    assert rig.reflection_calls() == 1


def test_a_run_interrupted_before_tagging_is_repeated_without_new_versions(rig: Rig) -> None:
    """Same evidence -> same ids: re-reflecting untagged observations changes no insight."""
    thirty_observations(rig, "u2")
    rig.reflect("u2")
    before = sorted((m.id, m.content) for m in insights(rig, "u2"))
    untagged = [
        o.replace(
            metadata={k: v for k, v in o.metadata.items() if k not in {TAG_REFLECTED, TAG_SUBJECT}}
        )
        for o in everything(rig.svc, "u2", MemoryKind.OBSERVATION)
    ]
    rig.svc.store.upsert(untagged)  # as if the run had died after writing its insights
    again = rig.reflect("u2")
    assert again.observations == 30 and again.llm_calls == 1
    assert again.written == [] and again.superseded == []
    assert sorted((m.id, m.content) for m in insights(rig, "u2")) == before


def test_new_evidence_makes_a_new_version_and_keeps_the_old_as_history(any_rig: Rig) -> None:
    """A changed observation set supersedes the old version, still listed with history."""
    rig = any_rig
    thirty_observations(rig, "u3")
    rig.reflect("u3")
    old = next(m for m in insights(rig, "u3") if m.subject == "job")
    plant(
        rig.svc,
        [
            observation(
                rig.svc, "u3", "用户跳槽到一家新公司当架构师。", T0 + timedelta(days=40), "job"
            )
        ],
    )
    result = rig.reflect("u3")
    assert result.observations == 1 and len(result.written) == 1
    jobs = [m for m in insights(rig, "u3") if m.subject == "job"]
    assert len(jobs) == 2
    new = next(m for m in jobs if m.status is MemoryStatus.ACTIVE)
    stored_old = next(m for m in jobs if m.id == old.id)
    assert stored_old.status is MemoryStatus.SUPERSEDED and stored_old.superseded_by == new.id
    assert stored_old.reason is SupersedeReason.REFLECTION
    assert stored_old.content == old.content  # history kept, not overwritten
    assert new.metadata["evidence_count"] == 11 and "架构师" in new.content
    assert len(insights(rig, "u3", active_only=True)) == 3


def test_an_llm_failure_mid_run_writes_nothing_and_a_retry_completes(rig: Rig) -> None:
    """Two calls; the second fails (500, then malformed JSON): no insight until a clean run."""
    thirty_observations(rig, "u4")
    options = ReflectOptions(max_llm_calls=4, batch_size=16)
    for fault, error in (("500", LLMUnavailable), ("malformed", LLMBadOutput)):
        calls = rig.reflection_calls()
        second_call = rig.server.add_rule(
            lambda b: is_reflection(b) and "- food:" in request_text(b, "last_user"),
            fault=fault,
            times=1,
        )
        rig.server.rules.remove(second_call)
        rig.server.rules.insert(0, second_call)  # ahead of the scripted answers
        with pytest.raises(error):
            rig.reflect("u4", options)
        assert rig.reflection_calls() == calls + 2
        assert insights(rig, "u4") == []
        assert not any(TAG_REFLECTED in o.metadata for o in everything(rig.svc, "u4"))
        assert UnreflectedCounter(rig.svc.redis, rig.svc.keys).count("u4") == 30
    done = rig.reflect("u4", options)
    assert (done.observations, done.llm_calls) == (30, 2)
    assert sorted(m.subject or "" for m in insights(rig, "u4")) == ["food", "hobby", "job"]
    assert UnreflectedCounter(rig.svc.redis, rig.svc.keys).count("u4") == 0


def test_the_call_budget_leaves_the_rest_for_the_next_run(rig: Rig) -> None:
    """At most max_llm_calls calls per run; what is left stays counted and unreflected."""
    thirty_observations(rig, "u5")
    first = rig.reflect("u5", ReflectOptions(max_llm_calls=1, batch_size=12))
    assert (first.observations, first.remaining, first.llm_calls) == (12, 18, 1)
    assert UnreflectedCounter(rig.svc.redis, rig.svc.keys).count("u5") == 18
    second = rig.reflect("u5", ReflectOptions(max_llm_calls=2, batch_size=12))
    assert (second.observations, second.remaining) == (18, 0)
    assert len(insights(rig, "u5", active_only=True)) == 3


def test_insights_outrank_observations_for_profile_questions(rig: Rig) -> None:
    """Through the profile insight boost, the user's profile comes before single facts."""
    thirty_observations(rig, "u6")
    rig.reflect("u6")
    boost = rig.svc.settings.retrieval.profile_insight_boost
    for question in ("你知道我喜欢什么?", "what do I do for a living?", "你知道我的工作是什么吗?"):
        results = rig.client.retrieve("u6", question, top_k=5)
        top = results[0]
        assert top.memory.kind is MemoryKind.INSIGHT, [r.memory.content for r in results]
        assert top.explanation.boosts["insight"] == boost
