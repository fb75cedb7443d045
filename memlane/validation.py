"""Input validation: pure functions that refuse bad input with :class:`InvalidInput`.

Each error names the offending field (``turns[3].ts``) so a caller can fix it. Validation runs
completely before anything is written.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from memlane.config import LimitSettings
from memlane.errors import InvalidInput
from memlane.ids import default_turn_id
from memlane.models import Role, Turn

MIN_TS = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)
TURN_FIELDS = frozenset({"role", "content", "ts", "turn_id", "name", "metadata", "session_id"})


def _require_utf8(value: str, field: str) -> None:
    """Refuse strings with lone surrogates: they cannot be hashed, stored or sent as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInput(field, "is not valid Unicode text (lone surrogate)") from e


def validate_user_id(user_id: object, limits: LimitSettings, field: str = "user_id") -> str:
    """A user id is 1..max_len characters with no control characters and not all blank."""
    if not isinstance(user_id, str):
        raise InvalidInput(field, f"must be a string, got {type(user_id).__name__}")
    if not user_id.strip():
        raise InvalidInput(field, "must not be empty or blank")
    if len(user_id) > limits.user_id_max_len:
        raise InvalidInput(field, f"longer than {limits.user_id_max_len} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cs", "Cn"} for ch in user_id):
        raise InvalidInput(field, "contains control or unassigned characters")
    return user_id


def validate_optional_id(value: object, field: str, max_len: int = 256) -> str | None:
    """Session ids, turn ids and names: None or a short printable string."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, "must be a non-empty string or null")
    if len(value) > max_len or any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidInput(field, f"must be at most {max_len} printable characters")
    _require_utf8(value, field)
    return value


def validate_content(content: object, limits: LimitSettings, field: str = "content") -> str:
    """Content is non-blank text of at most ``max_content_chars`` characters."""
    if not isinstance(content, str):
        raise InvalidInput(field, f"must be a string, got {type(content).__name__}")
    if not content.strip():
        raise InvalidInput(field, "must not be empty")
    if len(content) > limits.max_content_chars:
        raise InvalidInput(field, f"longer than {limits.max_content_chars} characters")
    _require_utf8(content, field)
    return content


def validate_timestamp(value: object, tz: tzinfo, now: datetime, field: str = "ts") -> datetime:
    """A timestamp between 1970 and one day from now; naive times take ``tz``."""
    if value is None:
        return now
    ts = _to_datetime(value, tz, field)
    if ts < MIN_TS or ts > now + MAX_FUTURE:
        raise InvalidInput(field, f"timestamp {ts.isoformat()} is outside 1970..now+1 day")
    return ts


def _to_datetime(value: object, tz: tzinfo, field: str) -> datetime:
    if isinstance(value, bool):
        raise InvalidInput(field, "must be a datetime, ISO-8601 string or epoch seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidInput(field, "must be finite")
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError) as e:
            raise InvalidInput(field, "epoch seconds out of range") from e
    if isinstance(value, str):
        text = value
        try:
            value = datetime.fromisoformat(text)
        except ValueError as e:
            raise InvalidInput(field, f"not an ISO-8601 timestamp: {text[:40]!r}") from e
    if not isinstance(value, datetime):
        raise InvalidInput(field, "must be a datetime, ISO-8601 string or epoch seconds")
    return value if value.tzinfo else value.replace(tzinfo=tz)


def validate_metadata(
    value: object, limits: LimitSettings, field: str = "metadata"
) -> dict[str, Any]:
    """A small flat dict of string keys to scalar values."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(field, "must be a flat mapping")
    if len(value) > limits.max_metadata_keys:
        raise InvalidInput(field, f"more than {limits.max_metadata_keys} keys")
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > 64:
            raise InvalidInput(field, "keys must be strings of 1..64 characters")
        _require_utf8(key, field)
        if isinstance(item, str):
            _require_utf8(item, f"{field}.{key}")
        if item is not None and not isinstance(item, str | int | float | bool):
            raise InvalidInput(f"{field}.{key}", "values must be scalars (flat dict)")
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(f"{field}.{key}", "must be finite")
    size = len(json.dumps(dict(value), ensure_ascii=False).encode("utf-8"))
    if size > limits.max_metadata_bytes:
        raise InvalidInput(field, f"{size} bytes encoded, limit {limits.max_metadata_bytes}")
    return dict(value)


