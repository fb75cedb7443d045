"""What an inspector shows of a user's work still in Redis: dead letters and usage by day.

Pure shapes and helpers over what :class:`~memlane.buffer.turns.TurnBuffer` and
:class:`~memlane.buffer.usage.UsageRecorder` read; ``MemoryClient`` does the reading.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from memlane.buffer.turns import BufferedTurn
from memlane.buffer.usage import FIELDS

MAX_TURNS_LIMIT = 1_000
MAX_USAGE_DAYS = 90


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A parked batch of one user: why it failed (secrets masked), when, and its turns."""

    batch_id: str
    reason: str
    at: datetime
    turns: list[BufferedTurn]


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """One model's LLM calls and tokens in one day."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One user's LLM usage in one UTC day, in total and by model (zeros on a quiet day)."""

    day: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_model: dict[str, ModelUsage] = field(default_factory=dict)


def dead_letter_of(
    letter: Mapping[str, Any], turns: list[BufferedTurn], redact: Callable[[str], str]
) -> DeadLetter:
    """A stored dead letter (as ``TurnBuffer.dead_letters`` reads it) for display.

    The reason is an exception's text and may quote a secret (a URL with a password, a
    key in an error body): it goes through ``redact`` before anyone sees it.
    """
    return DeadLetter(
        batch_id=str(letter["batch_id"]),
        reason=redact(str(letter.get("reason", ""))),
        at=datetime.fromtimestamp(float(letter["at"]), UTC),
        turns=turns,
    )


def usage_days(today: date, days: int) -> list[str]:
    """The ``days`` days ending with ``today``, oldest first, as ``YYYY-MM-DD``."""
    return [(today - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def day_usage(
    day: str, counters: Mapping[tuple[str, str], Mapping[str, int]], user_id: str
) -> DayUsage:
    """The user's usage in one day's counters (``UsageRecorder.day``), summed over models."""
    by_model = {
        model: ModelUsage(**{f: int(values.get(f, 0)) for f in FIELDS})
        for (user, model), values in sorted(counters.items())
        if user == user_id
    }
    models = by_model.values()
    return DayUsage(
        day=day,
        calls=sum(m.calls for m in models),
        prompt_tokens=sum(m.prompt_tokens for m in models),
        completion_tokens=sum(m.completion_tokens for m in models),
        by_model=by_model,
    )
