"""Pure batching logic: readiness, backoff, deterministic ids and raw memories."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from memlane.backoff import backoff_delay
from memlane.buffer.raw import raw_content, raw_memories, raw_passages
from memlane.buffer.turns import BufferedTurn, PendingUser, entry_ms
from memlane.ids import batch_id, default_turn_id, raw_memory_id
from memlane.models import MemoryKind, Role, Turn
from pipelines.consolidation.rules import ready_users

NOW_MS = 1_730_000_000_000
BATCH = 20
MAX_WAIT_S = 30.0
IDLE_S = 3.0


def pending(user: str, length: int, oldest_ago_s: float, last_push_ago_s: float) -> PendingUser:
    """A pending user whose oldest turn and latest push are some seconds before NOW_MS."""
    return PendingUser(
        user_id=user,
        oldest_ms=NOW_MS - int(oldest_ago_s * 1000),
        last_push_ms=NOW_MS - int(last_push_ago_s * 1000),
        length=length,
    )


def ready(*users: PendingUser) -> list[str]:
    """ready_users with the default thresholds."""
    return ready_users(users, NOW_MS, BATCH, MAX_WAIT_S, IDLE_S)


# -- ready_users ------------------------------------------------------------------------------


def test_a_full_batch_is_ready_even_while_the_user_is_talking() -> None:
    """batch_max_turns turns waiting make the user ready at once."""
    assert ready(pending("u", BATCH, oldest_ago_s=0.1, last_push_ago_s=0.0)) == ["u"]
    assert ready(pending("u", BATCH + 5, oldest_ago_s=0.1, last_push_ago_s=0.0)) == ["u"]


def test_max_wait_makes_a_busy_user_ready() -> None:
    """Turns are never held longer than max_wait_s, even if pushes keep coming."""
    assert ready(pending("u", 3, oldest_ago_s=MAX_WAIT_S, last_push_ago_s=0.0)) == ["u"]
    assert ready(pending("u", 3, oldest_ago_s=MAX_WAIT_S - 0.01, last_push_ago_s=0.0)) == []


def test_an_idle_user_is_ready() -> None:
    """A pause of idle_s after the last push ends the conversation chunk."""
    assert ready(pending("u", 1, oldest_ago_s=IDLE_S, last_push_ago_s=IDLE_S)) == ["u"]
    assert ready(pending("u", 1, oldest_ago_s=IDLE_S, last_push_ago_s=IDLE_S - 0.01)) == []


def test_a_small_recent_active_batch_is_not_ready() -> None:
    """Below every threshold nothing is dispatched."""
    assert ready(pending("u", 5, oldest_ago_s=10, last_push_ago_s=1)) == []


def test_a_user_with_no_turns_is_never_ready() -> None:
    """An index entry without turns (already consolidated) is skipped."""
    assert ready(pending("u", 0, oldest_ago_s=3600, last_push_ago_s=3600)) == []


def test_a_flushed_user_is_ready_at_once() -> None:
    """request_flush scores the user 0, which reads as having waited forever."""
    flushed = PendingUser("u", oldest_ms=0, last_push_ms=NOW_MS, length=1)
    assert ready(flushed) == ["u"]


def test_ready_users_come_oldest_first() -> None:
    """Users whose turns waited longest are dispatched first; unready ones are left out."""
    users = [
        pending("mid", 2, oldest_ago_s=50, last_push_ago_s=10),
        pending("new", BATCH, oldest_ago_s=1, last_push_ago_s=0),
        pending("busy", 2, oldest_ago_s=5, last_push_ago_s=0.5),
        pending("old", 2, oldest_ago_s=100, last_push_ago_s=20),
    ]
    assert ready(*users) == ["old", "mid", "new"]


def test_idle_zero_makes_every_user_with_turns_ready() -> None:
    """idle_s = 0 means dispatch whatever is buffered."""
    users = [pending("a", 1, 0, 0), pending("b", 0, 0, 0)]
    assert ready_users(users, NOW_MS, BATCH, MAX_WAIT_S, 0) == ["a"]


def test_ready_users_accepts_any_iterable() -> None:
    """A generator works as input (pending_users may stream)."""
    gen = (pending(u, BATCH, 1, 0) for u in ["x", "y"])
    assert set(ready_users(gen, NOW_MS, BATCH, MAX_WAIT_S, IDLE_S)) == {"x", "y"}


def test_entry_ms_reads_the_arrival_time_of_a_stream_id() -> None:
    """Stream ids start with milliseconds since the epoch."""
    assert entry_ms("1730000000123-7") == 1730000000123


# -- backoff ----------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 5, 10, 40, 1000])
def test_backoff_stays_within_half_and_full_ceiling(attempt: int) -> None:
    """The delay is jittered within [ceiling/2, ceiling], ceiling = min(cap, base * 2^n)."""
    rng = random.Random(attempt)
    ceiling = min(60.0, 1.0 * 2 ** min(attempt, 32))
    for _ in range(200):
        delay = backoff_delay(attempt, 1.0, 60.0, rng)
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_never_exceeds_the_cap() -> None:
    """Huge attempt numbers do not overflow and stay under the cap."""
    rng = random.Random(1)
    assert all(backoff_delay(10**6, 0.5, 5.0, rng) <= 5.0 for _ in range(100))


def test_backoff_grows_with_attempts() -> None:
    """Later attempts wait longer on average until the cap."""
    rng = random.Random(7)
    means = [sum(backoff_delay(n, 0.5, 1000, rng) for _ in range(200)) / 200 for n in range(6)]
    assert means == sorted(means)
    assert means[5] > 8 * means[0]


def test_backoff_is_jittered() -> None:
    """Two workers retrying the same attempt do not wake up in lockstep."""
    rng = random.Random(3)
    assert len({backoff_delay(4, 1.0, 60.0, rng) for _ in range(20)}) > 10


def test_backoff_refuses_negative_attempts() -> None:
    """Attempt numbers are 0-based."""
    with pytest.raises(ValueError):
        backoff_delay(-1, 1.0, 60.0)


# -- ids --------------------------------------------------------------------------------------


def test_batch_id_is_deterministic() -> None:
    """The same user and stream-id range always give the same batch id."""
    assert batch_id("u", "1-0", "5-0") == batch_id("u", "1-0", "5-0")
    assert batch_id("u", "1-0", "5-0").startswith("b-")


@pytest.mark.parametrize(
    "other",
    [("v", "1-0", "5-0"), ("u", "1-1", "5-0"), ("u", "1-0", "6-0")],
    ids=["user", "first", "last"],
)
def test_batch_id_changes_with_user_and_range(other: tuple[str, str, str]) -> None:
    """User and both ends of the range go into the batch id."""
    assert batch_id(*other) != batch_id("u", "1-0", "5-0")


def test_batch_id_parts_cannot_be_shifted() -> None:
    """Length-prefixed hashing: ("a:b", "c") and ("a", "b:c") differ."""
    assert batch_id("a:b", "1", "2") != batch_id("a", ":b1", "2")
    assert batch_id("ab", "1", "2") != batch_id("a", "b1", "2")


def test_raw_memory_id_is_per_user_and_turn() -> None:
    """A turn stored verbatim has one id per (user, turn id)."""
    assert raw_memory_id("u", "t1") == raw_memory_id("u", "t1")
    assert raw_memory_id("u", "t1") != raw_memory_id("u", "t2")
    assert raw_memory_id("u", "t1") != raw_memory_id("v", "t1")
    assert raw_memory_id("u", "t1").startswith("r-")


# -- raw memories -----------------------------------------------------------------------------

SHANGHAI = timezone(timedelta(hours=8))
TS = datetime(2024, 10, 26, 21, 26, tzinfo=SHANGHAI)
NOW = datetime(2024, 10, 27, tzinfo=UTC)


def buffered(
    n: int, content: str, role: Role = Role.USER, name: str | None = None, user: str = "u1"
) -> BufferedTurn:
    """A buffered turn with stream id ``n-0``."""
    turn = Turn(
        user_id=user,
        role=role,
        content=content,
        ts=TS + timedelta(minutes=n),
        turn_id=default_turn_id(user, "s1", TS + timedelta(minutes=n), role.value, content),
        session_id="s1",
        name=name,
        metadata={"source": "chat"},
    )
    return BufferedTurn(f"{n}-0", turn)


def test_raw_memories_make_one_memory_per_turn() -> None:
    """Every turn becomes a raw memory with provenance and the turn's time."""
    entries = [
        buffered(1, "我的爱好是吉他。"),
        buffered(2, "That sounds great!", Role.ASSISTANT),
    ]
    mems = raw_memories("u1", "b-1", entries, NOW)
    assert len(mems) == 2
    for mem, entry in zip(mems, entries, strict=True):
        assert mem.kind is MemoryKind.RAW
        assert mem.user_id == "u1"
        assert mem.id == raw_memory_id("u1", entry.turn.turn_id)
        assert mem.recorded_at == entry.turn.ts
        assert mem.source_turn_ids == [entry.turn.turn_id]
        assert mem.session_id == "s1"
        assert mem.batch_id == "b-1"
        assert mem.created_at == mem.updated_at == NOW
        assert mem.embedding is None  # embedding happens later, in consolidation
        assert mem.metadata == {"source": "chat", "role": entry.turn.role.value}  # no name
    assert mems[0].content == "我的爱好是吉他。"
    assert mems[0].language == "zh"
    assert mems[1].language == "en"


