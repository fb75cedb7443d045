"""The Redis turn buffer: a stream per user, a pending-users index, watermarks, dead letters.

Pushing is one Lua script (atomic, idempotent by turn id). Turns leave the buffer only through
:meth:`TurnBuffer.commit` (after the store write succeeded) or :meth:`TurnBuffer.dead_letter`
(which parks them, with the reason, where ``memlane replay`` finds them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from memlane.buffer import lua
from memlane.buffer.keys import Keys
from memlane.errors import LeaseLost, RedisUnavailable
from memlane.ids import batch_id as derive_batch_id
from memlane.models import Role, Turn

TURN_IDS_TTL_S = 30 * 24 * 3600  # a re-push within 30 days is a no-op


@dataclass(frozen=True, slots=True)
class BufferedTurn:
    """A turn as read back from the buffer, with its stream entry id."""

    entry_id: str
    turn: Turn
    traceparent: str | None = None  # the add_turns span that pushed it (memlane.tracing)


@dataclass(frozen=True, slots=True)
class PendingUser:
    """What the dispatcher needs to know about one user with buffered turns."""

    user_id: str
    oldest_ms: int
    last_push_ms: int
    length: int


# json.dumps(record, ensure_ascii=False), without building an encoder on every call.
_TO_JSON = json.JSONEncoder(ensure_ascii=False).encode


def turn_to_json(turn: Turn, traceparent: str | None = None) -> str:
    """Serialise a turn for the stream (with the pushing span's ``traceparent`` when traced)."""
    record: dict[str, Any] = {
        "turn_id": turn.turn_id,
        "role": turn.role.value,
        "content": turn.content,
        "ts": turn.ts.isoformat(),
        "session_id": turn.session_id,
        "name": turn.name,
        "metadata": turn.metadata,
    }
    if traceparent:
        record["traceparent"] = traceparent
    return _TO_JSON(record)


def turn_from_json(user_id: str, raw: str | bytes) -> Turn:
    """Parse a turn written by :func:`turn_to_json`."""
    d = json.loads(raw)
    return Turn(
        user_id=user_id,
        role=Role(d["role"]),
        content=d["content"],
        ts=datetime.fromisoformat(d["ts"]),
        turn_id=d["turn_id"],
        session_id=d.get("session_id"),
        name=d.get("name"),
        metadata=d.get("metadata") or {},
    )


def _traceparent(raw: str | bytes) -> str | None:
    value = json.loads(raw).get("traceparent")
    return str(value) if value else None


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def push_call(
    k: Keys, user_id: str, turns: Sequence[Turn], traceparent: str | None = None
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of the :data:`~memlane.buffer.lua.PUSH` script for ``turns``
    (shared by :meth:`TurnBuffer.push` and the HTTP service's asyncio push)."""
    args: list[Any] = [user_id, int(time.time() * 1000), TURN_IDS_TTL_S]
    for turn in turns:
        args += [turn.turn_id, turn_to_json(turn, traceparent)]
    return [k.stream(user_id), k.turn_ids(user_id), k.pending, k.last_push, k.users], args


class TurnBuffer:
    """Per-user Redis streams of turns waiting for consolidation."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self.keys = keys
        self._push = client.register_script(lua.PUSH)
        self._commit = client.register_script(lua.COMMIT)
        self._dead = client.register_script(lua.DEAD_LETTER)

    def push(
        self, user_id: str, turns: Sequence[Turn], traceparent: str | None = None
    ) -> list[bool]:
        """Buffer validated turns atomically; returns which were new (False = seen before)."""
        keys, args = push_call(self.keys, user_id, turns, traceparent)
        try:
            flags = self._push(keys=keys, args=args)
        except redis.RedisError as e:
            raise RedisUnavailable(f"push failed: {e}") from e
        return [bool(f) for f in flags]

    def read(self, user_id: str, limit: int, after: str = "-") -> list[BufferedTurn]:
        """Up to ``limit`` of the user's oldest buffered turns."""
        try:
            rows: list[Any] = self._r.xrange(  # type: ignore[assignment]
                self.keys.stream(user_id), min=after, max="+", count=limit
            )
        except redis.RedisError as e:
            raise RedisUnavailable(f"read failed: {e}") from e
        return [
            BufferedTurn(_s(eid), turn_from_json(user_id, f[b"turn"]), _traceparent(f[b"turn"]))
            for eid, f in rows
        ]

    def length(self, user_id: str) -> int:
        """How many turns of the user are buffered."""
        return int(self._call(self._r.xlen, self.keys.stream(user_id)))

    def commit(self, user_id: str, token: str, entries: Sequence[BufferedTurn]) -> int:
        """Remove consolidated turns and advance the watermark, if our lease still holds."""
        k = self.keys
        ids = [e.entry_id for e in entries]
        keys = [k.stream(user_id), k.pending, k.watermark, k.lease(user_id)]
        try:
            removed = int(self._commit(keys=keys, args=[user_id, token, ids[-1], *ids]))
        except redis.RedisError as e:
            raise RedisUnavailable(f"commit failed: {e}") from e
        if removed < 0:
            raise LeaseLost(f"lease of user {user_id!r} was lost before commit")
        return removed

    def dead_letter(
        self, user_id: str, token: str, batch_id: str, entries: Sequence[BufferedTurn], reason: str
    ) -> None:
        """Park a permanently failing batch, turns included, with the reason."""
        k = self.keys
        letter = {
            "batch_id": batch_id,
            "user_id": user_id,
            "reason": reason[:2000],
            "at": time.time(),
            "entries": [[e.entry_id, turn_to_json(e.turn)] for e in entries],
        }
        payload = json.dumps(letter, ensure_ascii=False)
        keys = [k.stream(user_id), k.pending, k.dead, k.lease(user_id)]
        ids = [e.entry_id for e in entries]
        try:
            result = int(self._dead(keys=keys, args=[user_id, token, batch_id, payload, *ids]))
        except redis.RedisError as e:
            raise RedisUnavailable(f"dead-letter failed: {e}") from e
        if result < 0:
            raise LeaseLost(f"lease of user {user_id!r} was lost before dead-lettering")

    def dead_letters(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Parked batches (all, or one user's), oldest first."""
        raw = self._call(self._r.hvals, self.keys.dead)
        letters = [json.loads(v) for v in raw]
        if user_id is not None:
            letters = [d for d in letters if d["user_id"] == user_id]
        return sorted(letters, key=lambda d: d["at"])

    def dead_letter_count(self) -> int:
        """How many batches are parked now."""
        return int(self._call(self._r.hlen, self.keys.dead))

    def dead_letter_entries(self, letter: dict[str, Any]) -> list[BufferedTurn]:
        """The turns kept in a dead letter."""
        uid = letter["user_id"]
        return [BufferedTurn(eid, turn_from_json(uid, raw)) for eid, raw in letter["entries"]]

    def drop_dead_letter(self, batch_id: str) -> None:
        """Forget a dead letter once it was replayed successfully."""
        self._call(self._r.hdel, self.keys.dead, batch_id)

    def watermark(self, user_id: str) -> str | None:
        """The stream id of the user's last consolidated turn."""
        value = self._call(self._r.hget, self.keys.watermark, user_id)
        return _s(value) if value is not None else None

    def pending_users(self) -> list[PendingUser]:
        """Every user with buffered turns, with what readiness depends on."""
        k = self.keys
        users = self._call(self._r.zrange, k.pending, 0, -1, withscores=True)
        if not users:
            return []
        names = [_s(u) for u, _ in users]
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(k.last_push, names)
        for name in names:
            pipe.xlen(k.stream(name))
        try:
            last, *lengths = pipe.execute()
        except redis.RedisError as e:
            raise RedisUnavailable(f"pending scan failed: {e}") from e
        return [
            PendingUser(n, int(score), int(lp or score), int(ln))
            for (n, score), lp, ln in zip(
                zip(names, (s for _, s in users), strict=True), last, lengths, strict=True
            )
        ]

    def request_flush(self, user_id: str) -> None:
        """Make the user ready at the next dispatch, whatever the batching thresholds say."""
        if self.length(user_id):
            self._call(self._r.zadd, self.keys.pending, {user_id: 0})

    def repair_pending(self) -> int:
        """Re-index users who have buffered turns but no pending entry; returns how many."""
        repaired = 0
        for user_id in self.known_users():
            first = self.read(user_id, 1)
            if first and self._call(self._r.zscore, self.keys.pending, user_id) is None:
                self._call(
                    self._r.zadd, self.keys.pending, {user_id: entry_ms(first[0].entry_id)}, nx=True
                )
                repaired += 1
        return repaired

    def activity(self, user_ids: Sequence[str]) -> list[tuple[int, int | None]]:
        """(buffered turns, last push in ms or None) of each user, in one round trip."""
        if not user_ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(self.keys.last_push, list(user_ids))
        for user_id in user_ids:
            pipe.xlen(self.keys.stream(user_id))
        try:
            last, *lengths = pipe.execute()
        except redis.RedisError as e:
            raise RedisUnavailable(f"activity scan failed: {e}") from e
        return [
            (int(n), int(ms) if ms is not None else None)
            for n, ms in zip(lengths, last, strict=True)
        ]

    def known_users(self) -> list[str]:
        """Every user id ever pushed."""
        return sorted(_s(u) for u in self._call(self._r.smembers, self.keys.users))

    def forget(self, user_id: str) -> None:
        """Remove every trace of the user from the buffer: turns, ids, indexes, dead letters."""
        k = self.keys
        dead = [d["batch_id"] for d in self.dead_letters(user_id)]
        dead += self._possible_batches(user_id)
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(k.stream(user_id), k.turn_ids(user_id))
        pipe.zrem(k.pending, user_id)
        pipe.zrem(k.unreflected, user_id)
        pipe.hdel(k.last_push, user_id)
        pipe.hdel(k.watermark, user_id)
        pipe.srem(k.users, user_id)
        for batch in dead:
            pipe.hdel(k.dead, batch)
            pipe.hdel(k.attempts, batch)
            pipe.delete(k.extraction(batch))
        try:
            pipe.execute()
        except redis.RedisError as e:
            raise RedisUnavailable(f"forget failed: {e}") from e

    def _possible_batches(self, user_id: str, scan: int = 1000) -> list[str]:
        """Ids of every batch that could start at the user's oldest buffered turn.

        A batch that failed after its LLM extraction was cached, but before commit, left that
        cache under one of these ids; forgetting the user must remove it too.
        """
        entries = self.read(user_id, scan)
        if not entries:
            return []
        first = entries[0].entry_id
        return [derive_batch_id(user_id, first, e.entry_id) for e in entries]

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as e:
            raise RedisUnavailable(f"redis call failed: {e}") from e


def entry_ms(entry_id: str) -> int:
    """The arrival time (ms since epoch) encoded in a stream entry id."""
    return int(entry_id.split("-", 1)[0])
