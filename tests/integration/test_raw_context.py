"""Raw mode embeds each turn with the turn before it (also across batches); content unchanged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.ids import raw_memory_id
from pipelines.consolidation.run import ConsolidationPorts, consolidate_user

pytestmark = pytest.mark.redis

T0 = datetime(2024, 10, 26, 13, 0, tzinfo=UTC)
LINES = [
    ("Melanie", "Did you go to the lake with the kids?"),
    ("Caroline", "Yes, last week. They loved it."),
    ("Melanie", "What did you do there?"),
    ("Caroline", "We went canoeing."),
]


@pytest.fixture
def client(
    make_settings: Callable[..., Settings], redis_client: redis.Redis
) -> Iterator[MemoryClient]:
    """A client whose batches hold 2 turns, so the dialogue spans two batches."""
    with MemoryClient(make_settings(batching={"batch_max_turns": 2})) as c:
        yield c


def test_turns_are_embedded_with_their_previous_turn_across_batches(client: MemoryClient) -> None:
    """The vector of each turn is that of ``prev\\nturn``; the first turn's is its own text."""
    turns = [
        {
            "role": "user",
            "name": who,
            "content": text,
            "session_id": "s1",
            "turn_id": f"t{i}",
            "ts": (T0 + timedelta(minutes=i)).isoformat(),
        }
        for i, (who, text) in enumerate(LINES)
    ]
    client.add_turns("u", turns)
    svc = client.services
    token = svc.leases.acquire("u")
    assert token is not None
    ports = ConsolidationPorts(svc.buffer, svc.leases, svc.store, svc.embedder, svc.attempts)
    try:
        done = consolidate_user(ports, "u", token, batch_max_turns=2, max_attempts=3)
    finally:
        svc.leases.release("u", token)
    assert done.batches == 2
    stored = svc.store.get("u", [raw_memory_id("u", f"t{i}") for i in range(4)])
    lines = [f"{who}: {text}" for who, text in LINES]
    assert [m.content for m in stored] == lines  # content unchanged
    assert [m.metadata["speaker"] for m in stored] == [who for who, _ in LINES]
    expected = svc.embedder.embed_passages(
        [lines[0], *(f"{lines[i - 1]}\n{lines[i]}" for i in range(1, 4))]
    )
    for memory, vector in zip(stored, expected, strict=True):
        assert memory.embedding is not None
        assert np.allclose(memory.embedding, vector, atol=1e-5), memory.content
    # t2 opened the second batch: its context came from the store, not from the batch.
    alone = svc.embedder.embed_passages([lines[2]])[0]
    assert not np.allclose(stored[2].embedding, alone, atol=1e-3)