def test_user_turns_are_more_important_than_assistant_turns() -> None:
    """What the user said weighs more than the bot's replies."""
    user, bot = raw_memories(
        "u1", "b", [buffered(1, "hi"), buffered(2, "hello", Role.ASSISTANT)], NOW
    )
    assert user.importance > bot.importance


def test_raw_content_names_the_speaker() -> None:
    """A named speaker is kept in the stored text."""
    entry = buffered(1, "I adopted a cat.", name="Caroline")
    assert raw_content(entry) == "Caroline: I adopted a cat."
    assert raw_memories("u1", "b", [entry], NOW)[0].content == "Caroline: I adopted a cat."


def test_raw_memories_are_deterministic_across_batches() -> None:
    """Replaying the same turns (even under another batch id) yields the same memory ids."""
    entries = [buffered(i, f"turn {i}") for i in range(5)]
    first = [m.id for m in raw_memories("u1", "b-1", entries, NOW)]
    again = [m.id for m in raw_memories("u1", "b-2", entries, NOW + timedelta(hours=1))]
    assert first == again
    assert len(set(first)) == 5


def test_raw_memories_do_not_share_the_turns_metadata_dict() -> None:
    """Adding the role to a memory's metadata leaves the buffered turn untouched."""
    entry = buffered(1, "hi")
    raw_memories("u1", "b", [entry], NOW)
    assert entry.turn.metadata == {"source": "chat"}


