"""Pure helpers of the inspector's routes: the prefix floor of ``list_users``, usage days,
a user's usage of one day, a dead letter for display, prefix validation."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memlane import load_settings
from memlane.buffer.inspection import ModelUsage, day_usage, dead_letter_of, usage_days
from memlane.errors import InvalidInput
from memlane.memories.params import validate_prefix
from memlane.memories.users import floor_of

VALID = st.characters(
    exclude_categories=("Cc", "Cs", "Cn"),  # what validate_user_id refuses
)
IDS = st.text(VALID, min_size=1, max_size=12)


@given(prefix=IDS, other=IDS, tail=st.text(VALID, max_size=6))
def test_the_floor_splits_ids_under_the_prefix_from_every_other_id_below_it(
    prefix: str, other: str, tail: str
) -> None:
    """Every id starting with the prefix is above its floor; every id below the prefix is below."""
    floor = floor_of(prefix)
    assert prefix + tail > floor
    if other < prefix:
        assert other < floor
    if other.startswith(prefix):
        assert other > floor


def test_the_floor_skips_surrogates_so_it_encodes_as_utf8() -> None:
    """A prefix ending in U+E000 gets a floor below the surrogates, which is valid UTF-8."""
    floor = floor_of("a\ue000")
    floor.encode("utf-8")
    assert floor < "a\ue000" and floor > "a\ud7ff"


def test_usage_days_end_today_oldest_first() -> None:
    """The span is `days` calendar days ending with today, across a month end."""
    assert usage_days(date(2024, 3, 2), 4) == [
        "2024-02-28",
        "2024-02-29",
        "2024-03-01",
        "2024-03-02",
    ]
    assert usage_days(date(2024, 3, 2), 1) == ["2024-03-02"]


def test_day_usage_sums_only_the_user_s_models() -> None:
    """Another user's counters (even a user id containing '|') never count."""
    counters = {
        ("u", "m1"): {"calls": 2, "prompt_tokens": 10, "completion_tokens": 4},
        ("u", "m2"): {"calls": 1, "prompt_tokens": 5, "completion_tokens": 1},
        ("u|x", "m1"): {"calls": 9, "prompt_tokens": 9, "completion_tokens": 9},
    }
    d = day_usage("2024-03-02", counters, "u")
    assert (d.calls, d.prompt_tokens, d.completion_tokens) == (3, 15, 5)
    assert d.by_model == {"m1": ModelUsage(2, 10, 4), "m2": ModelUsage(1, 5, 1)}
    assert day_usage("2024-03-02", counters, "nobody").by_model == {}


def test_a_dead_letter_is_shown_with_its_reason_redacted_and_a_utc_time() -> None:
    """The reason passes through the redactor; `at` (epoch seconds) becomes an aware UTC time."""
    letter = {"batch_id": "b1", "user_id": "u", "reason": "boom sk-1", "at": 0.0, "entries": []}
    shown = dead_letter_of(letter, [], lambda text: text.replace("sk-1", "***"))
    assert shown.reason == "boom ***"
    assert shown.at == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (3, "must be a string"),
        ("a\x00", "control or unassigned"),
        ("x" * 129, "longer than 128"),
    ],
)
def test_a_bad_prefix_names_the_field(value: object, message: str) -> None:
    """A prefix no user id could start with is refused, naming `prefix`."""
    limits = load_settings(environ={}).limits
    with pytest.raises(InvalidInput) as e:
        validate_prefix(value, limits)
    assert e.value.field == "prefix" and message in e.value.reason


def test_an_empty_prefix_is_no_filter() -> None:
    """None and "" both mean every user."""
    limits = load_settings(environ={}).limits
    assert validate_prefix(None, limits) is None and validate_prefix("", limits) is None
    assert validate_prefix("用户", limits) == "用户"
