"""The memory API's reads and edits of single memories: list, get, update, delete, history.

Everything is scoped to one (validated) user id: a memory of another user is looked up under
this user's id and so is :class:`~memlane.errors.NotFound`, exactly like a missing one.

Edits and deletes run under the user's lease, the one consolidation, reflection and
maintenance hold while they work. Those pipelines write whole documents they read earlier
(a merged keeper, a tagged observation), so without the lease they could write back a version
an edit just superseded, or a memory just deleted. The wait for the lease is bounded
(:data:`LEASE_WAIT_S`, :func:`memlane.buffer.lease.run_leased_waiting`, which keeps the lease
alive with the same heartbeat a task has); past it :class:`~memlane.errors.UserBusy` says to
retry. The writes go through :func:`memlane.buffer.forgetting.guarded_write`, so
``forget_user`` still wins over them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar, cast

from memlane.buffer.forgetting import guarded_write
from memlane.buffer.lease import Leases, Outcome, run_leased_waiting
from memlane.errors import InvalidInput, NotFound, StoreError, UserBusy
from memlane.memories.params import EditParams, ListParams
from memlane.memories.ports import MemoryServices
from memlane.memories.versions import edited_version, history_view, soft_deleted
from memlane.models import (
    NO_SUCCESSOR,
    Memory,
    MemoryFilter,
    MemoryPage,
    MemoryStatus,
    MemoryVersion,
    SupersedeReason,
    TimeField,
    TimeWindow,
)
from memlane.store.base import MemoryStore

LEASE_WAIT_S = 10.0  # how long an edit or delete waits for a worker to finish with the user
MAX_VERSIONS = 10_000  # a history larger than this is refused rather than walked
ID_CHUNK = 500  # ids per predecessor query
PAGE = 1_000
T = TypeVar("T")


def list_memories(store: MemoryStore, user_id: str, params: ListParams) -> MemoryPage:
    """One page of the user's memories, newest first (``recorded_at``, then id)."""
    window = None
    if params.since is not None or params.until is not None:
        window = TimeWindow(params.since, params.until, TimeField.RECORDED_AT)
    flt = MemoryFilter(
        kinds=params.kinds,
        include_superseded=params.statuses is None,
        statuses=params.statuses,
        time=window,
    )
    page = store.list(user_id, flt, params.limit, params.cursor, newest_first=True)
    return MemoryPage(page.memories, page.cursor)


def get_memory(store: MemoryStore, user_id: str, memory_id: str) -> Memory:
    """The user's memory with this id, whatever its status; NotFound otherwise."""
    found = store.get(user_id, [memory_id])
    if not found:
        raise NotFound("memory_id", memory_id)
    return found[0]


def _under_lease(
    leases: Leases, user_id: str, memory_id: str, wait_s: float, work: Callable[[str], T]
) -> T:
    """``work(token)`` under the user's lease (waiting up to ``wait_s``, then UserBusy).

    A user forgotten meanwhile has no memories: NotFound, as for a missing one. A lease lost
    mid-write (a worker took the user over) is UserBusy: nothing more was written; retry.
    """
    run = run_leased_waiting(leases, user_id, work, wait_s)
    if run.outcome is Outcome.FORGOTTEN:
        raise NotFound("memory_id", memory_id)
    if run.outcome is Outcome.LOST:
        raise UserBusy("user_id: a worker took this user's memories over; retry")
    return cast(T, run.value)


def update_memory(
    services: MemoryServices, user_id: str, memory_id: str, edit: EditParams, wait_s: float
) -> Memory:
    """Write the edited new version, supersede the old one (``edited``); the new version."""
    store, leases = services.store, services.leases

    def work(token: str) -> Memory:
        old = get_memory(store, user_id, memory_id)
        if old.status is not MemoryStatus.ACTIVE:
            raise InvalidInput(
                "memory_id",
                f"memory {memory_id!r} is {old.status.value}; only an active memory can be edited",
            )
        content = edit.content if edit.content is not None else old.content
        vector = services.embedder.embed_passages([content])[0]
        now = datetime.now(UTC)
        new = edited_version(old, edit, now, vector)
        with guarded_write(leases, store, user_id, token, [new.id, old.id]):
            store.upsert([new])
            store.supersede(user_id, [old.id], new.id, now, SupersedeReason.EDITED)
        return get_memory(store, user_id, new.id)

    return _under_lease(leases, user_id, memory_id, wait_s, work)


def delete_memory(
    services: MemoryServices, user_id: str, memory_id: str, hard: bool, wait_s: float
) -> int:
    """Soft-delete one version, or hard-delete its whole chain; how many memories changed."""
    store, leases = services.store, services.leases

    def work(token: str) -> int:
        memory = get_memory(store, user_id, memory_id)
        if hard:
            ids = [m.id for m in version_chain(store, user_id, memory)]
            with guarded_write(leases, store, user_id, token, ids):
                return store.delete(user_id, ids)
        gone = soft_deleted(memory, datetime.now(UTC))
        if gone is None:
            return 0
        with guarded_write(leases, store, user_id, token, [gone.id]):
            store.upsert([gone])
        return 1

    return _under_lease(leases, user_id, memory_id, wait_s, work)


def memory_history(store: MemoryStore, user_id: str, memory_id: str) -> list[MemoryVersion]:
    """The whole version chain of a memory, oldest first."""
    start = get_memory(store, user_id, memory_id)
    return history_view(version_chain(store, user_id, start))


def version_chain(store: MemoryStore, user_id: str, start: Memory) -> list[Memory]:
    """Every version linked to ``start`` by ``superseded_by``, in either direction."""
    found = {start.id: start}
    frontier = [start]
    while frontier:
        successors = [
            m.superseded_by
            for m in frontier
            if m.superseded_by and m.superseded_by != NO_SUCCESSOR
            if m.superseded_by not in found
        ]
        linked = store.get(user_id, list(dict.fromkeys(successors))) if successors else []
        linked += predecessors(store, user_id, [m.id for m in frontier if m.id != NO_SUCCESSOR])
        frontier = []
        for memory in linked:
            if memory.id not in found:
                found[memory.id] = memory
                frontier.append(memory)
        if len(found) > MAX_VERSIONS:
            raise StoreError(f"memory {start.id!r} has over {MAX_VERSIONS} linked versions")
    return list(found.values())


def predecessors(store: MemoryStore, user_id: str, ids: Sequence[str]) -> list[Memory]:
    """The user's memories superseded by any of ``ids``."""
    out: list[Memory] = []
    for start in range(0, len(ids), ID_CHUNK):
        flt = MemoryFilter(
            include_superseded=True, superseded_by=tuple(ids[start : start + ID_CHUNK])
        )
        cursor = None
        while True:
            page = store.list(user_id, flt, PAGE, cursor)
            out.extend(page.memories)
            if page.cursor is None:
                break
            cursor = page.cursor
    return out
