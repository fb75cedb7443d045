"""The Redis turn buffer and leases against a real Redis server (no mocks)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from memlane.buffer.keys import Keys
from memlane.buffer.lease import Leases
from memlane.buffer.turns import BufferedTurn, TurnBuffer
from memlane.errors import LeaseLost
from memlane.ids import default_turn_id
from memlane.models import Role, Turn

pytestmark = pytest.mark.redis

TS = datetime(2024, 10, 26, 13, 26, tzinfo=UTC)


def make_turns(user: str, n: int, start: int = 0, prefix: str = "turn") -> list[Turn]:
    """``n`` valid turns of ``user`` with deterministic ids."""
    out = []
    for i in range(start, start + n):
        ts = TS + timedelta(seconds=i)
        content = f"{prefix} {i} of {user}"
        out.append(
            Turn(user, Role.USER, content, ts, default_turn_id(user, None, ts, "user", content))
        )
    return out


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    """The test's key layout."""
    return Keys(key_prefix)


@pytest.fixture
def buffer(redis_client: redis.Redis, keys: Keys) -> TurnBuffer:
    """A turn buffer under the test's own key prefix."""
    return TurnBuffer(redis_client, keys)


@pytest.fixture
def leases(redis_client: redis.Redis, keys: Keys) -> Leases:
    """Leases with a TTL long enough never to lapse during a test."""
    return Leases(redis_client, keys, ttl_s=60)


@pytest.fixture
def lease(leases: Leases) -> Iterator[Leases]:
    """Same as ``leases``; named for readability where a held lease matters."""
    yield leases


def snapshot(client: redis.Redis, prefix: str) -> dict[bytes, object]:
    """Every key of the test prefix with its type-specific contents, for before/after checks."""
    out: dict[bytes, object] = {}
    for key in sorted(client.scan_iter(match=f"{prefix}:*", count=1000)):
        kind = client.type(key)
        if kind == b"stream":
            out[key] = client.xrange(key)
        elif kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            out[key] = sorted(client.smembers(key))
        else:
            out[key] = client.get(key)
    return out


# -- push -------------------------------------------------------------------------------------


def test_push_buffers_turns_in_order(buffer: TurnBuffer) -> None:
    """Pushed turns come back in push order with their content intact."""
    turns = make_turns("u1", 5)
    assert buffer.push("u1", turns) == [True] * 5
    assert buffer.length("u1") == 5
    back = buffer.read("u1", 10)
    assert [b.turn for b in back] == turns
    ids = [b.entry_id for b in back]
    assert ids == sorted(ids, key=lambda e: tuple(int(x) for x in e.split("-")))


def test_repush_of_the_same_turn_id_is_a_no_op(buffer: TurnBuffer) -> None:
    """Idempotency: a turn id seen before is not buffered twice, new ones in the call are."""
    turns = make_turns("u1", 3)
    buffer.push("u1", turns)
    again = buffer.push("u1", [turns[1], *make_turns("u1", 1, start=3)])
    assert again == [False, True]
    assert buffer.length("u1") == 4


def test_duplicate_turn_ids_in_one_call_are_buffered_once(buffer: TurnBuffer) -> None:
    """The same turn twice in one push is stored once."""
    [t] = make_turns("u1", 1)
    assert buffer.push("u1", [t, t]) == [True, False]
    assert buffer.length("u1") == 1


def test_push_indexes_the_user_as_pending(buffer: TurnBuffer) -> None:
    """A push puts the user in the pending index with their oldest arrival."""
    buffer.push("u1", make_turns("u1", 2))
    [user] = buffer.pending_users()
    assert (user.user_id, user.length) == ("u1", 2)
    assert abs(user.oldest_ms - time.time() * 1000) < 60_000
    assert user.last_push_ms >= user.oldest_ms
    assert buffer.known_users() == ["u1"]


def test_repush_only_does_not_refresh_last_push(
    buffer: TurnBuffer, redis_client: redis.Redis
) -> None:
    """A push that adds nothing new does not count as user activity."""
    turns = make_turns("u1", 1)
    buffer.push("u1", turns)
    before = redis_client.hget(buffer.keys.last_push, "u1")
    deadline = time.monotonic() + 2
    while int(time.time() * 1000) <= int(before or 0) and time.monotonic() < deadline:
        time.sleep(0.005)
    buffer.push("u1", turns)
    assert redis_client.hget(buffer.keys.last_push, "u1") == before


