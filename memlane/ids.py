"""Deterministic ids: the same input always yields the same id, so replays upsert."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime


def _digest(*parts: str, size: int = 32) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))  # length-prefixed: no ambiguity between parts
        h.update(data)
    return h.hexdigest()[:size]


def default_turn_id(
    user_id: str, session_id: str | None, ts: datetime, role: str, content: str
) -> str:
    """The idempotency key of a turn the client gave no ``turn_id``.

    The timestamp is hashed in UTC, so the same instant written with another offset gives the
    same id. A turn with neither ``turn_id`` nor ``ts`` gets the push time, so each push of it
    is new: pass a ``turn_id`` to make re-pushes no-ops.
    """
    return "t-" + _digest(user_id, session_id or "", ts.astimezone(UTC).isoformat(), role, content)


def batch_id(user_id: str, first_entry: str, last_entry: str) -> str:
    """A batch is identified by its user and the stream-id range it covers."""
    return "b-" + _digest(user_id, first_entry, last_entry)


def normalise_text(text: str) -> str:
    """Casefolded NFKC text with collapsed whitespace, for content-derived ids."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def raw_memory_id(user_id: str, turn_id: str) -> str:
    """A turn stored verbatim has one memory per (user, turn)."""
    return "r-" + _digest(user_id, turn_id)


def observation_id(user_id: str, batch: str, content: str) -> str:
    """An observation's id derives from its batch and its normalised content."""
    return "o-" + _digest(user_id, batch, normalise_text(content))


def insight_id(user_id: str, subject: str, version_key: str) -> str:
    """One insight version per (user, subject, evidence set)."""
    return "i-" + _digest(user_id, normalise_text(subject), version_key)


def custom_memory_id(user_id: str, content: str, external_id: str | None = None) -> str:
    """Memories added directly; an external id wins over the content."""
    return "c-" + _digest(user_id, external_id or normalise_text(content))


def edited_memory_id(
    user_id: str, memory_id: str, content: str, metadata_json: str, event_time: datetime | None
) -> str:
    """The new version an edit writes: from the edited id and the new values, so a retried
    edit writes the same version again instead of a second one."""
    when = event_time.astimezone(UTC).isoformat() if event_time else ""
    return "e-" + _digest(user_id, memory_id, content, metadata_json, when)
