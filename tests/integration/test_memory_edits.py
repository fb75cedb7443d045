"""Edits and deletes take the user's lease, like the workers whose writes they could undo.

A real Redis lease held by "a worker" (this test, through the same Leases the workers use)
makes an edit wait; past the bound it is UserBusy with nothing written; forget still wins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.errors import InvalidInput, NotFound, UserBusy
from memlane.memories import edits
from memlane.models import MemoryStatus
from tests.contract.factories import make_memory, stored

pytestmark = pytest.mark.redis


@pytest.fixture
def client(
    make_settings: Callable[..., Settings], redis_client: redis.Redis
) -> Iterator[MemoryClient]:
    """A client on SQLite and the test's Redis prefix, holding one memory "m" of user "u"."""
    with MemoryClient(make_settings()) as c:
        stored(c, [make_memory("the user likes tea", user_id="u", mem_id="m")])
        yield c


def test_an_edit_waits_for_a_workers_lease_then_writes(client: MemoryClient) -> None:
    """While a worker holds the user, the edit waits; once released, it goes through."""
    leases = client.services.leases
    token = leases.acquire("u")
    assert token is not None
    done: list[float] = []

    def edit() -> None:
        started = time.monotonic()
        client.update_memory("u", "m", content="the user likes coffee")
        done.append(time.monotonic() - started)

    thread = threading.Thread(target=edit)
    thread.start()
    time.sleep(0.5)
    assert not done and client.get_memory("u", "m").status is MemoryStatus.ACTIVE
    leases.release("u", token)
    thread.join(timeout=10)
    assert done and done[0] >= 0.5
    assert client.get_memory("u", "m").status is MemoryStatus.SUPERSEDED
    assert leases.holder("u") is None  # the edit gave the lease back


def test_past_the_wait_edits_and_deletes_are_busy_and_write_nothing(
    client: MemoryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lease held past LEASE_WAIT_S: UserBusy (retryable), the memory untouched, the
    worker's lease still the worker's."""
    monkeypatch.setattr(edits, "LEASE_WAIT_S", 0.3)
    token = client.services.leases.acquire("u")
    assert token is not None
    for call in (
        lambda: client.update_memory("u", "m", content="the user likes coffee"),
        lambda: client.delete_memory("u", "m"),
        lambda: client.delete_memory("u", "m", hard=True),
    ):
        started = time.monotonic()
        with pytest.raises(UserBusy):
            call()
        assert 0.3 <= time.monotonic() - started < 5
    [memory] = client.list_memories("u", status="all").memories
    assert memory.id == "m" and memory.status is MemoryStatus.ACTIVE
    assert client.services.leases.holder("u") == token


def test_a_refused_edit_gives_the_lease_back(client: MemoryClient) -> None:
    """An edit refused after taking the lease (not active, missing) releases it."""
    client.delete_memory("u", "m")
    with pytest.raises(InvalidInput):
        client.update_memory("u", "m", content="x")
    with pytest.raises(NotFound):
        client.delete_memory("u", "missing")
    assert client.services.leases.holder("u") is None


def test_after_forget_user_every_memory_id_is_not_found(client: MemoryClient) -> None:
    """forget_user wins: afterwards edits, deletes and history say NotFound."""
    new = client.update_memory("u", "m", content="the user likes coffee")
    assert client.forget_user("u") == 2
    for mem_id in ("m", new.id):
        with pytest.raises(NotFound):
            client.update_memory("u", mem_id, content="back")
        with pytest.raises(NotFound):
            client.memory_history("u", mem_id)
        with pytest.raises(NotFound):
            client.delete_memory("u", mem_id, hard=True)
    assert client.list_memories("u", status="all").memories == []