# -- commit, watermark, leases ----------------------------------------------------------------


def test_commit_removes_turns_and_advances_the_watermark(buffer: TurnBuffer, lease: Leases) -> None:
    """Only a commit under the lease removes turns; the watermark is the last committed id."""
    buffer.push("u1", make_turns("u1", 5))
    token = lease.acquire("u1")
    assert token is not None
    batch = buffer.read("u1", 3)
    assert buffer.watermark("u1") is None  # reading is not consolidating
    assert buffer.commit("u1", token, batch) == 3
    assert buffer.watermark("u1") == batch[-1].entry_id
    assert buffer.length("u1") == 2
    rest = buffer.read("u1", 10)
    assert [r.turn.content for r in rest] == ["turn 3 of u1", "turn 4 of u1"]
    [user] = buffer.pending_users()
    assert user.oldest_ms == int(rest[0].entry_id.split("-")[0])  # re-scored to the oldest left
    assert buffer.commit("u1", token, rest) == 2
    assert buffer.watermark("u1") == rest[-1].entry_id
    assert buffer.pending_users() == []


def test_commit_with_a_stale_token_raises_and_changes_nothing(
    buffer: TurnBuffer, leases: Leases, redis_client: redis.Redis, key_prefix: str
) -> None:
    """A worker whose lease was taken over cannot remove turns or move the watermark."""
    buffer.push("u1", make_turns("u1", 4))
    old = leases.acquire("u1")
    assert old is not None
    batch = buffer.read("u1", 4)
    redis_client.delete(buffer.keys.lease("u1"))  # the lease lapsed ...
    new = leases.acquire("u1")  # ... and another worker took it
    assert new is not None and int(new) > int(old)
    before = snapshot(redis_client, key_prefix)
    with pytest.raises(LeaseLost):
        buffer.commit("u1", old, batch)
    with pytest.raises(LeaseLost):
        buffer.dead_letter("u1", old, "b-x", batch, "should not park")
    assert snapshot(redis_client, key_prefix) == before
    assert buffer.watermark("u1") is None
    assert buffer.length("u1") == 4


def test_commit_without_any_lease_raises(buffer: TurnBuffer) -> None:
    """No lease at all is the same as a lost one."""
    buffer.push("u1", make_turns("u1", 1))
    with pytest.raises(LeaseLost):
        buffer.commit("u1", "123", buffer.read("u1", 1))
    assert buffer.length("u1") == 1


def test_lease_is_exclusive_and_tokens_increase(leases: Leases) -> None:
    """acquire grants once; fencing tokens grow with every grant; release frees it."""
    first = leases.acquire("u1")
    assert first is not None
    assert leases.acquire("u1") is None
    assert leases.holder("u1") == first
    assert leases.release("u1", first) is True
    assert leases.holder("u1") is None
    second = leases.acquire("u1")
    assert second is not None and int(second) > int(first)
    other = leases.acquire("u2")
    assert other is not None and int(other) > int(second)


def test_release_and_renew_with_a_foreign_token_fail(leases: Leases) -> None:
    """Only the holder may renew or release."""
    token = leases.acquire("u1")
    assert token is not None
    assert leases.renew("u1", "999999") is False
    assert leases.release("u1", "999999") is False
    assert leases.holder("u1") == token
    assert leases.renew("u1", token) is True


def test_renew_extends_the_lease(redis_client: redis.Redis, keys: Keys) -> None:
    """Renewing resets the TTL so a long batch keeps its lease."""
    short = Leases(redis_client, keys, ttl_s=1.0)
    token = short.acquire("u1")
    assert token is not None
    redis_client.pexpire(keys.lease("u1"), 100)
    assert short.renew("u1", token) is True
    assert redis_client.pttl(keys.lease("u1")) > 500


def test_a_lapsed_lease_expires_and_renew_retakes_it(redis_client: redis.Redis, keys: Keys) -> None:
    """A lease expires on its own; its holder may retake it while nobody else did."""
    short = Leases(redis_client, keys, ttl_s=0.2)
    token = short.acquire("u1")
    assert token is not None
    deadline = time.monotonic() + 5
    while short.holder("u1") is not None:
        assert time.monotonic() < deadline, "lease never expired"
        time.sleep(0.02)
    assert short.renew("u1", token) is True
    assert short.holder("u1") == token


