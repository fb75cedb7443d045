"""Input at the limits through a real worker to the real stores (issue 11, items 4 and 5).

Before the fix: 32 metadata keys plus raw mode's ``role`` were refused by the store (33 keys);
a name plus 16,000 characters made 16,005; either parked the whole batch, ``flush()`` still said
True and ``memlane replay`` failed every time. Maximum-size turns took 12-28 s each to embed,
past the worker's hard time limit, and the batch ended dead-lettered as "too many attempts".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.config_sections import LimitSettings
from memlane.ids import raw_memory_id
from tests.support.limits import EN, ZH, limit_turns, text_of
from tests.support.worker_proc import Cluster, iter_ids

pytestmark = [pytest.mark.slow, pytest.mark.celery]

LIMITS = LimitSettings()  # the documented defaults: what the worker children run with
TOO_MANY_KEYS = {f"k{i}": i for i in range(60)}  # over the workers' store limit (32 + 8)


def store_settings(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``store`` section for a backend (Elasticsearch: the test's own index)."""
    if backend == "sqlite":
        return {"backend": "sqlite"}
    es_url: str = request.getfixturevalue("es_url")
    es_index: str = request.getfixturevalue("es_index")
    return {"backend": "elasticsearch", "es_url": es_url, "es_index": es_index}


def expected_content(turn: dict[str, Any]) -> str:
    """What a raw memory of ``turn`` must hold: all of it, with the name first."""
    return f"{turn['name']}: {turn['content']}" if turn.get("name") else turn["content"]


def expected_metadata(turn: dict[str, Any]) -> dict[str, Any]:
    """A raw memory's metadata: the turn's, its role, and its speaker's name when given."""
    named = {"speaker": turn["name"]} if turn.get("name") else {}
    return {**turn.get("metadata", {}), "role": turn["role"], **named}


