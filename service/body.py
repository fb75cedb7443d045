"""Request bodies: size limit (413), UTF-8 JSON (400), then the fields a client method takes.

Parsing stops at the HTTP layer's own concerns. Every field is handed to the ``MemoryClient``
method unchanged, so the same validation runs with the same messages; the only conversion is
of ISO-8601 strings into datetimes for parameters that take one (``now``, ``time_range``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from starlette.requests import Request

from memlane.errors import BadRequest, InvalidInput, PayloadTooLarge


async def read_bytes(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) one over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_object(
    raw: bytes, allowed: Iterable[str], required: Iterable[str] = ()
) -> dict[str, Any]:
    """A JSON object with only ``allowed`` fields; an empty body is an empty object.

    Not UTF-8 or not JSON: 400. Not an object: 400. An unknown or missing field: 422
    (``InvalidInput`` naming it), like an unknown turn field in ``add_turns``.
    """
    if not raw.strip():
        body: Any = {}
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadRequest(f"request body is not UTF-8 (byte {e.start + 1}: {e.reason})") from e
        try:
            body = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadRequest(
                f"request body is not JSON: {e.msg} (line {e.lineno}, column {e.colno})"
            ) from e
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(body).__name__}")
    unknown = set(body) - set(allowed)
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "unknown field")
    for name in required:
        if name not in body:
            raise InvalidInput(name, "missing")
    return body


def to_datetime(value: Any, field: str) -> Any:
    """An ISO-8601 string becomes a datetime; anything else is left for the client to judge."""
    if not isinstance(value, str):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidInput(field, f"not an ISO-8601 timestamp: {value[:40]!r}") from e


def to_time_range(value: Any, field: str = "time_range") -> Any:
    """``[start, end]`` (either may be null), each an ISO-8601 string; left as is otherwise."""
    if isinstance(value, list) and len(value) == 2:
        return tuple(to_datetime(v, f"{field}[{i}]") for i, v in enumerate(value))
    return value
