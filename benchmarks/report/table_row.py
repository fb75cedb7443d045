"""One row of the goals table (shared by :mod:`.goals` and :mod:`.recall_goals`)."""

from __future__ import annotations

from typing import NamedTuple


class Goal(NamedTuple):
    """One row of the goals table."""

    what: str
    goal: str
    measured: object
    status: str
    reason: str
