"""Input validation: pure functions that refuse bad input with :class:`InvalidInput`.

Each error names the offending field (``turns[3].ts``) so a caller can fix it. Validation runs
completely before anything is written.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import numpy as np

from memlane.config_sections import LimitSettings, RetrievalSettings
from memlane.errors import InvalidInput
from memlane.ids import default_turn_id
from memlane.models import MemoryKind, Role, Turn

MIN_TS = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)
TURN_FIELDS = frozenset({"role", "content", "ts", "turn_id", "name", "metadata", "session_id"})
# Metadata integers must fit in 64 bits: JSON clients, SQLite and Elasticsearch all read them
# as such (and Python refuses to print integers of over 4,300 digits at all).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


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


def _check_text(value: object, max_chars: int, field: str) -> str:
    """Non-blank UTF-8 text of at most ``max_chars`` characters."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInput(field, "must not be empty")
    if len(value) > max_chars:
        raise InvalidInput(field, f"longer than {max_chars} characters")
    _require_utf8(value, field)
    return value


def validate_content(content: object, limits: LimitSettings, field: str = "content") -> str:
    """Content is non-blank text of at most ``max_content_chars`` characters, without NUL.

    NUL is refused rather than stripped: the embedder reads C strings and stops at the first
    NUL (``"\x00I play..."`` embedded like ``""``), and silently changing what the user said
    is worse than telling the caller, who can strip it knowingly.
    """
    text = _check_text(content, limits.max_content_chars, field)
    if "\x00" in text:
        raise InvalidInput(field, "contains a NUL character")
    return text


def validate_timestamp(value: object, tz: tzinfo, now: datetime, field: str = "ts") -> datetime:
    """A timestamp between 1970 and one day from now; naive times take ``tz``."""
    if value is None:
        return now
    ts = aware(_to_datetime(value, tz, field), tz, field)
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
    return value


def aware(value: datetime, tz: tzinfo, field: str) -> datetime:
    """``value`` with a usable UTC offset: naive times take ``tz``.

    A tzinfo whose ``utcoffset()`` is None (or raises) cannot be compared or stored.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=tz)
    try:
        offset = value.utcoffset()
    except Exception as e:  # a user-supplied tzinfo may raise anything
        raise InvalidInput(field, f"its tzinfo failed: {type(e).__name__}") from e
    if offset is None:
        raise InvalidInput(field, "has a tzinfo that gives no UTC offset")
    return value


def validate_metadata(
    value: object, limits: LimitSettings, field: str = "metadata", int64: bool = True
) -> dict[str, Any]:
    """A small flat dict of string keys to scalar values (integers within 64 bits).

    ``int64=False`` (stores) lets through any integer that still encodes as JSON, so a turn
    buffered before the 64-bit rule existed stays storable.
    """
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
        if int64 and isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            raise InvalidInput(f"{field}.{key}", "integers must fit in 64 bits")
    try:
        encoded = json.dumps(dict(value), ensure_ascii=False)
    except ValueError as e:  # an integer too long to print
        raise InvalidInput(field, f"cannot be encoded as JSON: {e}") from e
    size = len(encoded.encode("utf-8"))
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
    name = validate_optional_id(raw.get("name"), f"{field}.name", limits.max_name_chars)
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
    """Check a memory before a store writes it: user id, content, vector dims, metadata.

    ``limits`` are the input limits; the store checks :meth:`LimitSettings.for_store`, which
    leaves room for what memlane adds to a turn, so an accepted turn is always storable.
    """
    from memlane.models import Memory  # local: models has no dependency on validation

    if not isinstance(memory, Memory):
        raise InvalidInput(field, "must be a Memory")
    store_limits = limits.for_store()
    validate_user_id(memory.user_id, limits, f"{field}.user_id")
    # No NUL check here: turns buffered before NUL was refused must still be storable.
    _check_text(memory.content, store_limits.max_content_chars, f"{field}.content")
    if not memory.id or not isinstance(memory.id, str) or len(memory.id) > 256:
        raise InvalidInput(f"{field}.id", "must be a non-empty string of at most 256 chars")
    if memory.embedding is not None:
        if len(memory.embedding) != dims:
            raise InvalidInput(
                f"{field}.embedding", f"has {len(memory.embedding)} dims, expected {dims}"
            )
        # numpy: a Python loop over 384 floats cost more than the rest of the check.
        if not np.isfinite(np.asarray(memory.embedding, dtype=np.float64)).all():
            raise InvalidInput(f"{field}.embedding", "must be finite")
    if not 0.0 <= memory.importance <= 1.0:
        raise InvalidInput(f"{field}.importance", "must be between 0 and 1")
    if memory.recorded_at.tzinfo is None:
        raise InvalidInput(f"{field}.recorded_at", "must be timezone-aware")
    for name in ("event_time", "created_at", "updated_at", "valid_to", "valid_from"):
        value = getattr(memory, name)
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{field}.{name}", "must be timezone-aware")
    if any(r.merged_at.tzinfo is None for r in memory.merges):
        raise InvalidInput(f"{field}.merges", "merged_at must be timezone-aware")
    validate_metadata(memory.metadata, store_limits, f"{field}.metadata", int64=False)


def validate_memories(memories: Sequence[object], dims: int, limits: LimitSettings) -> None:
    """Validate a whole upsert batch before any write."""
    for i, memory in enumerate(memories):
        validate_memory(memory, dims, limits, f"memories[{i}]")


# -- retrieve ---------------------------------------------------------------------------------

MAX_TOP_K = 1000  # as many as a search may fetch per component (retrieval.candidates <= 1000)


@dataclass(frozen=True, slots=True)
class RetrieveParams:
    """The validated parameters of one ``retrieve`` call."""

    query: str
    top_k: int
    kinds: tuple[MemoryKind, ...] | None
    time_range: tuple[datetime | None, datetime | None] | None
    now: datetime | None
    include_pending: bool
    rerank: bool | None


def validate_query(query: object, max_chars: int, field: str = "query") -> str:
    """A search query: non-blank UTF-8 text of at most ``max_chars`` characters, without NUL."""
    text = _check_text(query, max_chars, field)
    if "\x00" in text:
        raise InvalidInput(field, "contains a NUL character")
    return text


def validate_top_k(value: object, field: str = "top_k") -> int:
    """How many results: an integer from 1 to :data:`MAX_TOP_K`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be an integer, got {type(value).__name__}")
    if not 1 <= value <= MAX_TOP_K:
        raise InvalidInput(field, f"must be between 1 and {MAX_TOP_K}, got {value}")
    return value


