"""Exponential backoff with full jitter (pure)."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """Delay before retry number ``attempt`` (0-based): uniform in [c/2, c], c = min(cap, base*2^n).

    "Equal jitter": retries spread out, but never come back sooner than half the ceiling.
    """
    if attempt < 0:
        raise ValueError("attempt: must be >= 0")
    ceiling = min(cap_s, base_s * (2 ** min(attempt, 32)))
    return (rng or random).uniform(ceiling / 2, ceiling)
