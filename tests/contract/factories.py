"""Deterministic memories and vectors for the store contract tests."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from memlane.client import MemoryClient
from memlane.models import Memory, MemoryKind

DIMS = 384  # the settings default (multilingual-e5-small)
SHANGHAI = timezone(timedelta(hours=8))
BASE_TIME = datetime(2024, 10, 26, 21, 26, tzinfo=SHANGHAI)


def vector(seed: int, dims: int = DIMS) -> list[float]:
    """A random unit vector; different seeds give nearly orthogonal vectors in 384 dims."""
    v = np.random.default_rng(seed).standard_normal(dims)
    return [float(x) for x in v / np.linalg.norm(v)]


def near(seed: int, noise_seed: int, scale: float = 0.3, dims: int = DIMS) -> list[float]:
    """A vector close to ``vector(seed)`` (cosine well above any unrelated vector)."""
    base = np.asarray(vector(seed, dims))
    noise = np.asarray(vector(noise_seed, dims)) * scale
    v = base + noise
    return [float(x) for x in v / np.linalg.norm(v)]


def make_memory(
    content: str = "a memory",
    *,
    user_id: str = "u1",
    mem_id: str | None = None,
    seed: int | None = 0,
    kind: MemoryKind = MemoryKind.OBSERVATION,
    minutes: int = 0,
    **fields: Any,
) -> Memory:
    """A valid memory. ``seed`` picks its vector (None = no embedding); ``minutes`` offsets
    ``recorded_at`` from :data:`BASE_TIME`; any other Memory field can be given."""
    if mem_id is None:
        mem_id = "m-" + hashlib.sha256(content.encode()).hexdigest()[:12]
    fields.setdefault("recorded_at", BASE_TIME + timedelta(minutes=minutes))
    return Memory(
        id=mem_id,
        user_id=user_id,
        kind=kind,
        content=content,
        embedding=vector(seed) if seed is not None else None,
        **fields,
    )


def stored(client: MemoryClient, memories: list[Memory]) -> list[Memory]:
    """Write memories through the client's store, each embedded by the client's real model."""
    vectors = client.services.embedder.embed_passages([m.content for m in memories])
    embedded = [m.replace(embedding=list(v)) for m, v in zip(memories, vectors, strict=True)]
    client.services.store.upsert(embedded)
    return embedded