def test_renew_fails_once_another_worker_took_over(redis_client: redis.Redis, keys: Keys) -> None:
    """After a takeover the old holder can neither renew nor release."""
    leases = Leases(redis_client, keys, ttl_s=60)
    old = leases.acquire("u1")
    assert old is not None
    redis_client.delete(keys.lease("u1"))
    new = leases.acquire("u1")
    assert new is not None
    assert leases.renew("u1", old) is False
    assert leases.release("u1", old) is False
    assert leases.holder("u1") == new


# -- dead letters -----------------------------------------------------------------------------


def test_dead_letter_parks_turns_with_the_reason(buffer: TurnBuffer, leases: Leases) -> None:
    """A parked batch leaves the stream but keeps every turn, findable by user."""
    turns = make_turns("u1", 3)
    buffer.push("u1", turns)
    buffer.push("u2", make_turns("u2", 1))
    token = leases.acquire("u1")
    assert token is not None
    batch = buffer.read("u1", 3)
    buffer.dead_letter("u1", token, "b-1", batch, "LLMBadOutput: not JSON")
    assert buffer.length("u1") == 0
    assert buffer.watermark("u1") is None  # dead-lettering is not consolidating
    assert [u.user_id for u in buffer.pending_users()] == ["u2"]
    [letter] = buffer.dead_letters("u1")
    assert letter["batch_id"] == "b-1"
    assert letter["reason"] == "LLMBadOutput: not JSON"
    kept = buffer.dead_letter_entries(letter)
    assert [k.turn for k in kept] == turns
    assert [k.entry_id for k in kept] == [b.entry_id for b in batch]
    assert buffer.dead_letters("u2") == []
    assert len(buffer.dead_letters()) == 1
    buffer.drop_dead_letter("b-1")
    assert buffer.dead_letters() == []


def test_dead_letters_are_listed_oldest_first(buffer: TurnBuffer, leases: Leases) -> None:
    """Operators see parked batches in the order they failed."""
    for i, user in enumerate(["x", "y", "z"]):
        buffer.push(user, make_turns(user, 1))
        token = leases.acquire(user)
        assert token is not None
        buffer.dead_letter(user, token, f"b-{i}", buffer.read(user, 1), "boom")
    assert [d["batch_id"] for d in buffer.dead_letters()] == ["b-0", "b-1", "b-2"]


def test_dead_letter_reason_is_truncated(buffer: TurnBuffer, leases: Leases) -> None:
    """A huge error message does not bloat Redis."""
    buffer.push("u1", make_turns("u1", 1))
    token = leases.acquire("u1")
    assert token is not None
    buffer.dead_letter("u1", token, "b-1", buffer.read("u1", 1), "x" * 10_000)
    assert len(buffer.dead_letters()[0]["reason"]) == 2000


# -- flush, repair, forget --------------------------------------------------------------------


def test_request_flush_scores_the_user_zero(buffer: TurnBuffer, redis_client: redis.Redis) -> None:
    """A flushed user looks infinitely old to the dispatcher; an empty one is ignored."""
    buffer.push("u1", make_turns("u1", 1))
    buffer.request_flush("u1")
    buffer.request_flush("nobody")
    assert redis_client.zscore(buffer.keys.pending, "u1") == 0
    assert redis_client.zscore(buffer.keys.pending, "nobody") is None


def test_repair_pending_reindexes_users_with_turns(
    buffer: TurnBuffer, redis_client: redis.Redis
) -> None:
    """A user whose index entry was lost is found again from the known-users set."""
    buffer.push("u1", make_turns("u1", 2))
    buffer.push("u2", make_turns("u2", 1))
    redis_client.zrem(buffer.keys.pending, "u1")
    assert buffer.repair_pending() == 1
    assert {u.user_id for u in buffer.pending_users()} == {"u1", "u2"}
    assert buffer.repair_pending() == 0


