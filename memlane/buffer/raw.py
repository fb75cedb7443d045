"""Raw mode: every buffered turn becomes a ``raw`` memory, embedded and time-stamped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from memlane.buffer.turns import BufferedTurn
from memlane.config_sections import NAME_SEPARATOR
from memlane.ids import raw_memory_id
from memlane.models import Memory, MemoryKind, Role
from memlane.text.tokens import detect_language


def raw_content(entry: BufferedTurn) -> str:
    """The stored text of a turn: the speaker's name first when one was given.

    ``LimitSettings.for_store`` leaves room for the name and separator added here.
    """
    turn = entry.turn
    return f"{turn.name}{NAME_SEPARATOR}{turn.content}" if turn.name else turn.content


def raw_memories(
    user_id: str, batch_id: str, entries: Sequence[BufferedTurn], now: datetime
) -> list[Memory]:
    """One raw memory per turn (pure). Ids derive from (user, turn id): replays upsert."""
    memories = []
    for entry in entries:
        turn = entry.turn
        memories.append(
            Memory(
                id=raw_memory_id(user_id, turn.turn_id),
                user_id=user_id,
                kind=MemoryKind.RAW,
                content=raw_content(entry),
                recorded_at=turn.ts,
                created_at=now,
                updated_at=now,
                source_turn_ids=[turn.turn_id],
                session_id=turn.session_id,
                batch_id=batch_id,
                importance=0.6 if turn.role is Role.USER else 0.3,
                language=detect_language(turn.content),
                metadata={**turn.metadata, "role": turn.role.value},
            )
        )
    return memories
