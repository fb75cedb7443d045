"""Nightly fan-out, housekeeping and the early trigger against a real Redis (no Celery): the
pipelines decide, and the sending port records what they send."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis

from memlane.buffer.keys import Keys
from memlane.buffer.nightly import NightlyFanOut
from memlane.buffer.turns import TurnBuffer
from memlane.buffer.unreflected import UnreflectedCounter
from memlane.ids import default_turn_id
from memlane.models import Role, Turn
from pipelines.fanout import WAVE_SPACING_S, NightlyJob, Senders, send_wave
from pipelines.maintenance.run import housekeep
from pipelines.reflection.run import EarlyReflection, note_observations, start_nightly_reflection

pytestmark = pytest.mark.redis

SH = ZoneInfo("Asia/Shanghai")


class Sent:
    """The sending port, recording what the pipelines send."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def senders(self) -> Senders:
        return Senders(
            reflect=lambda user: self.calls.append(("reflect", user)),
            maintain=lambda user: self.calls.append(("maintain", user)),
            wave=lambda job, night, offset, delay: self.calls.append(
                ("wave", (job, night, offset, delay))
            ),
        )

    def users(self, task: str) -> list[object]:
        return [arg for name, arg in self.calls if name == task]


def test_a_night_is_handed_out_once_in_waves(redis_client: redis.Redis, key_prefix: str) -> None:
    """120 users: waves of 50, 50, 20, each sent once; the job decides the per-user task."""
    keys = Keys(key_prefix)
    counter = UnreflectedCounter(redis_client, keys)
    users = [f"u{i:03d}" for i in range(120)]
    for user in users:
        counter.add(user, 1)
    fan = NightlyFanOut(redis_client, keys, NightlyJob.REFLECT, wave_size=50)
    sent = Sent()
    now = datetime(2024, 10, 26, 3, 0, tzinfo=SH)
    first = start_nightly_reflection(fan, counter, now, sent.senders())
    assert len(first) == 50 and sent.users("reflect") == first
    assert sent.users("wave") == [(NightlyJob.REFLECT, "2024-10-26", 50, WAVE_SPACING_S)]
    assert start_nightly_reflection(fan, counter, now, sent.senders()) == []  # a second beat
    assert len(send_wave(fan, "2024-10-26", 50, sent.senders())) == 50
    assert len(send_wave(fan, "2024-10-26", 100, sent.senders())) == 20
    assert send_wave(fan, "2024-10-26", 100, sent.senders()) == []  # a redelivered wave
    assert sorted(sent.users("reflect")) == users
    assert [w[2] for w in sent.users("wave")] == [50, 100]
    assert sent.users("maintain") == []


def test_housekeeping_repairs_hourly_and_sweeps_in_its_hour_once(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """Every hour the pending index is repaired; in the cron hour every user is swept once."""
    keys = Keys(key_prefix)
    buffer = TurnBuffer(redis_client, keys)
    ts = datetime(2024, 10, 26, 12, 0, tzinfo=SH)
    for user in ("a", "b"):
        turn_id = default_turn_id(user, None, ts, "user", "hi")
        buffer.push(user, [Turn(user, Role.USER, "hi", ts, turn_id)])
    redis_client.zrem(keys.pending, "a")  # a lost index entry
    fan = NightlyFanOut(redis_client, keys, NightlyJob.MAINTAIN)
    sent = Sent()
    off_hour = housekeep(buffer, fan, datetime(2024, 10, 26, 5, 17, tzinfo=SH), 4, sent.senders())
    assert (off_hour.repaired, off_hour.swept) == (1, 0) and sent.calls == []
    night = housekeep(buffer, fan, datetime(2024, 10, 26, 4, 17, tzinfo=SH), 4, sent.senders())
    assert (night.repaired, night.swept) == (0, 2) and sent.users("maintain") == ["a", "b"]
    again = housekeep(buffer, fan, datetime(2024, 10, 26, 4, 47, tzinfo=SH), 4, sent.senders())
    assert again.swept == 0 and len(sent.calls) == 2


def test_the_early_trigger_sends_once_past_the_threshold(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """Under the threshold nothing; past it one reflect; again only after a reflection ran."""
    counter = UnreflectedCounter(redis_client, Keys(key_prefix))
    sent = Sent()
    early = EarlyReflection(counter, 5, sent.senders().reflect)
    assert not note_observations(early, "u", 3)
    assert note_observations(early, "u", 2)
    assert not note_observations(early, "u", 4)
    assert not note_observations(None, "u", 10)  # raw mode
    counter.end_early("u")
    assert note_observations(early, "u", 1)
    assert sent.users("reflect") == ["u", "u"]
