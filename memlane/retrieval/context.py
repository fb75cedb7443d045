"""Memories as lines for a prompt: ``[2024-10-26 21:26 周六] 用户爱好是吉他。`` (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from memlane.models import Memory, memory_time
from memlane.retrieval.ranking import RetrievedMemory

WEEKDAYS = {
    "zh": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}


def format_time(memory: Memory, language: str, tz: tzinfo | None = None) -> str:
    """``2024-10-26 21:26 周六`` (or ``Sat``), trimmed to the event time's granularity."""
    when = memory_time(memory)
    when = when.astimezone(tz) if tz else when
    gran = memory.time_granularity.value if memory.event_time and memory.time_granularity else ""
    if gran == "year":
        return f"{when:%Y}"
    if gran == "month":
        return f"{when:%Y-%m}"
    day = WEEKDAYS["zh" if language == "zh" else "en"][when.weekday()]
    if gran in {"day", "week"}:
        return f"{when:%Y-%m-%d} {day}"
    return f"{when:%Y-%m-%d %H:%M} {day}"


def format_context(
    memories: Sequence[RetrievedMemory | Memory], language: str = "zh", tz: tzinfo | None = None
) -> list[str]:
    """Lines for a system prompt: ``[2024-10-26 21:26 周六] 用户爱好是吉他。``."""
    lines = []
    for item in memories:
        memory = item.memory if isinstance(item, RetrievedMemory) else item
        lines.append(f"[{format_time(memory, language, tz)}] {memory.content}")
    return lines
