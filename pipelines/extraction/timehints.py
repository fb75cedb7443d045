"""Time expressions of a batch's turns, resolved by memlane's own parser (pure).

The extraction prompt shows them to the model as hints (``#1 上周一 = 2024-10-14``), and an
event time that falls outside every resolved expression of its source turns is corrected to the
one resolution there is (:func:`correct_time`). The resolution is
:mod:`memlane.text.timeparse`'s, against the timestamp of the turn that says it: 上周一 is
Monday of the previous calendar week (said on Saturday 2024-10-26: 2024-10-14), "last Monday"
the most recent Monday before that day (2024-10-21).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo

from memlane.buffer.turns import BufferedTurn
from memlane.models import Role, TimeGranularity
from memlane.text.timeparse import find_time_ranges
from pipelines.extraction.rules import ObservationDraft

PARSE_CHARS = 2000  # the parser's cost grows fast with long CJK text; hints need the start only


@dataclass(frozen=True, slots=True)
class TimeHint:
    """A time expression of turn ``turn`` (1-based), resolved against that turn's timestamp."""

    turn: int
    text: str
    start: datetime
    end: datetime
    granularity: TimeGranularity

    def label(self) -> str:
        """``#1 上周一 = 2024-10-14``."""
        return f"#{self.turn} {self.text} = {format_resolved(self.start, self.granularity)}"


def format_resolved(start: datetime, granularity: TimeGranularity) -> str:
    """A resolved time as the prompt's event_time formats write it."""
    if granularity is TimeGranularity.YEAR:
        return f"{start:%Y}"
    if granularity is TimeGranularity.MONTH:
        return f"{start:%Y-%m}"
    if granularity is TimeGranularity.WEEK:
        return f"week of {start:%Y-%m-%d}"
    if granularity is TimeGranularity.MINUTE:
        return f"{start:%Y-%m-%dT%H:%M}"
    return f"{start:%Y-%m-%d}"


def time_hints(entries: Sequence[BufferedTurn], tz: tzinfo) -> list[TimeHint]:
    """Every time expression of the batch's user turns, resolved against the turn's time."""
    hints: list[TimeHint] = []
    for number, entry in enumerate(entries, 1):
        if entry.turn.role is not Role.USER:
            continue
        said = entry.turn.ts.astimezone(tz)
        for found in find_time_ranges(entry.turn.content[:PARSE_CHARS], said):
            if found.end == said:  # a window up to now (最近三天, past week) dates no event
                continue
            hints.append(TimeHint(number, found.text, found.start, found.end, found.granularity))
    return hints


def correct_time(draft: ObservationDraft, hints: Sequence[TimeHint]) -> ObservationDraft | None:
    """The draft with its event time set to its source turns' one resolved time, when its own
    time falls in none of the batch's resolved times; None when nothing needs (or allows) a
    correction.

    A time that matches an expression of another turn is left alone: the model's turn numbers
    may be the wrong part (a small model cites turn 1 for everything), its date not.
    """
    if draft.event_time is None:
        return None
    if any(h.start <= draft.event_time < h.end for h in hints):
        return None
    resolved = {(h.start, h.granularity) for h in hints if h.turn in draft.source_turns}
    if len(resolved) != 1:
        return None  # none, or several expressions: no telling which one the model meant
    start, granularity = resolved.pop()
    return replace(draft, event_time=start, time_granularity=granularity)