def validate_kinds(value: object, field: str = "kinds") -> tuple[MemoryKind, ...] | None:
    """None (every kind), one kind, or a non-empty list of kinds."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence | set | frozenset) or isinstance(items, bytes):
        raise InvalidInput(field, "must be a kind or a list of kinds")
    if not items:
        raise InvalidInput(field, "must not be empty (None means every kind)")
    kinds = []
    for i, item in enumerate(items):
        where = field if isinstance(value, str) else f"{field}[{i}]"
        try:
            kinds.append(MemoryKind(item))
        except ValueError as e:
            choices = ", ".join(k.value for k in MemoryKind)
            raise InvalidInput(where, f"unknown kind {item!r}; use {choices}") from e
    return tuple(dict.fromkeys(kinds))


def validate_time_range(
    value: object, tz: tzinfo, field: str = "time_range"
) -> tuple[datetime | None, datetime | None] | None:
    """None, or ``(start, end)`` datetimes (either may be None) with start before end."""
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise InvalidInput(field, "must be a (start, end) pair")
    bounds: list[datetime | None] = []
    for i, item in enumerate(value):
        if item is not None and not isinstance(item, datetime):
            raise InvalidInput(f"{field}[{i}]", "must be a datetime or None")
        bounds.append(aware(item, tz, f"{field}[{i}]") if item is not None else None)
    start, end = bounds
    if start is not None and end is not None and start >= end:
        raise InvalidInput(field, "start must be before end")
    return start, end


def validate_now(value: object, tz: tzinfo, field: str = "now") -> datetime | None:
    """None (the clock) or a datetime; a naive one takes ``tz``."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInput(field, "must be a datetime or None")
    return aware(value, tz, field)


def validate_flag(value: object, field: str, optional: bool = False) -> bool | None:
    """A bool (or None when ``optional``); truthy strings such as "no" are refused."""
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise InvalidInput(field, f"must be true or false, got {type(value).__name__}")
    return value


def validate_retrieve(
    query: object,
    top_k: object,
    kinds: object,
    time_range: object,
    now: object,
    include_pending: object,
    rerank: object,
    settings: RetrievalSettings,
    tz: tzinfo,
) -> RetrieveParams:
    """Validate a whole ``retrieve`` call (``top_k`` None means the configured default)."""
    return RetrieveParams(
        query=validate_query(query, settings.max_query_chars),
        top_k=validate_top_k(settings.top_k if top_k is None else top_k),
        kinds=validate_kinds(kinds),
        time_range=validate_time_range(time_range, tz),
        now=validate_now(now, tz),
        include_pending=bool(validate_flag(include_pending, "include_pending")),
        rerank=validate_flag(rerank, "rerank", optional=True),
    )
