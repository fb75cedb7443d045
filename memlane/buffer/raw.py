"""Raw mode: every buffered turn becomes a ``raw`` memory, embedded and time-stamped.

The stored content is the turn itself (``speaker: text``), but the *embedded* passage of a
user's turn is the turn together with the turn before it in the same session
(:func:`raw_passages`; an assistant's turn is embedded alone): an answer
such as "Yes, last week" means nothing without its question. Measured on LoCoMo (issue 14):
evidence R@10 in raw mode 65.7 -> 72.3 with the previous turn in the vector, most of it on
single-hop questions. The speaker's name is kept in ``metadata["speaker"]``, so retrieval can
favour the one participant a question names (:mod:`memlane.retrieval.ranking`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from memlane.buffer.turns import BufferedTurn
from memlane.config_sections import NAME_SEPARATOR
from memlane.ids import raw_memory_id
from memlane.models import Memory, MemoryKind, Role, Turn
from memlane.text.tokens import detect_language

# metadata key of a raw memory's speaker name (the turn's ``name``)
SPEAKER_KEY = "speaker"


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
                metadata=raw_metadata(turn),
            )
        )
    return memories


def raw_metadata(turn: Turn) -> dict[str, str]:
    """A raw memory's metadata: the turn's, its role, and the speaker's name when given."""
    named = {SPEAKER_KEY: turn.name} if turn.name else {}
    return {**turn.metadata, "role": turn.role.value, **named}


def speaker_line(entry: BufferedTurn) -> str:
    """The turn as a line of a dialogue: ``name: text``, or ``role: text`` without a name."""
    turn = entry.turn
    return raw_content(entry) if turn.name else f"{turn.role.value}{NAME_SEPARATOR}{turn.content}"


def memory_line(memory: Memory) -> str:
    """A stored raw memory as a line of a dialogue, like :func:`speaker_line` of its turn."""
    name = memory.metadata.get(SPEAKER_KEY)
    if name and memory.content.startswith(f"{name}{NAME_SEPARATOR}"):
        return memory.content  # stored as ``name: text`` already
    return f"{memory.metadata.get('role', Role.USER.value)}{NAME_SEPARATOR}{memory.content}"


def raw_passages(entries: Sequence[BufferedTurn], previous: Memory | None = None) -> list[str]:
    """The text embedded for each turn's raw memory (pure): the previous turn, then this one.

    ``prev speaker: prev text\nspeaker: text`` for a user's turn when the turn before it, in
    the batch or ``previous`` (the last raw memory before the batch), is of the same session;
    else the stored content alone. The stored content never changes: only the vector carries
    context. An assistant's turn is embedded alone: with the user's previous words in its vector
    a bot's reply ("Nice! How long have you played?") outranks what the user said.
    """
    out: list[str] = []
    prev_line = memory_line(previous) if previous is not None else None
    prev_session = previous.session_id if previous is not None else None
    for entry in entries:
        line = speaker_line(entry)
        with_context = entry.turn.role is Role.USER and prev_session == entry.turn.session_id
        if prev_line is not None and with_context:
            out.append(f"{prev_line}\n{line}")
        else:
            out.append(raw_content(entry))
        prev_line, prev_session = line, entry.turn.session_id
    return out