def validate_role(value: object, field: str = "role") -> Role:
    """One of user, assistant or system."""
    try:
        return Role(str(value)) if isinstance(value, str) else Role(value)  # type: ignore[arg-type]
    except ValueError as e:
        raise InvalidInput(field, f"unknown role {value!r}; use user, assistant or system") from e


def validate_turn(
    raw: object,
    user_id: str,
    session_id: str | None,
    limits: LimitSettings,
    tz: tzinfo,
    now: datetime,
    field: str = "turns[0]",
) -> Turn:
    """Validate one turn mapping into a :class:`Turn`, naming the field of any error."""
    if not isinstance(raw, Mapping):
        raise InvalidInput(field, "each turn must be a mapping")
    unknown = set(raw) - TURN_FIELDS
    if unknown:
        raise InvalidInput(f"{field}.{sorted(unknown)[0]}", "unknown field")
    role = validate_role(raw.get("role"), f"{field}.role")
    content = validate_content(raw.get("content"), limits, f"{field}.content")
    ts = validate_timestamp(raw.get("ts"), tz, now, f"{field}.ts")
    session = validate_optional_id(raw.get("session_id", session_id), f"{field}.session_id")
    name = validate_optional_id(raw.get("name"), f"{field}.name", 128)
    metadata = validate_metadata(raw.get("metadata"), limits, f"{field}.metadata")
    turn_id = validate_optional_id(raw.get("turn_id"), f"{field}.turn_id", 128)
    turn_id = turn_id or default_turn_id(user_id, session, ts, role.value, content)
    return Turn(user_id, role, content, ts, turn_id, session, name, metadata)


def validate_turns(
    user_id: object,
    turns: object,
    session_id: object,
    limits: LimitSettings,
    tz: tzinfo,
    now: datetime | None = None,
) -> list[Turn]:
    """Validate a whole ``add_turns`` call; raises before anything is written."""
    uid = validate_user_id(user_id, limits)
    session = validate_optional_id(session_id, "session_id")
    if isinstance(turns, str | bytes) or not isinstance(turns, Sequence):
        raise InvalidInput("turns", "must be a list of turn mappings")
    if not turns:
        raise InvalidInput("turns", "must not be empty")
    if len(turns) > limits.max_turns_per_call:
        raise InvalidInput("turns", f"more than {limits.max_turns_per_call} turns in one call")
    moment = now or datetime.now(UTC)
    return [
        validate_turn(t, uid, session, limits, tz, moment, f"turns[{i}]")
        for i, t in enumerate(turns)
    ]


def validate_memory(memory: object, dims: int, limits: LimitSettings, field: str) -> None:
    """Check a memory before a store writes it: user id, content, vector dims, metadata."""
    from memlane.models import Memory  # local: models has no dependency on validation

    if not isinstance(memory, Memory):
        raise InvalidInput(field, "must be a Memory")
    validate_user_id(memory.user_id, limits, f"{field}.user_id")
    validate_content(memory.content, limits, f"{field}.content")
    if not memory.id or not isinstance(memory.id, str) or len(memory.id) > 256:
        raise InvalidInput(f"{field}.id", "must be a non-empty string of at most 256 chars")
    if memory.embedding is not None:
        if len(memory.embedding) != dims:
            raise InvalidInput(
                f"{field}.embedding", f"has {len(memory.embedding)} dims, expected {dims}"
            )
        if not all(math.isfinite(x) for x in memory.embedding):
            raise InvalidInput(f"{field}.embedding", "must be finite")
    if not 0.0 <= memory.importance <= 1.0:
        raise InvalidInput(f"{field}.importance", "must be between 0 and 1")
    if memory.recorded_at.tzinfo is None:
        raise InvalidInput(f"{field}.recorded_at", "must be timezone-aware")
    for name in ("event_time", "created_at", "updated_at", "valid_to"):
        value = getattr(memory, name)
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{field}.{name}", "must be timezone-aware")
    # memlane adds a few keys of its own (role, prompt version) to the metadata of a turn.
    store_limits = limits.model_copy(update={"max_metadata_bytes": limits.max_metadata_bytes + 256})
    validate_metadata(memory.metadata, store_limits, f"{field}.metadata")


def validate_memories(memories: Sequence[object], dims: int, limits: LimitSettings) -> None:
    """Validate a whole upsert batch before any write."""
    for i, memory in enumerate(memories):
        validate_memory(memory, dims, limits, f"memories[{i}]")
