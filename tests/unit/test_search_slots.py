"""How many searches the service runs at once."""

from __future__ import annotations

from service.context import search_slots


def test_the_default_is_two_searches_per_core() -> None:
    assert search_slots(None, cores=2) == 4
    assert search_slots(None, cores=16) == 32


def test_a_configured_number_wins() -> None:
    assert search_slots(3, cores=2) == 3
    assert search_slots(1, cores=64) == 1


def test_the_default_follows_the_host() -> None:
    from memlane.llm.core_slots import host_cores

    assert search_slots(None) == 2 * host_cores()
