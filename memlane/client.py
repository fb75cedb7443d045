"""``MemoryClient``: the thin synchronous client a bot calls around each reply."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from memlane.buffer.forgetting import start_sweeping, sweep_forgotten
from memlane.buffer.inspection import (
    MAX_TURNS_LIMIT,
    MAX_USAGE_DAYS,
    DayUsage,
    DeadLetter,
    day_usage,
    dead_letter_of,
    usage_days,
)
from memlane.buffer.turns import BufferedTurn
from memlane.buffer.usage import UsageRecorder
from memlane.config import Settings, load_settings
from memlane.errors import NotFound, StoreUnavailable
from memlane.importer import import_memories
from memlane.logging import get_logger
from memlane.memories import edits
from memlane.memories.export import export_lines, import_lines
from memlane.memories.params import (
    MAX_USERS_LIMIT,
    validate_batch_id,
    validate_edit,
    validate_hard,
    validate_limit,
    validate_list,
    validate_memory_id,
    validate_prefix,
)
from memlane.memories.users import list_users
from memlane.models import Memory, MemoryKind, MemoryPage, MemoryVersion, UserPage
from memlane.redaction import Redactor
from memlane.retrieval.ranking import RetrievedMemory
from memlane.retrieval.search import retrieve
from memlane.services import Services
from memlane.validation import (
    validate_flag,
    validate_retrieve,
    validate_turns,
    validate_user_id,
)

log = get_logger(__name__)


class MemoryClient:
    """Push turns, retrieve memories, see, edit, delete and export them, and forget users.

    ``add_turns`` only validates and writes to Redis (one atomic script), so it returns in about
    a millisecond; consolidation happens in the workers.
    """

    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        self.settings = settings
        self.services = services or Services(settings)

    @classmethod
    def from_config(cls, path: str | Path | None = None, **overrides: Any) -> MemoryClient:
        """Build a client from a settings file and ``MEMLANE_*`` environment overrides."""
        return cls(load_settings(path, **overrides))

    def add_turns(
        self,
        user_id: str,
        turns: Sequence[Mapping[str, Any]],
        session_id: str | None = None,
    ) -> list[str]:
        """Validate every turn, then buffer them atomically. Returns the turn ids.

        A turn whose ``turn_id`` was pushed before is a no-op. Raises
        :class:`~memlane.errors.InvalidInput` naming the field, with nothing pushed.
        """
        valid = validate_turns(user_id, turns, session_id, self.settings.limits, self.settings.tz)
        self.services.buffer.push(valid[0].user_id, valid)
        return [t.turn_id for t in valid]

    def pending(self, user_id: str) -> int:
        """How many of the user's turns wait for consolidation."""
        return self.services.buffer.length(self._uid(user_id))

    def watermark(self, user_id: str) -> str | None:
        """The stream id of the user's last consolidated turn (None before the first)."""
        return self.services.buffer.watermark(self._uid(user_id))

    def flush(self, user_id: str, wait: bool = True, timeout: float = 30.0) -> bool:
        """Ask for the user's turns to be consolidated now; optionally wait until they are.

        Returns True only when every turn of the user is stored: none is buffered and none is
        parked in the dead-letter list. Returns False on timeout, and also when some of the
        user's turns were dead-lettered (during the wait or before): ``memlane stats`` shows
        them with their reasons and ``memlane replay`` retries them. Needs running workers and
        beat (``memlane up``).
        """
        uid = self._uid(user_id)
        self.services.buffer.request_flush(uid)
        if wait and not self._wait_consolidated(uid, timeout):
            return False
        if self.pending(uid) != 0:
            return False
        parked = self.services.buffer.dead_letters(uid)
        if parked:
            turns = sum(len(d["entries"]) for d in parked)
            log.warning("flush_found_dead_letters", dead_letters=len(parked), turns=turns)
        return not parked

    def _wait_consolidated(self, uid: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending(uid) == 0 and self.services.leases.holder(uid) is None:
                return True
            time.sleep(0.05)
        return False

    def forget_user(self, user_id: str) -> int:
        """Remove the user's memories, buffered turns, cached extractions and dead letters.

        Forget wins and never waits for a worker: it takes the user's lease whoever holds it
        and leaves a tombstone, so no consolidation, reflection or maintenance granted before
        can write the user back, and writes already under way are undone
        (:mod:`memlane.buffer.forgetting`). Returns the number of memories deleted.

        Raises :class:`~memlane.errors.StoreUnavailable` if the store cannot be reached; the
        buffered turns are gone by then and stale writers stay fenced off: call it again.
        """
        uid = self._uid(user_id)
        svc = self.services
        leases = svc.leases
        token = leases.seize_for_forget(uid)
        try:
            with leases.heartbeat(uid, token):
                start_sweeping(leases, uid, token)
                svc.buffer.forget(uid)
                UsageRecorder(svc.redis, svc.keys).forget(uid)
                try:
                    deleted = svc.store.delete_user(uid)
                    sweep_forgotten(leases, svc.store, uid)
                except StoreUnavailable as e:
                    raise StoreUnavailable(
                        f"forget_user: the memory store is unavailable, so the user's memories "
                        f"are not deleted yet (buffered turns are; stale writers are fenced "
                        f"off); call forget_user again when the store is back. Cause: {e}"
                    ) from e
        finally:
            leases.release(uid, token)
        log.info("user_forgotten", memories=deleted)
        return deleted

    def retrieve(
        self,
        user_id: str,
        query: str,
        top_k: int | None = None,
        kinds: Sequence[MemoryKind | str] | MemoryKind | str | None = None,
        time_range: tuple[datetime | None, datetime | None] | None = None,
        now: datetime | None = None,
        include_pending: bool = False,
        rerank: bool | None = None,
    ) -> list[RetrievedMemory]:
        """The user's memories most relevant to ``query``, best first, each with why.

        ``query`` is non-blank text of at most ``retrieval.max_query_chars`` characters;
        ``top_k`` 1..1000 (None: ``retrieval.top_k``); ``kinds`` one kind or a list;
        ``time_range`` ``(start, end)`` with start before end (naive times take the configured
        timezone). Raises :class:`~memlane.errors.InvalidInput` naming the bad parameter.
        """
        uid = self._uid(user_id)
        p = validate_retrieve(
            query,
            top_k,
            kinds,
            time_range,
            now,
            include_pending,
            rerank,
            self.settings.retrieval,
            self.settings.tz,
        )
        return retrieve(
            self.services,
            uid,
            p.query,
            top_k=p.top_k,
            kinds=p.kinds,
            time_range=p.time_range,
            now=p.now,
            include_pending=p.include_pending,
            rerank=p.rerank,
        )

    def import_memories(
        self, user_id: str, memories: Sequence[Mapping[str, Any]], now: datetime | None = None
    ) -> list[str]:
        """Import ready-made memories (another system's export, a dataset) for one user.

        Bypasses the buffer and the workers; validates every item first (nothing is written
        if one is bad), embeds missing vectors, and upserts with deterministic ids, so
        importing the same file twice changes nothing. Returns the memory ids.
        """
        return import_memories(self.services, user_id, memories, now)

    # -- the memory API: see memlane/memories/ -------

    def list_memories(
        self,
        user_id: str,
        kinds: Sequence[MemoryKind | str] | MemoryKind | str | None = None,
        status: str = "active",
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> MemoryPage:
        """One page of the user's memories, newest first (by ``recorded_at``, then id).

        ``status`` is active, superseded, deleted or all; ``since``/``until`` select
        ``recorded_at`` in ``[since, until)`` (naive times take the configured timezone);
        ``limit`` 1..500. Pass the page's ``cursor`` back, with the same filters, for the
        next page (None: no more). Raises :class:`~memlane.errors.InvalidInput` naming the
        bad parameter.
        """
        uid = self._uid(user_id)
        p = validate_list(kinds, status, since, until, cursor, limit, self.settings.tz)
        return edits.list_memories(self.services.store, uid, p)

    def get_memory(self, user_id: str, memory_id: str) -> Memory:
        """The user's memory with this id, whatever its status (embedding included).

        Raises :class:`~memlane.errors.NotFound` if the user has no such memory; another
        user's memory raises exactly the same.
        """
        uid = self._uid(user_id)
        return edits.get_memory(self.services.store, uid, validate_memory_id(memory_id))

    def update_memory(
        self,
        user_id: str,
        memory_id: str,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        event_time: datetime | str | None = None,
    ) -> Memory:
        """Edit an active memory: write a new version (new id, re-embedded) and supersede the
        old one with reason ``edited``. Returns the new version.

        None keeps a value; ``metadata`` replaces the old metadata. Raises
        :class:`~memlane.errors.NotFound` for a missing memory,
        :class:`~memlane.errors.InvalidInput` (``memory_id``) for one that is not active, and
        :class:`~memlane.errors.UserBusy` if a worker keeps the user busy past
        ``memlane.memories.edits.LEASE_WAIT_S`` (retry).
        """
        uid = self._uid(user_id)
        mem_id = validate_memory_id(memory_id)
        edit = validate_edit(content, metadata, event_time, self.settings.limits, self.settings.tz)
        return edits.update_memory(self.services, uid, mem_id, edit, edits.LEASE_WAIT_S)

    def delete_memory(self, user_id: str, memory_id: str, hard: bool = False) -> int:
        """Delete one memory. Returns how many memories changed.

        Soft by default: the version gets status ``deleted``, is never retrieved and stays in
        its history (deleting it again changes nothing: 0). ``hard=True`` removes every
        version of its chain from the store. Raises :class:`~memlane.errors.NotFound` for a
        missing memory, :class:`~memlane.errors.UserBusy` as ``update_memory`` does.
        """
        uid = self._uid(user_id)
        mem_id = validate_memory_id(memory_id)
        strong = validate_hard(hard)
        return edits.delete_memory(self.services, uid, mem_id, strong, edits.LEASE_WAIT_S)

    def memory_history(self, user_id: str, memory_id: str) -> list[MemoryVersion]:
        """Every version linked to this memory (predecessors, successors and merged
        duplicates), oldest first, each with its status, reason, validity and provenance."""
        uid = self._uid(user_id)
        return edits.memory_history(self.services.store, uid, validate_memory_id(memory_id))

    def export_user(self, user_id: str, include_embeddings: bool = False) -> Iterator[str]:
        """The user's memories as JSON lines (``docs/export-format.md``), each ending in a
        newline: a header first, then every memory with every field and link.

        Parameters are checked now; the lines are read from one store snapshot as they are
        consumed, so memory stays flat at any size.
        """
        uid = self._uid(user_id)
        embeddings = bool(validate_flag(include_embeddings, "include_embeddings"))
        return export_lines(self.services, uid, embeddings)

    def import_user(self, user_id: str, lines: Iterable[str]) -> int:
        """Import an export (any user's) as ``user_id``'s memories; returns how many.

        Every line is validated before anything is written (``InvalidInput`` names
        ``lines[i].field``); ids and every field are kept, so importing twice changes
        nothing. Memories exported without embeddings are embedded.
        """
        return import_lines(self.services, self._uid(user_id), lines)

    def list_users(
        self, cursor: str | None = None, limit: int = 100, prefix: str | None = None
    ) -> UserPage:
        """For operators: one page of users (id order) with their active and stored memory
        counts, pending turns, last push and dead letters; ``limit`` 1..1000, follow
        ``cursor`` (with the same ``prefix``: only ids starting with it)."""
        lim = validate_limit(limit, MAX_USERS_LIMIT)
        return list_users(self.services, cursor, lim, validate_prefix(prefix, self.settings.limits))

    # -- work still in Redis: see memlane/buffer/inspection.py -------

    def buffered_turns(self, user_id: str, limit: int = 100) -> list[BufferedTurn]:
        """The user's turns waiting for consolidation, oldest first; ``limit`` 1..1000."""
        uid = self._uid(user_id)
        return self.services.buffer.read(uid, validate_limit(limit, MAX_TURNS_LIMIT))

    def dead_letters(self, user_id: str) -> list[DeadLetter]:
        """The user's parked batches, oldest first, with their turns and (redacted) reasons."""
        buf, redact = self.services.buffer, Redactor.from_settings(self.settings).text
        letters = buf.dead_letters(self._uid(user_id))
        return [dead_letter_of(d, buf.dead_letter_entries(d), redact) for d in letters]

    def dead_letter(self, user_id: str, batch_id: str) -> DeadLetter:
        """One of the user's dead letters; :class:`~memlane.errors.NotFound` if the user has no
        such batch parked (another user's batch raises exactly the same)."""
        wanted = validate_batch_id(batch_id)
        found = [d for d in self.dead_letters(user_id) if d.batch_id == wanted]
        if not found:
            raise NotFound("batch_id", wanted, "dead letter")
        return found[0]

    def usage_by_day(
        self, user_id: str, days: int = 30, today: date | None = None
    ) -> list[DayUsage]:
        """The user's LLM calls and tokens per UTC day (the days usage is counted in), for the
        ``days`` days (1..90) ending ``today`` (default: today in UTC), oldest first; a day
        without calls is there with zeros."""
        uid = self._uid(user_id)
        span = usage_days(
            today or datetime.now(UTC).date(), validate_limit(days, MAX_USAGE_DAYS, "days")
        )
        counters = UsageRecorder(self.services.redis, self.services.keys).days(span)
        return [day_usage(day, c, uid) for day, c in zip(span, counters, strict=True)]

    def close(self) -> None:
        """Close connections."""
        self.services.close()

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _uid(self, user_id: str) -> str:
        return validate_user_id(user_id, self.settings.limits)