@pytest.mark.timeout(420)
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)]
)
def test_turns_at_every_limit_are_stored_and_none_is_dead_lettered(
    backend: str,
    request: pytest.FixtureRequest,
    fault_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """Each limit alone, all at once, and max_turns_per_call turns in one call: all stored."""
    settings = fault_settings(store=store_settings(backend, request))
    cases = limit_turns(LIMITS)
    many = [
        {"role": "user", "content": f"第{i}条: 我喜欢吉他 {i}"}
        for i in range(LIMITS.max_turns_per_call)
    ]
    with Cluster(settings, tmp_path / "procs") as cluster, MemoryClient(settings) as client:
        cluster.worker(concurrency=2)
        cluster.beat()
        pushed: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for case, turn in cases.items():
            [turn_id] = client.add_turns(f"lim-{case}", [turn])
            pushed[f"lim-{case}"] = [(turn_id, turn)]
        together = list(cases.values())  # every limit case in one call: one user, one buffer
        together_ids = client.add_turns("lim-together", together)
        pushed["lim-together"] = list(zip(together_ids, together, strict=True))
        pushed["lim-many"] = list(zip(client.add_turns("lim-many", many), many, strict=True))

        for user in pushed:
            assert client.flush(user, wait=True, timeout=240), f"{user} not stored"
        assert client.services.buffer.dead_letters() == []
        store = client.services.store
        for user, turns in pushed.items():
            ids = [raw_memory_id(user, turn_id) for turn_id, _ in turns]
            assert sorted(iter_ids(store, user)) == sorted(ids)
            if user == "lim-many":
                continue
            stored = {m.id: m for m in store.get(user, ids)}
            for (_, turn), memory_id in zip(turns, ids, strict=True):
                memory = stored[memory_id]
                assert memory.content == expected_content(turn)  # in full, name included
                assert memory.metadata == expected_metadata(turn)
        assert json.loads(cluster.run("stats").stdout)["dead_letters"] == 0


@pytest.mark.timeout(300)
def test_one_unstorable_turn_takes_no_batch_mate_down(
    fault_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A batch with one turn the store refuses: its mates are stored, flush says False.

    The bad turn arrives as it does in production: from a bot whose client is configured with
    looser limits than the workers. After the workers get the same limits, replay stores it.
    """
    settings = fault_settings(batching={"batch_max_turns": 10, "idle_s": 1.0})
    looser = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_metadata_keys": 64})}
    )
    turns = [{"role": "user", "content": f"第{i}句: 我喜欢吉他。"} for i in range(6)]
    turns[3]["metadata"] = TOO_MANY_KEYS
    with (
        Cluster(settings, tmp_path / "procs") as cluster,
        MemoryClient(settings) as client,
        MemoryClient(looser) as bot,
    ):
        ids = bot.add_turns("iso", turns)  # one call: one batch of six
        strict = cluster.worker("worker-strict", concurrency=1)
        cluster.beat()
        assert client.flush("iso", wait=True, timeout=120) is False
        store = client.services.store
        good = [raw_memory_id("iso", t) for i, t in enumerate(ids) if i != 3]
        assert sorted(iter_ids(store, "iso")) == sorted(good)
        [letter] = client.services.buffer.dead_letters("iso")
        entries = client.services.buffer.dead_letter_entries(letter)
        assert [e.turn.turn_id for e in entries] == [ids[3]]
        assert letter["reason"].startswith("InvalidInput: memories[0].metadata")
        assert "batch_split" in strict.log_text()

        strict.stop()
        cluster.worker("worker-loose", concurrency=1, limits__max_metadata_keys=64)
        replay = cluster.run("replay", "--timeout", "90", timeout=150)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert client.flush("iso", wait=True, timeout=30) is True
        assert sorted(iter_ids(store, "iso")) == sorted(raw_memory_id("iso", t) for t in ids)


@pytest.mark.timeout(300)
def test_a_letter_parked_by_the_old_limits_replays(
    fault_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A dead letter as the old code wrote it (33 keys; name + 16,000 chars) now replays."""
    settings = fault_settings()
    turns = [
        {"role": "user", "content": "x", "metadata": {f"k{i}": i for i in range(32)}},
        {"role": "assistant", "name": "Bob", "content": text_of(16_000, ZH)},
        {"role": "user", "content": "我的爱好是吉他。"},
    ]
    with Cluster(settings, tmp_path / "procs") as cluster, MemoryClient(settings) as client:
        ids = client.add_turns("old", turns)
        buf = client.services.buffer
        token = client.services.leases.acquire("old")
        assert token is not None
        reason = "InvalidInput: memories[0].metadata: more than 32 keys"
        buf.dead_letter("old", token, "b-old-limits", buf.read("old", 3), reason)
        client.services.leases.release("old", token)
        assert client.flush("old", wait=False) is False

        cluster.worker(concurrency=1)
        replay = cluster.run("replay", "--timeout", "90", timeout=150)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "all replayed" in replay.stdout
        assert buf.dead_letters() == []
        stored = client.services.store.get("old", [raw_memory_id("old", t) for t in ids])
        assert [m.content for m in stored] == [expected_content(t) for t in turns]
        assert len(stored[0].metadata) == 33
        assert client.flush("old", wait=False) is True


@pytest.mark.timeout(300)
def test_maximum_size_turns_are_consolidated_within_a_small_time_limit(
    fault_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Four 16,000-char turns (zh, en) in one call: stored in full under a 20 s hard limit.

    Before the fix the batch embedded all of every turn (~28 s for one zh turn), the hard limit
    killed the pool process, and after max_attempts the batch was dead-lettered.
    """
    settings = fault_settings(
        batching={"max_attempts": 2}, worker={"soft_time_limit_s": 15, "time_limit_s": 20}
    )
    size, name = LIMITS.max_content_chars, text_of(LIMITS.max_name_chars, "名")
    turns = [
        {"role": "user", "name": name, "content": text_of(size, ZH)},
        {"role": "assistant", "content": text_of(size, EN)},
        {"role": "user", "content": text_of(size, "我周末去公园弹吉他。")},
        {"role": "assistant", "name": "Ada", "content": text_of(size, EN[::-1])},
    ]
    with Cluster(settings, tmp_path / "procs") as cluster, MemoryClient(settings) as client:
        ids = client.add_turns("big", turns)
        worker = cluster.worker(concurrency=1)
        cluster.beat()
        assert client.flush("big", wait=True, timeout=180), "not stored (or dead-lettered)"
        stored = client.services.store.get("big", [raw_memory_id("big", t) for t in ids])
        assert [m.content for m in stored] == [expected_content(t) for t in turns]
        assert all(m.embedding is not None for m in stored)
        log = worker.log_text()
        for failure in ("TimeLimitExceeded", "WorkerLostError", "too many attempts"):
            assert failure not in log
