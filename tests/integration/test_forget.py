"""forget_user removes every trace of one user, nothing of anyone else, and wins over writers."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from memlane.buffer.forgetting import guarded_write, sweep_due
from memlane.buffer.unreflected import UnreflectedCounter
from memlane.buffer.usage import UsageRecorder
from memlane.client import MemoryClient
from memlane.constants import STRAY_WRITE_GRACE_S
from memlane.errors import UserForgotten
from memlane.ids import batch_id
from memlane.llm.chat import Usage
from memlane.models import Memory, MemoryFilter, MemoryKind
from pipelines.maintenance.run import maintain_user
from pipelines.reflection.run import reflect_user
from pipelines.wiring import Wiring
from tests.support.lifecycle import is_reflection, observation, plant, reflection_reply
from tests.support.llm_rig import llm_overrides
from tests.support.llm_server import LLMServer

T0 = datetime(2024, 9, 1, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_forget_removes_usage_counters_and_cached_extractions(make_settings: Any) -> None:
    """Token counters and a cached (uncommitted) extraction of the user are gone; B's stay."""
    with MemoryClient(make_settings()) as client:
        svc = client.services
        rec = UsageRecorder(svc.redis, svc.keys)
        rec.record("a|b", Usage("m", 10, 2))
        rec.record("a", Usage("m", 7, 1))
        rec.record("b", Usage("m", 5, 1))
        client.add_turns("a", [{"role": "user", "content": f"turn {i}"} for i in range(3)])
        client.add_turns("b", [{"role": "user", "content": "keep me"}])
        entries = svc.buffer.read("a", 10)
        cached = svc.keys.extraction(batch_id("a", entries[0].entry_id, entries[1].entry_id))
        svc.redis.set(cached, "{}")
        client.forget_user("a")
        day = rec.day(datetime.now(UTC).strftime("%Y-%m-%d"))
        assert set(day) == {("a|b", "m"), ("b", "m")}
        assert svc.redis.exists(cached) == 0
        assert client.pending("a") == 0 and client.pending("b") == 1


# -- forget wins over writes already under way (in-process; the fault suite does it with workers)


def _memory(user: str, n: int) -> Memory:
    return observation_memory(user, f"secret number {n}", n)


def observation_memory(user: str, content: str, n: int) -> Memory:
    """A small embedded observation of ``user``."""
    return Memory(
        id=f"m{n}",
        user_id=user,
        kind=MemoryKind.OBSERVATION,
        content=content,
        recorded_at=datetime(2024, 10, 26, 21, n, tzinfo=UTC),
        embedding=[1.0] + [0.0] * 383,
    )


def test_guarded_write_records_its_ids_then_settles(make_settings: Any) -> None:
    """Inside the guard the ids are recorded in Redis; after it, the record is gone."""
    with MemoryClient(make_settings()) as client:
        svc = client.services
        token = svc.leases.acquire("w")
        assert token is not None
        with guarded_write(svc.leases, svc.store, "w", token, ["m1"]):
            assert [i.ids for i in svc.leases.intents("w")] == [("m1",)]
            svc.store.upsert([_memory("w", 1)])
        assert svc.leases.intents("w") == []
        assert svc.store.count("w") == 1


def test_forget_between_guard_and_write_is_undone_by_the_writer(make_settings: Any) -> None:
    """A forget lands after the guard, the write after the forget: settle deletes it again."""
    with MemoryClient(make_settings()) as client:
        svc = client.services
        token = svc.leases.acquire("w")
        assert token is not None
        with (
            pytest.raises(UserForgotten),
            guarded_write(svc.leases, svc.store, "w", token, ["m1", "m2"]),
        ):
            client.forget_user("w")
            svc.store.upsert([_memory("w", 1), _memory("w", 2)])
        assert svc.store.count("w", MemoryFilter(include_superseded=True)) == 0
        assert svc.leases.intents("w") == []
        with pytest.raises(UserForgotten):  # and the stale token can never write again
            svc.leases.guard("w", token, ["m3"])


def test_stray_write_of_a_dead_writer_is_swept_until_the_grace_ends(make_settings: Any) -> None:
    """Guard, forget, then the write lands with nobody to undo it: the due sweep deletes it."""
    with MemoryClient(make_settings()) as client:
        svc = client.services
        token = svc.leases.acquire("w")
        assert token is not None
        svc.leases.guard("w", token, ["m1"])  # ... and then the writer dies
        client.forget_user("w")
        assert svc.leases.due_sweeps() == ["w"]
        svc.store.upsert([_memory("w", 1)])  # its request lands late
        assert sweep_due(svc.leases, lambda: svc.store) == 1
        assert svc.store.count("w") == 0
        assert svc.leases.intents("w") != []  # kept: more could land during the grace period
        tomb = svc.leases.tombstone("w")
        assert tomb is not None
        # Past the grace period (the forget made to look old), the sweep ends.
        old = tomb.at_ms - int(STRAY_WRITE_GRACE_S * 1000) - 1
        svc.redis.set(svc.keys.tombstone("w"), f"{tomb.token} {old}", keepttl=True)
        svc.redis.zadd(svc.keys.sweeps, {"w": 0})
        assert sweep_due(svc.leases, lambda: svc.store) == 1
        assert svc.leases.intents("w") == [] and svc.leases.due_sweeps() == []


def test_reflection_does_not_write_back_a_user_forgotten_during_its_llm_call(
    make_settings: Any, llm_server: LLMServer
) -> None:
    """forget_user runs while the reflection call is out: insights and tags are not written."""
    with MemoryClient(make_settings(**llm_overrides(llm_server))) as client:
        svc = client.services
        plant(svc, [observation(svc, "r", f"用户练吉他（第{i}次）。", T0) for i in range(3)])
        answer = reflection_reply({"hobby": ["吉他"]})

        def forget_then_answer(body: dict[str, Any]) -> dict[str, Any]:
            client.forget_user("r")
            return answer(body)

        llm_server.add_rule(is_reflection, forget_then_answer)
        token = svc.leases.acquire("r")
        assert token is not None
        with Wiring(svc.settings, svc) as wiring, pytest.raises(UserForgotten):
            reflect_user(wiring.reflection_ports(), "r", guard=wiring.write_guard("r", token))
        assert svc.store.count("r", MemoryFilter(include_superseded=True)) == 0
        assert UnreflectedCounter(svc.redis, svc.keys).count("r") == 0


def test_maintenance_does_not_write_back_a_forgotten_user(make_settings: Any) -> None:
    """Duplicates found, the user forgotten before the writes: nothing is written back."""
    with MemoryClient(make_settings()) as client:
        svc = client.services
        same = [observation_memory("d", "The user plays the guitar.", n) for n in (1, 2)]
        svc.store.upsert(same)
        token = svc.leases.acquire("d")
        assert token is not None

        wiring = Wiring(svc.settings, svc)

        def forget_first(ids: Sequence[str]) -> AbstractContextManager[None]:
            client.forget_user("d")  # the forget lands between the sweep's reads and writes
            return wiring.write_guard("d", token)(ids)

        with wiring, pytest.raises(UserForgotten):
            maintain_user(
                wiring.maintenance_ports(), "d", svc.settings.maintenance, guard=forget_first
            )
        assert svc.store.count("d", MemoryFilter(include_superseded=True)) == 0
