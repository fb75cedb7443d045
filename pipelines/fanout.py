"""Nightly work handed out in waves, and how work is sent: the routing of the nightly jobs.

A nightly job (reflection, maintenance) claims its night and snapshots its users once, then
hands them out in waves of :data:`WAVE_SIZE`, one wave every :data:`WAVE_SPACING_S`, so a night
with many users never floods the queues, and a beat that fires twice, or a wave delivered twice,
still sends each user once (the claims are :class:`memlane.buffer.nightly.NightlyFanOut`).

Sending is a port, :class:`Senders`, that the Celery tasks pass in: nothing here imports Celery.
Which per-user task a job sends is decided here (:meth:`Senders.per_user`), by the job's enum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from memlane.constants import QUEUE_MAINTENANCE, QUEUE_REFLECT

WAVE_SIZE = 50
WAVE_SPACING_S = 60.0


class NightlyJob(StrEnum):
    """A job fanned out to users once a night; its value names its Redis markers."""

    REFLECT = "reflect"
    MAINTAIN = "maintain"

    @property
    def queue(self) -> str:
        """The queue of the job's per-user tasks (its waves go to the control queue)."""
        return QUEUE_REFLECT if self is NightlyJob.REFLECT else QUEUE_MAINTENANCE


@dataclass(frozen=True, slots=True)
class Senders:
    """How pipelines send work: each callable enqueues one task (the tasks build them)."""

    reflect: Callable[[str], None]  # reflect(user)
    maintain: Callable[[str], None]  # maintain(user)
    wave: Callable[[NightlyJob, str, int, float], None]  # (job, night, offset) after a delay (s)

    def per_user(self, job: NightlyJob) -> Callable[[str], None]:
        """The per-user task a nightly job sends."""
        return self.reflect if job is NightlyJob.REFLECT else self.maintain


class Night(Protocol):
    """The claims of one nightly job (:class:`memlane.buffer.nightly.NightlyFanOut`)."""

    job: str
    wave_size: int

    def start(self, night: str, users: Sequence[str]) -> bool:
        """Claim the night and snapshot ``users``; False if it was claimed already."""

    def wave(self, night: str, offset: int) -> list[str] | None:
        """The users of the wave at ``offset``; None if that wave was handed out already."""


def send_wave(fan: Night, night: str, offset: int, send: Senders) -> list[str]:
    """Send the wave at ``offset`` (once, however often asked) and schedule the next one."""
    job = NightlyJob(fan.job)
    users = fan.wave(night, offset)
    if users is None:
        return []
    per_user = send.per_user(job)
    for user_id in users:
        per_user(user_id)
    if len(users) == fan.wave_size:
        send.wave(job, night, offset + fan.wave_size, WAVE_SPACING_S)
    return users
