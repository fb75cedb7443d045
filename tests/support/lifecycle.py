"""Helpers for reflection and maintenance tests: planted memories and a scripted reflector.

Observations are planted straight into the real store (as consolidation would have written
them, embedded by the real local model); the fake LLM server answers reflection requests with
:func:`reflection_reply`, which reads the numbered observations of the request and assigns
them to subjects by keyword, like a well-behaved model would.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import pytest

from memlane.config import Settings
from memlane.ids import observation_id
from memlane.models import Memory, MemoryFilter, MemoryKind
from memlane.services import Services
from tests.support.llm_server import request_text

REFLECT_MARKS = ("你负责为聊天机器人维护用户画像", "You maintain the profile of one chatbot user")
MAINTAIN_MARKS = ("你负责定期整理同一个用户的长期记忆", "You periodically tidy up the long-term")
_LINE = re.compile(r"^\[#(\d+) [^\]]*\](?: \(([^)]*)\))? (.*)$")


def is_reflection(body: dict[str, Any]) -> bool:
    """Whether a chat request is a reflection call."""
    return _system(body).startswith(REFLECT_MARKS)


def is_maintenance(body: dict[str, Any]) -> bool:
    """Whether a chat request is a maintenance (sweep) call."""
    return _system(body).startswith(MAINTAIN_MARKS)


def _system(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    return str(messages[0].get("content", ""))


def shown_observations(body: dict[str, Any]) -> list[tuple[int, str, str]]:
    """``(number, subject, content)`` of each observation line in a reflection request."""
    text = request_text(body, "last_user")
    block = text.split("<observations>", 1)[1].split("</observations>", 1)[0]
    out = []
    for line in block.strip().splitlines():
        m = _LINE.match(line.strip())
        if m:
            out.append((int(m.group(1)), m.group(2) or "", m.group(3)))
    return out


def reflection_reply(topics: dict[str, Sequence[str]]) -> Callable[[dict[str, Any]], dict]:
    """A reply function: observations mentioning a topic word go to that subject."""

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        grouped: dict[str, list[tuple[int, str]]] = {}
        for number, _, content in shown_observations(body):
            for subject, words in topics.items():
                if any(w in content for w in words):
                    grouped.setdefault(subject, []).append((number, content))
                    break
        insights = [
            {
                "subject": subject,
                "content": f"{subject}: " + "；".join(sorted({c for _, c in items}))[:300],
                "observations": [n for n, _ in items],
                "keywords": list(topics[subject])[:2],
            }
            for subject, items in grouped.items()
        ]
        return {"insights": insights}

    return reply


def observation(
    svc: Services,
    user_id: str,
    content: str,
    at: datetime,
    subject: str | None = None,
    importance: float = 0.5,
    turns: Sequence[str] | None = None,
    batch: str | None = None,
    kind: MemoryKind = MemoryKind.OBSERVATION,
) -> Memory:
    """An observation as consolidation would have written it (not stored, not embedded)."""
    batch_id = batch or f"b-{uuid.uuid4().hex[:8]}"
    return Memory(
        id=observation_id(user_id, batch_id, content),
        user_id=user_id,
        kind=kind,
        content=content,
        recorded_at=at,
        subject=subject,
        created_at=at,
        updated_at=at,
        source_turn_ids=list(turns or [f"t-{uuid.uuid4().hex[:10]}"]),
        batch_id=batch_id,
        importance=importance,
        metadata={"prompt_version": "extract.zh@1", "model": "fake-llm"},
    )


def plant(svc: Services, memories: Sequence[Memory]) -> list[Memory]:
    """Embed (with the real embedder) and store the memories."""
    vectors = svc.embedder.embed_passages([m.content for m in memories])
    for memory, vector in zip(memories, vectors, strict=True):
        if memory.embedding is None:
            memory.embedding = vector
    svc.store.upsert(list(memories))
    return list(memories)


def everything(svc: Services, user_id: str, kind: MemoryKind | None = None) -> list[Memory]:
    """Every memory of the user, superseded ones included."""
    flt = MemoryFilter(kinds=(kind,) if kind else None, include_superseded=True)
    return svc.store.list(user_id, flt, limit=5000).memories


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def backend_settings(request: pytest.FixtureRequest) -> Iterator[Callable[..., Settings]]:
    """Build settings on each store backend (a unique index, deleted afterwards, for ES)."""
    make_settings: Callable[..., Settings] = request.getfixturevalue("make_settings")
    if request.param == "sqlite":
        yield make_settings
        return
    es_url: str = request.getfixturevalue("es_url")
    name: str = request.getfixturevalue("es_index")  # its indices are deleted after the test

    def build(**overrides: Any) -> Settings:
        store = {"backend": "elasticsearch", "es_url": es_url, "es_index": name}
        return make_settings(store={**store, **overrides.pop("store", {})}, **overrides)

    yield build