def test_forget_removes_every_buffer_trace(
    buffer: TurnBuffer, leases: Leases, redis_client: redis.Redis, key_prefix: str
) -> None:
    """Stream, turn ids, pending entry, watermark and dead letters of the user are gone."""
    buffer.push("gone", make_turns("gone", 4))
    buffer.push("kept", make_turns("kept", 2))
    token = leases.acquire("gone")
    assert token is not None
    buffer.commit("gone", token, buffer.read("gone", 1))
    buffer.dead_letter("gone", token, "b-gone", buffer.read("gone", 1), "boom")
    leases.release("gone", token)
    buffer.forget("gone")
    assert not redis_client.exists(buffer.keys.stream("gone"), buffer.keys.turn_ids("gone"))
    assert buffer.watermark("gone") is None
    assert buffer.dead_letters("gone") == []
    assert [u.user_id for u in buffer.pending_users()] == ["kept"]
    assert buffer.known_users() == ["kept"]
    assert redis_client.hget(buffer.keys.last_push, "gone") is None
    assert buffer.length("kept") == 2
    keys = {k.decode() for k in redis_client.scan_iter(match=f"{key_prefix}:*")}
    assert not [k for k in keys if "gone" in k and "lease" not in k]
    # The turn ids are forgotten too: the same turns may be pushed again.
    assert buffer.push("gone", make_turns("gone", 1)) == [True]


# -- tenant isolation -------------------------------------------------------------------------

TRICKY_USERS = ["a", "a:b", "*", "{a}", "a}", "{", "a*", "?", "[a]", "a b", "用户"]


def test_users_with_redis_significant_names_never_see_each_others_turns(
    buffer: TurnBuffer, leases: Leases
) -> None:
    """Glob characters, colons and hash-tag braces in user ids do not leak between users."""
    for i, user in enumerate(TRICKY_USERS):
        buffer.push(user, make_turns(user, i + 1))
    for i, user in enumerate(TRICKY_USERS):
        got = buffer.read(user, 100)
        assert len(got) == i + 1, user
        assert all(b.turn.user_id == user and b.turn.content.endswith(f"of {user}") for b in got)
        assert buffer.length(user) == i + 1
    assert {u.user_id: u.length for u in buffer.pending_users()} == {
        u: i + 1 for i, u in enumerate(TRICKY_USERS)
    }
    # Committing, parking and forgetting one user leaves the others untouched.
    token = leases.acquire("a")
    assert token is not None
    assert leases.acquire("{a}") is not None  # separate leases
    buffer.commit("a", token, buffer.read("a", 1))
    buffer.forget("*")
    for i, user in enumerate(TRICKY_USERS):
        expected = 0 if user in {"a", "*"} else i + 1
        assert buffer.length(user) == expected, user
    assert buffer.watermark("a") is not None
    assert all(buffer.watermark(u) is None for u in TRICKY_USERS if u != "a")


def test_same_turn_id_under_two_users_is_two_turns(buffer: TurnBuffer) -> None:
    """Idempotency keys are scoped per user."""
    shared = Turn("a", Role.USER, "hello", TS, "client-id-1")
    assert buffer.push("a", [shared]) == [True]
    assert buffer.push("a:b", [Turn("a:b", Role.USER, "hello", TS, "client-id-1")]) == [True]
    assert buffer.length("a") == buffer.length("a:b") == 1


def test_two_prefixes_on_one_server_are_isolated(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """Two deployments (key prefixes) sharing a Redis see nothing of each other."""
    one = TurnBuffer(redis_client, Keys(key_prefix))
    two = TurnBuffer(redis_client, Keys(f"{key_prefix}:other"))
    one.push("u1", make_turns("u1", 2))
    assert two.length("u1") == 0
    assert two.pending_users() == []
    assert len(one.pending_users()) == 1


def test_buffered_turn_round_trips_every_field(buffer: TurnBuffer) -> None:
    """Session, name, metadata and an aware timestamp survive the stream."""
    turn = Turn(
        "u1",
        Role.ASSISTANT,
        "好的，记住了。",
        datetime(2024, 10, 26, 21, 26, tzinfo=UTC) + timedelta(microseconds=5),
        "tid",
        session_id="s1",
        name="Bot",
        metadata={"k": 1, "f": 0.5, "b": False, "n": None, "s": "v"},
    )
    buffer.push("u1", [turn])
    [back] = buffer.read("u1", 1)
    assert isinstance(back, BufferedTurn)
    assert back.turn == turn
