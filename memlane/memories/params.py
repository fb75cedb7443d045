"""Validation of the memory API's parameters: pure functions raising ``InvalidInput(field, ...)``.

Each error names the parameter as the caller spelled it (``limit``, ``since``, ``memory_id``),
the same way :mod:`memlane.validation` does for ``add_turns`` and ``retrieve``.
"""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from memlane.config_sections import LimitSettings
from memlane.errors import InvalidInput
from memlane.models import MemoryKind, MemoryStatus
from memlane.validation import (
    MIN_TS,
    aware,
    validate_content,
    validate_flag,
    validate_kinds,
    validate_metadata,
)

MAX_LIST_LIMIT = 500
MAX_USERS_LIMIT = 1_000
MAX_MEMORY_ID_CHARS = 256
STATUSES: dict[str, tuple[MemoryStatus, ...] | None] = {
    "active": (MemoryStatus.ACTIVE,),
    "superseded": (MemoryStatus.SUPERSEDED,),
    "deleted": (MemoryStatus.DELETED,),
    "all": None,
}


@dataclass(frozen=True, slots=True)
class ListParams:
    """The validated parameters of one ``list_memories`` call (``statuses`` None = all)."""

    kinds: tuple[MemoryKind, ...] | None
    statuses: tuple[MemoryStatus, ...] | None
    since: datetime | None
    until: datetime | None
    cursor: str | None
    limit: int


@dataclass(frozen=True, slots=True)
class EditParams:
    """The validated changes of one ``update_memory`` call (None = keep the old value)."""

    content: str | None
    metadata: dict[str, Any] | None
    event_time: datetime | None


def validate_limit(value: object, maximum: int, field: str = "limit") -> int:
    """A page size: an integer from 1 to ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be an integer, got {type(value).__name__}")
    if not 1 <= value <= maximum:
        raise InvalidInput(field, f"must be between 1 and {maximum}, got {value}")
    return value


def validate_cursor(value: object, field: str = "cursor") -> str | None:
    """None or a cursor string (its content is checked by whoever made it)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise InvalidInput(field, "must be a cursor returned by the previous page")
    return value


def validate_status(value: object, field: str = "status") -> tuple[MemoryStatus, ...] | None:
    """active, superseded, deleted or all (a :class:`MemoryStatus` works too)."""
    key = value.value if isinstance(value, MemoryStatus) else value
    if not isinstance(key, str) or key not in STATUSES:
        raise InvalidInput(field, f"unknown status {value!r}; use {', '.join(STATUSES)}")
    return STATUSES[key]


def validate_instant(value: object, tz: tzinfo, field: str) -> datetime | None:
    """None, a datetime or an ISO-8601 string, from 1970 on; naive times take ``tz``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as e:
            raise InvalidInput(field, "not an ISO-8601 timestamp") from e
    if not isinstance(value, datetime):
        raise InvalidInput(field, "must be a datetime, an ISO-8601 string or None")
    when = aware(value, tz, field)
    if when < MIN_TS:
        raise InvalidInput(field, "must not be before 1970")
    return when


def validate_list(
    kinds: object,
    status: object,
    since: object,
    until: object,
    cursor: object,
    limit: object,
    tz: tzinfo,
) -> ListParams:
    """Validate a whole ``list_memories`` call; ``[since, until)`` must not be empty."""
    start = validate_instant(since, tz, "since")
    end = validate_instant(until, tz, "until")
    if start is not None and end is not None and start >= end:
        raise InvalidInput("until", "must be after since")
    return ListParams(
        kinds=validate_kinds(kinds),
        statuses=validate_status(status),
        since=start,
        until=end,
        cursor=validate_cursor(cursor),
        limit=validate_limit(limit, MAX_LIST_LIMIT),
    )


def validate_memory_id(value: object, field: str = "memory_id") -> str:
    """A memory id: a non-empty string of at most 256 characters without control characters."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(field, "must be a non-empty string")
    if len(value) > MAX_MEMORY_ID_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(field, f"must be at most {MAX_MEMORY_ID_CHARS} printable characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInput(field, "is not valid Unicode text") from e
    return value


def validate_edit(
    content: object, metadata: object, event_time: object, limits: LimitSettings, tz: tzinfo
) -> EditParams:
    """Validate an ``update_memory`` call: at least one change; each like ``add_turns``."""
    if content is None and metadata is None and event_time is None:
        raise InvalidInput("content", "nothing to change: give content, metadata or event_time")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidInput("metadata", "must be a flat mapping")
    return EditParams(
        content=validate_content(content, limits) if content is not None else None,
        metadata=validate_metadata(metadata, limits) if metadata is not None else None,
        event_time=validate_instant(event_time, tz, "event_time"),
    )


def validate_hard(value: object) -> bool:
    """``hard`` is a real bool (a truthy string such as "no" is refused)."""
    return bool(validate_flag(value, "hard"))


def encode_user_cursor(user_id: str) -> str:
    """The opaque ``list_users`` cursor: the last user id of a page."""
    raw = json.dumps({"after": user_id}, ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_user_cursor(cursor: object) -> str | None:
    """The inverse of :func:`encode_user_cursor` (None for the first page)."""
    value = validate_cursor(cursor)
    if value is None:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(value.encode("ascii")))["after"]
    except (ValueError, TypeError, KeyError, UnicodeError, binascii.Error) as e:
        raise InvalidInput("cursor", "not a cursor returned by list_users()") from e
    if not isinstance(after, str):
        raise InvalidInput("cursor", "not a cursor returned by list_users()")
    return after


def validate_prefix(value: object, limits: LimitSettings, field: str = "prefix") -> str | None:
    """None (or "") for every user, else a user-id prefix: at most ``user_id_max_len``
    characters, none of them control or unassigned (no user id could start with it)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    if len(value) > limits.user_id_max_len:
        raise InvalidInput(field, f"longer than {limits.user_id_max_len} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cs", "Cn"} for ch in value):
        raise InvalidInput(field, "contains control or unassigned characters")
    return value


def validate_batch_id(value: object, field: str = "batch_id") -> str:
    """A dead letter's batch id: a non-empty string of at most 256 printable characters."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(field, "must be a non-empty string")
    if len(value) > MAX_MEMORY_ID_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(field, f"must be at most {MAX_MEMORY_ID_CHARS} printable characters")
    return value