def test_raw_memories_keep_the_speaker_name_in_metadata() -> None:
    """A named turn's memory says who spoke; an unnamed one has no speaker key."""
    named, unnamed = raw_memories(
        "u1", "b", [buffered(1, "hi", name="Caroline"), buffered(2, "yo")], NOW
    )
    assert named.metadata["speaker"] == "Caroline"
    assert "speaker" not in unnamed.metadata


def test_raw_passages_carry_the_previous_turn_of_the_session() -> None:
    """A user's turn is embedded after the one before it; the first and the assistant's alone."""
    entries = [
        buffered(1, "Did you go to the lake?", name="Melanie"),
        buffered(2, "Yes, last week.", name="Caroline"),
        buffered(3, "Nice!", Role.ASSISTANT),
    ]
    assert raw_passages(entries) == [
        "Melanie: Did you go to the lake?",
        "Melanie: Did you go to the lake?\nCaroline: Yes, last week.",
        "Nice!",  # the bot's reply must not carry the user's words into its vector
    ]
    stored = [m.content for m in raw_memories("u1", "b", entries, NOW)]
    assert stored == ["Melanie: Did you go to the lake?", "Caroline: Yes, last week.", "Nice!"]


def test_raw_passages_take_the_previous_batch_turn_and_stop_at_a_new_session() -> None:
    """The first turn uses the last raw memory before the batch; another session starts anew."""
    (before,) = raw_memories("u1", "b-0", [buffered(0, "I moved to Berlin.", name="Ann")], NOW)
    first = buffered(1, "Why?", name="Bob")
    other = BufferedTurn("2-0", replace(buffered(2, "Hello.").turn, session_id="s2"))
    assert raw_passages([first, other], before) == [
        "Ann: I moved to Berlin.\nBob: Why?",
        "Hello.",
    ]
    elsewhere = before.replace(session_id="s9")
    assert raw_passages([first], elsewhere) == ["Bob: Why?"]


def test_raw_memories_of_an_empty_batch_are_empty() -> None:
    """No turns, no memories."""
    assert raw_memories("u1", "b", [], NOW) == []


def test_default_turn_id_is_the_same_instant_in_any_offset() -> None:
    """The same moment written in UTC or +08:00 is the same turn."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from memlane.ids import default_turn_id

    utc = datetime(2024, 10, 26, 13, 26, tzinfo=UTC)
    local = utc.astimezone(ZoneInfo("Asia/Shanghai"))
    assert default_turn_id("u", None, utc, "user", "x") == default_turn_id(
        "u", None, local, "user", "x"
    )
