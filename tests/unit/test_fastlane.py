"""The fast lane's routing (which requests skip FastAPI) and the serialiser it shares."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest

from service.fastlane import fast_target
from service.paths import keep_segments
from service.serialize import plain
from tests.unit.test_codec import full_memory


def scope(method: str, path: str, kind: str = "http") -> dict[str, Any]:
    return {"type": kind, "method": method, "path": path, "headers": []}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v1/users/alice/turns", ("alice", "turns")),
        ("POST", "/v1/users/a%2Fb/search", ("a%2Fb", "search")),
        ("GET", "/v1/users/alice/search", None),
        ("POST", "/v1/users/alice/flush", None),
        ("POST", "/v1/users//search", None),
        ("POST", "/v1/users/alice/search/x", None),
        ("POST", "/v2/users/alice/search", None),
        ("POST", "/v1/users/alice/memories", None),
    ],
)
def test_only_pushes_and_searches_take_the_fast_lane(
    method: str, path: str, expected: tuple[str, str] | None
) -> None:
    assert fast_target(scope(method, path)) == expected


def test_a_websocket_never_takes_the_fast_lane() -> None:
    assert fast_target(scope("POST", "/v1/users/alice/search", "websocket")) is None


def reference_plain(value: Any) -> Any:
    """The serialiser as it was before its scalar shortcut (the checks in their old order)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: reference_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): reference_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [reference_plain(v) for v in value]
    return value


def test_plain_gives_what_the_reference_gives_for_every_field_of_a_memory() -> None:
    memory = full_memory()
    out = plain(memory)
    assert out == reference_plain(memory)
    assert isinstance(out["kind"], str) and not isinstance(out["kind"], Enum)
    assert isinstance(out["created_at"], str)


@pytest.mark.parametrize(
    "raw",
    [
        b"/v1/users/alice/turns",
        b"/v1/users/a%2Fb/turns",
        b"/v1/users/100%25/search",
        b"/v1/users/%E5%90%89%E4%BB%96/turns",
        b"/v1/users/\xe5\x90\x89/turns",
        b"/v1/users/bad%FF/turns",
        b"/v1/users/%2F%2F/memories/m%2F1",
        b"/",
    ],
)
def test_keep_segments_takes_the_shortcut_only_where_it_changes_nothing(raw: bytes) -> None:
    """The no-'%' shortcut gives what decoding each segment on its own gives."""
    reference = "/".join(
        unquote_to_bytes(s)
        .decode("utf-8", "surrogateescape")
        .replace("%", "%25")
        .replace("/", "%2F")
        for s in raw.split(b"/")
    )
    assert keep_segments(raw) == reference
