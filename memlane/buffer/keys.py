"""Formats the Redis key templates of :mod:`memlane.constants` under one prefix.

One method (or property) per key: nothing else in memlane builds a key string.
"""

from __future__ import annotations

from dataclasses import dataclass

from memlane import constants as c


@dataclass(frozen=True, slots=True)
class Keys:
    """Every Redis key memlane uses, for one key prefix."""

    prefix: str

    def stream(self, user_id: str) -> str:
        """The user's buffered turns."""
        return c.KEY_STREAM.format(p=self.prefix, u=user_id)

    def turn_ids(self, user_id: str) -> str:
        """Turn ids already accepted for the user (idempotent re-push)."""
        return c.KEY_TURN_IDS.format(p=self.prefix, u=user_id)

    def lease(self, user_id: str) -> str:
        """The user's consolidation/reflection lease."""
        return c.KEY_LEASE.format(p=self.prefix, u=user_id)

    def tombstone(self, user_id: str) -> str:
        """The fencing token and time of the user's last ``forget_user``."""
        return c.KEY_TOMBSTONE.format(p=self.prefix, u=user_id)

    def writes(self, user_id: str) -> str:
        """Store writes in flight for the user, by lease token (swept if the user is forgotten)."""
        return c.KEY_WRITES.format(p=self.prefix, u=user_id)

    def extraction(self, batch_id: str) -> str:
        """The cached LLM extraction of a batch."""
        return c.KEY_EXTRACTION.format(p=self.prefix, b=batch_id)

    def usage(self, day: str) -> str:
        """Token usage counters for one day (YYYY-MM-DD)."""
        return c.KEY_USAGE.format(p=self.prefix, d=day)

    def night_claim(self, job: str, night: str) -> str:
        """Set once by the first firing of a nightly ``job`` on ``night`` (YYYY-MM-DD)."""
        return c.KEY_NIGHT_CLAIM.format(p=self.prefix, j=job, n=night)

    def night_users(self, job: str, night: str) -> str:
        """The snapshot of the users a nightly ``job`` hands out on ``night``, in waves."""
        return c.KEY_NIGHT_USERS.format(p=self.prefix, j=job, n=night)

    def night_wave(self, job: str, night: str, offset: int) -> str:
        """Set once when the wave at ``offset`` of a nightly ``job`` was handed out."""
        return c.KEY_NIGHT_WAVE.format(p=self.prefix, j=job, n=night, o=offset)

    def llm_format(self, provider: str) -> str:
        """The structured output format a chat provider takes (``llm.formats.provider_id``)."""
        return c.KEY_LLM_FORMAT.format(p=self.prefix, v=provider)

    def limit_window(self, provider: str) -> str:
        """A provider key's sliding window of admitted calls (``llm.limits``)."""
        return c.KEY_LIMIT_WINDOW.format(p=self.prefix, k=provider)

    def limit_tokens(self, provider: str) -> str:
        """The tokens reserved by each call in a provider key's window, and their sum."""
        return c.KEY_LIMIT_TOKENS.format(p=self.prefix, k=provider)

    def early_reflection(self, user_id: str) -> str:
        """Set (with a TTL) while an early reflection of the user is on its way."""
        return c.KEY_EARLY_REFLECTION.format(p=self.prefix, u=user_id)

    def task_status(self, task_id: str) -> str:
        """How a lifecycle task ended (:class:`memlane.buffer.status.TaskStatus`)."""
        return c.KEY_TASK_STATUS.format(p=self.prefix, t=task_id)

    def api_key(self, digest: str) -> str:
        """One API key of the HTTP service, by its SHA-256: id, tenant, limits, token bucket."""
        return c.KEY_API_KEY.format(p=self.prefix, h=digest)

    @property
    def api_keys(self) -> str:
        """Every API key: key id -> JSON description (tenant, label, SHA-256)."""
        return c.KEY_API_KEYS.format(p=self.prefix)

    @property
    def pending(self) -> str:
        """Users with buffered turns, scored by their oldest turn's arrival (ms)."""
        return c.KEY_PENDING.format(p=self.prefix)

    @property
    def last_push(self) -> str:
        """User -> arrival (ms) of their latest push."""
        return c.KEY_LAST_PUSH.format(p=self.prefix)

    @property
    def watermark(self) -> str:
        """User -> last consolidated stream id."""
        return c.KEY_WATERMARK.format(p=self.prefix)

    @property
    def sweeps(self) -> str:
        """Forgotten users whose in-flight writes are swept again, scored by when (ms)."""
        return c.KEY_SWEEPS.format(p=self.prefix)

    @property
    def fence(self) -> str:
        """Counter issuing fencing tokens."""
        return c.KEY_FENCE.format(p=self.prefix)

    @property
    def dead(self) -> str:
        """Batch id -> dead letter (JSON)."""
        return c.KEY_DEAD.format(p=self.prefix)

    @property
    def attempts(self) -> str:
        """Batch id -> attempts so far."""
        return c.KEY_ATTEMPTS.format(p=self.prefix)

    @property
    def stopped_workers(self) -> str:
        """Worker id -> when that worker was stopped on purpose (its attempts are given back)."""
        return c.KEY_STOPPED_WORKERS.format(p=self.prefix)

    @property
    def users(self) -> str:
        """Every user id seen."""
        return c.KEY_USERS.format(p=self.prefix)

    @property
    def unreflected(self) -> str:
        """User -> observations written since their last reflection."""
        return c.KEY_UNREFLECTED.format(p=self.prefix)

    @property
    def llm_checks(self) -> str:
        """``model|check`` -> how many of the model's outputs the checks refused or repaired."""
        return c.KEY_LLM_CHECKS.format(p=self.prefix)
