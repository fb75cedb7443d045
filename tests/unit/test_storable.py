"""What ``add_turns`` accepts is always storable (issue 11, item 4), checked without services.

Every turn validation accepts goes through the buffer's JSON, becomes a raw memory (name prefix,
``role`` key), gains what later sweeps add (``merged``, ``archived``), and must then pass the
validation every store runs before writing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memlane.buffer.raw import raw_memories
from memlane.buffer.turns import BufferedTurn, turn_from_json, turn_to_json
from memlane.config_sections import RESERVED_METADATA_KEYS, LimitSettings
from memlane.errors import InvalidInput
from memlane.models import Memory
from memlane.validation import validate_memories, validate_turns
from tests.support.limits import encoded_size, full_metadata, limit_turns, text_of

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 10, 26, 13, 26, tzinfo=UTC)
DIMS = 4
LIMITS = LimitSettings()


def stored_forms(turns: list[dict[str, Any]], limits: LimitSettings) -> list[Memory]:
    """The raw memories of validated turns after a buffer round trip and a later sweep."""
    valid = validate_turns("u1", turns, None, limits, TZ, NOW)
    entries = [
        BufferedTurn(f"{i}-0", turn_from_json("u1", turn_to_json(t))) for i, t in enumerate(valid)
    ]
    memories = raw_memories("u1", "b-1", entries, NOW)
    for m in memories:
        m.embedding = [0.5] * DIMS
    swept = [m.replace(metadata={**m.metadata, "merged": 12, "archived": True}) for m in memories]
    return memories + swept


@pytest.mark.parametrize("case", sorted(limit_turns(LIMITS)))
def test_a_turn_at_each_limit_is_storable(case: str) -> None:
    """Each documented limit, and all of them at once, leaves a memory the store accepts."""
    turn = limit_turns(LIMITS)[case]
    memories = stored_forms([turn], LIMITS)
    validate_memories(memories, DIMS, LIMITS)
    assert memories[0].content.endswith(turn["content"])  # stored in full


def test_the_issue_reproductions_are_storable() -> None:
    """32 keys + role (was refused at 33) and name + 16,000 chars (was 16,005) both store."""
    keys = {f"k{i}": i for i in range(32)}
    turns = [
        {"role": "user", "content": "x", "metadata": keys},
        {"role": "user", "name": "Bob", "content": "y" * 16_000},
    ]
    memories = stored_forms(turns, LIMITS)
    assert len(memories[0].metadata) == 33
    assert len(memories[1].content) == 16_005
    validate_memories(memories, DIMS, LIMITS)


def test_store_limits_still_refuse_what_is_past_the_reserve() -> None:
    """The store's room is bounded: a memory past the derived limits is refused, naming it."""
    store = LIMITS.for_store()
    memory = stored_forms([{"role": "user", "content": "x"}], LIMITS)[0]
    too_long = memory.replace(content="x" * (store.max_content_chars + 1))
    with pytest.raises(InvalidInput) as info:
        validate_memories([too_long], DIMS, LIMITS)
    assert info.value.field == "memories[0].content"
    too_many = memory.replace(metadata={f"k{i}": 1 for i in range(store.max_metadata_keys + 1)})
    with pytest.raises(InvalidInput) as info:
        validate_memories([too_many], DIMS, LIMITS)
    assert info.value.field == "memories[0].metadata"


def test_store_limits_derive_from_the_input_limits() -> None:
    """for_store() is the input limits plus the reserves, whatever the input limits are."""
    small = LimitSettings(max_content_chars=10, max_name_chars=3, max_metadata_keys=1)
    store = small.for_store()
    assert store.max_content_chars == 10 + 3 + len(": ")
    assert store.max_metadata_keys == 1 + RESERVED_METADATA_KEYS
    assert store.max_metadata_bytes > small.max_metadata_bytes
    assert store.max_turns_per_call == small.max_turns_per_call


contents = st.one_of(
    st.integers(1, 40).map(lambda n: text_of(n, "吉他 guitar ")),
    st.sampled_from([LIMITS.max_content_chars, LIMITS.max_content_chars - 1]).map(
        lambda n: text_of(n, "字a")
    ),
)
names = st.one_of(
    st.none(),
    st.integers(1, LIMITS.max_name_chars).map(lambda n: text_of(n, "名N")),
)
metadatas = st.one_of(
    st.none(),
    st.builds(
        lambda keys, fill: full_metadata(LIMITS, keys=keys, fill=fill),
        st.integers(1, LIMITS.max_metadata_keys),
        st.sampled_from(["x", "字", "é"]),
    ),
    st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=64),
        st.one_of(
            st.integers(-(2**63), 2**63 - 1),
            st.booleans(),
            st.none(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),
        ),
        max_size=LIMITS.max_metadata_keys,
    ).filter(lambda d: encoded_size(d) <= LIMITS.max_metadata_bytes),
)
turns = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system"]),
        "content": contents,
        "name": names,
        "metadata": metadatas,
    }
)


@settings(max_examples=150, deadline=None)
@given(batch=st.lists(turns, min_size=1, max_size=4))
def test_every_accepted_turn_is_storable(batch: list[dict[str, Any]]) -> None:
    """Property: turns anywhere within the input limits are accepted, and the store keeps them."""
    validate_memories(stored_forms(batch, LIMITS), DIMS, LIMITS)
