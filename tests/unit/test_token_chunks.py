"""The local model's engine calls: consecutive texts within a token budget and a count."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from memlane.llm.embeddings import token_chunks


def test_texts_are_grouped_up_to_the_budget() -> None:
    assert token_chunks([100, 100, 100, 50], 256, 64) == [(0, 2), (2, 4)]


def test_a_text_over_the_budget_is_a_chunk_of_its_own() -> None:
    assert token_chunks([30, 512, 30], 256, 64) == [(0, 1), (1, 2), (2, 3)]


def test_the_count_caps_a_chunk() -> None:
    assert token_chunks([1] * 5, 256, 2) == [(0, 2), (2, 4), (4, 5)]


def test_nothing_gives_no_chunk() -> None:
    assert token_chunks([], 256, 64) == []


@given(st.lists(st.integers(1, 600), max_size=80), st.integers(1, 700), st.integers(1, 30))
def test_chunks_cover_every_text_once_in_order(counts: list[int], budget: int, most: int) -> None:
    chunks = token_chunks(counts, budget, most)
    assert [i for a, b in chunks for i in range(a, b)] == list(range(len(counts)))
    for a, b in chunks:
        assert 1 <= b - a <= most
        assert b - a == 1 or sum(counts[a:b]) <= budget
