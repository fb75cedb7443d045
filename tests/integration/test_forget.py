"""forget_user removes every trace of one user, and nothing of anyone else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from memlane.client import MemoryClient
from memlane.ids import batch_id
from memlane.llm.chat import Usage
from memlane.usage import UsageRecorder


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
