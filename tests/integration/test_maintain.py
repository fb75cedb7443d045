"""Maintenance sweeps in-process: real Redis, real stores, real embeddings, the fake LLM server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.config_sections import MaintenanceSettings
from memlane.models import MemoryKind, MemoryStatus, SupersedeReason
from memlane.services import Services
from pipelines.maintenance.rules import ARCHIVED
from pipelines.maintenance.run import MaintenanceResult, maintain_user
from pipelines.wiring import Wiring
from tests.support.lifecycle import (
    backend_settings,  # noqa: F401 (fixture)
    everything,
    is_maintenance,
    observation,
    plant,
)
from tests.support.llm_rig import llm_overrides
from tests.support.llm_server import LLMServer, request_text

pytestmark = pytest.mark.redis

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime.now(SH)


def sweep(svc: Services, user: str, **maintenance: Any) -> MaintenanceResult:
    """One sweep of ``user`` under a real lease."""
    settings = MaintenanceSettings(**maintenance)
    token = svc.leases.acquire(user)
    assert token is not None
    try:
        with Wiring(svc.settings, svc) as wiring:
            return maintain_user(wiring.maintenance_ports(), user, settings)
    finally:
        svc.leases.release(user, token)


def decide(relations: dict[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Answer each pair by the first key word found in its text (else distinct)."""

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        blocks = (
            request_text(body, "last_user").split("第 ")[1:]
            or request_text(body, "last_user").split("pair ")[1:]
        )
        out = []
        for i, block in enumerate(blocks):
            relation = next((r for w, r in relations.items() if w in block), "distinct")
            out.append({"pair": i, "relation": relation})
        return {"decisions": out}

    return reply


@pytest.fixture
def svc(
    backend_settings: Callable[..., Settings],  # noqa: F811
    llm_server: LLMServer,
) -> Iterator[Services]:
    client = MemoryClient(backend_settings(**llm_overrides(llm_server)))
    yield client.services
    client.close()


def test_a_planted_duplicate_pair_is_merged_with_both_provenances(
    svc: Services, llm_server: LLMServer
) -> None:
    """Same fact twice (different batches, turns): one stays, with both turns; no LLM call."""
    a = observation(svc, "m1", "用户喜欢喝美式咖啡。", NOW - timedelta(days=30), "food", 0.6)
    b = observation(svc, "m1", "用户喜欢喝美式咖啡。", NOW - timedelta(days=2), "food", 0.4)
    other = observation(svc, "m1", "用户养了一只橘猫。", NOW - timedelta(days=5), "pet")
    plant(svc, [a, b, other])
    result = sweep(svc, "m1")
    assert (result.merged, result.contradicted, result.llm_calls) == (1, 0, 0)
    stored = {m.id: m for m in everything(svc, "m1")}
    kept, gone = stored[a.id], stored[b.id]  # a: the more important (and earlier) one
    assert kept.status is MemoryStatus.ACTIVE
    assert set(kept.source_turn_ids) == set(a.source_turn_ids) | set(b.source_turn_ids)
    assert gone.status is MemoryStatus.SUPERSEDED and gone.superseded_by == a.id
    assert gone.reason is SupersedeReason.DUPLICATE
    assert stored[other.id].status is MemoryStatus.ACTIVE
    assert sweep(svc, "m1").merged == 0  # idempotent
    assert llm_server.chat_calls == 0


def test_a_contradiction_three_weeks_apart_keeps_the_newer_fact(
    svc: Services, llm_server: LLMServer
) -> None:
    """Same subject, LLM says contradiction: older superseded, valid_to = the newer's time."""
    llm_server.add_rule(is_maintenance, decide({"上海": "contradiction"}))
    old = observation(svc, "m2", "用户住在北京朝阳区。", NOW - timedelta(days=22), "location")
    new = observation(svc, "m2", "用户已经搬到上海浦东住了。", NOW - timedelta(days=1), "location")
    plant(svc, [old, new])
    result = sweep(svc, "m2")
    assert (result.contradicted, result.llm_calls) == (1, 1)
    stored = {m.id: m for m in everything(svc, "m2")}
    assert stored[new.id].status is MemoryStatus.ACTIVE
    assert stored[old.id].status is MemoryStatus.SUPERSEDED
    assert stored[old.id].superseded_by == new.id
    assert stored[old.id].valid_to == new.recorded_at
    assert stored[old.id].reason is SupersedeReason.CONTRADICTION
    active = svc.store.list("m2").memories
    assert [m.id for m in active] == [new.id]


def test_distinct_pairs_stay_and_raw_mode_skips_the_llm(
    make_settings: Callable[..., Settings],
) -> None:
    """Without a chat model only the automatic duplicates are merged; nothing else changes."""
    with MemoryClient(make_settings()) as client:
        svc = client.services
        old = observation(svc, "m3", "用户住在北京朝阳区。", NOW - timedelta(days=22), "location")
        new = observation(svc, "m3", "用户已经搬到上海浦东住了。", NOW, "location")
        plant(svc, [old, new])
        result = sweep(svc, "m3")
        assert (result.merged, result.contradicted, result.llm_calls) == (0, 0, 0)
        assert svc.store.count("m3") == 2


def test_forgetting_is_off_by_default_and_archives_old_unimportant_memories_when_on(
    make_settings: Callable[..., Settings],
) -> None:
    """Off: nothing archived. On: the old trivial one is archived, the old important one stays."""
    with MemoryClient(make_settings()) as client:
        svc = client.services
        trivial = observation(
            svc, "m4", "用户那天午饭吃了面条。", NOW - timedelta(days=500), "food", 0.2
        )
        core = observation(
            svc, "m4", "用户的女儿叫小雨。", NOW - timedelta(days=500), "family", 1.0
        )
        recent = observation(svc, "m4", "用户今天喝了奶茶。", NOW - timedelta(days=3), "food", 0.1)
        plant(svc, [trivial, core, recent])
        assert sweep(svc, "m4").archived == 0
        assert svc.store.count("m4") == 3
        result = sweep(svc, "m4", forgetting_enabled=True, forgetting_max_age_days=365)
        assert result.archived == 1
        stored = {m.id: m for m in everything(svc, "m4")}
        gone = stored[trivial.id]
        assert gone.status is MemoryStatus.SUPERSEDED and gone.superseded_by == ARCHIVED
        assert gone.metadata["archived"] is True
        assert gone.reason is SupersedeReason.ARCHIVED
        assert stored[core.id].status is MemoryStatus.ACTIVE
        assert stored[recent.id].status is MemoryStatus.ACTIVE


def test_raw_memories_covered_by_observations_expire_only_when_enabled(
    make_settings: Callable[..., Settings],
) -> None:
    """A raw turn whose turn an observation covers is superseded by that observation."""
    with MemoryClient(make_settings()) as client:
        svc = client.services
        raw = observation(svc, "m5", "我下个月去成都出差", NOW, kind=MemoryKind.RAW, turns=["t-1"])
        lone = observation(svc, "m5", "今天好累", NOW, kind=MemoryKind.RAW, turns=["t-2"])
        obs = observation(svc, "m5", "用户下个月去成都出差。", NOW, "travel", turns=["t-1"])
        plant(svc, [raw, lone, obs])
        assert sweep(svc, "m5").expired == 0
        assert sweep(svc, "m5", expire_covered_raw=True).expired == 1
        stored = {m.id: m for m in everything(svc, "m5")}
        assert stored[raw.id].superseded_by == obs.id
        assert stored[raw.id].reason is SupersedeReason.EXPIRED
        assert stored[lone.id].status is MemoryStatus.ACTIVE
