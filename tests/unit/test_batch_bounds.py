"""Work per batch and per query is bounded by size, not only by count (issue 11, items 5, 9)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memlane.buffer.turns import BufferedTurn
from memlane.models import Role, Turn
from memlane.retrieval.pending import newest_within
from pipelines.consolidation.rules import take_batch

TS = datetime(2024, 10, 26, 13, 26, tzinfo=UTC)


def entries(*sizes: int, name: str | None = None) -> list[BufferedTurn]:
    """Buffered turns whose content has the given lengths, in stream order."""
    return [
        BufferedTurn(f"{i}-0", Turn("u", Role.USER, "x" * n, TS, f"t{i}", None, name))
        for i, n in enumerate(sizes)
    ]


def ids(batch: list[BufferedTurn]) -> list[str]:
    """The stream ids of a batch."""
    return [e.entry_id for e in batch]


@pytest.mark.parametrize(
    ("sizes", "budget", "taken"),
    [
        ((100, 100, 100), 1000, 3),
        ((100, 100, 100), 200, 2),
        ((100, 100, 100), 199, 1),
        ((16_000, 16_000), 16_000, 1),
        ((16_000, 10), 100, 1),  # always at least one turn, however large
        ((10, 16_000, 10), 16_000, 1),  # a big turn waits for the next batch
    ],
)
def test_a_batch_takes_turns_until_the_size_budget(
    sizes: tuple[int, ...], budget: int, taken: int
) -> None:
    """take_batch keeps the oldest turns whose text fits batch_max_chars (at least one)."""
    batch = take_batch(entries(*sizes), budget)
    assert ids(batch) == [f"{i}-0" for i in range(taken)]


def test_the_size_budget_counts_the_speaker_name() -> None:
    """A turn is as big as its stored text, "name: content"."""
    assert len(take_batch(entries(50, 50), 109)) == 2
    assert len(take_batch(entries(50, 50, name="Bob"), 109)) == 1
    assert len(take_batch(entries(50, 50, name="Bob"), 2 * len("Bob: ") + 100)) == 2


def test_no_budget_takes_every_turn_read() -> None:
    """None (callers that bound only by count) keeps the whole read."""
    assert len(take_batch(entries(16_000, 16_000, 16_000), None)) == 3


@pytest.mark.parametrize(
    ("sizes", "budget", "kept"),
    [
        ((10, 10, 10), 100, ["0-0", "1-0", "2-0"]),
        ((10, 10, 10), 20, ["1-0", "2-0"]),
        ((16_000, 16_000, 16_000), 4_000, ["1-0", "2-0"]),  # each counts as max_embed_chars
        ((5, 16_000), 10, ["1-0"]),  # the newest turn is always searched
    ],
)
def test_pending_search_embeds_the_newest_turns_within_budget(
    sizes: tuple[int, ...], budget: int, kept: list[str]
) -> None:
    """include_pending embeds the newest turns up to pending_max_chars, oldest first."""
    assert ids(newest_within(entries(*sizes), budget, 2_000)) == kept
