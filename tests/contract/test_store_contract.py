"""The MemoryStore contract: every backend must pass every test here unchanged."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from memlane.config_sections import LimitSettings
from memlane.errors import InvalidInput
from memlane.models import (
    Memory,
    MemoryFilter,
    MemoryKind,
    MemoryStatus,
    SupersedeReason,
    TimeField,
    TimeGranularity,
    TimeWindow,
)
from memlane.store import MemoryStore, SearchQuery
from memlane.store.codec import memory_to_doc
from tests.contract.factories import BASE_TIME, DIMS, make_memory, near, vector

EVERYTHING = MemoryFilter(include_superseded=True)
CONTRADICTION = SupersedeReason.CONTRADICTION


def ids_of(items: Sequence[Memory]) -> list[str]:
    """The ids of some memories, in order."""
    return [m.id for m in items]


def total(store: MemoryStore, user_id: str = "u1") -> int:
    """Every memory of the user, superseded ones included."""
    return store.count(user_id, EVERYTHING)


def matching(store: MemoryStore, flt: MemoryFilter, user_id: str = "u1") -> set[str]:
    """The ids a filter selects, asserting count, list, BM25 and kNN all agree on them."""
    listed = {m.id for m in store.list(user_id, flt, limit=1000).memories}
    assert store.count(user_id, flt) == len(listed)
    text = store.search(user_id, SearchQuery(text="shared", k=1000, candidates=1000, filter=flt))
    knn = store.search(user_id, SearchQuery(vector=vector(0), k=1000, candidates=1000, filter=flt))
    assert {h.memory.id for h in text} == listed, "BM25 ignores the filter"
    assert {h.memory.id for h in knn} == listed, "kNN ignores the filter"
    return listed


# -- upsert and get -------------------------------------------------------------------------


def test_upsert_same_ids_twice_keeps_one_copy(store: MemoryStore) -> None:
    """Upserting the same ids again replaces, never duplicates."""
    batch = [make_memory(f"fact {i}", seed=i) for i in range(3)]
    assert store.upsert(batch) == 3
    store.upsert(batch)
    assert total(store) == 3
    assert sorted(ids_of(store.list("u1").memories)) == sorted(ids_of(batch))
    assert len(store.get("u1", [batch[0].id])) == 1


def test_upsert_replaces_content_and_its_index(store: MemoryStore) -> None:
    """A replaced memory is found by its new words only."""
    store.upsert([make_memory("likes apples", mem_id="m1")])
    store.upsert([make_memory("likes bananas", mem_id="m1")])
    assert store.get("u1", ["m1"])[0].content == "likes bananas"
    assert ids_of([h.memory for h in store.search("u1", SearchQuery(text="bananas"))]) == ["m1"]
    assert store.search("u1", SearchQuery(text="apples")) == []


def test_get_preserves_order_and_skips_missing(store: MemoryStore) -> None:
    """get returns memories in the order asked for; unknown ids are left out."""
    store.upsert([make_memory(f"fact {i}", mem_id=f"m{i}") for i in range(4)])
    got = store.get("u1", ["m3", "nope", "m0", "m2"])
    assert ids_of(got) == ["m3", "m0", "m2"]
    assert store.get("u1", []) == []


def test_get_round_trips_every_field(store: MemoryStore) -> None:
    """What is stored comes back: dates, enums, lists, metadata and the vector."""
    memory = make_memory(
        "用户爱好是吉他。",
        mem_id="o-1",
        seed=7,
        kind=MemoryKind.INSIGHT,
        keywords=["吉他", "hobby"],
        subject="hobby",
        event_time=BASE_TIME - timedelta(days=5),
        time_granularity=TimeGranularity.DAY,
        source_turn_ids=["t-1", "t-2"],
        session_id="s1",
        batch_id="b-1",
        importance=0.9,
        language="zh",
        metadata={"source": "chat", "n": 3},
    )
    store.upsert([memory])
    (got,) = store.get("u1", ["o-1"])
    assert got.embedding is not None
    assert got.embedding == pytest.approx(memory.embedding, abs=1e-6)
    expected = memory_to_doc(memory, with_embedding=False)
    actual = memory_to_doc(got, with_embedding=False)
    for name in ("created_at", "updated_at"):
        expected.pop(name)
        actual.pop(name)
    for name in ("recorded_at", "event_time"):
        assert datetime.fromisoformat(actual.pop(name)) == getattr(memory, name)
        expected.pop(name)
    assert actual == expected


def test_same_id_under_two_users_is_two_memories(store: MemoryStore) -> None:
    """Ids are scoped by user: another user's upsert of the same id changes nothing here."""
    store.upsert([make_memory("mine", user_id="a", mem_id="m1")])
    store.upsert([make_memory("theirs", user_id="b", mem_id="m1")])
    assert store.get("a", ["m1"])[0].content == "mine"
    assert store.get("b", ["m1"])[0].content == "theirs"
    store.delete("b", ["m1"])
    assert store.get("a", ["m1"])[0].content == "mine"


# -- search -----------------------------------------------------------------------------------


def test_bm25_exact_match_ranked_first(store: MemoryStore) -> None:
    """A text-only query puts the memory that contains its words first."""
    store.upsert(
        [
            make_memory("the user plays the guitar every weekend", mem_id="g", seed=None),
            make_memory("the user likes pizza", mem_id="p", seed=None),
            make_memory("the user has a cat named Tom", mem_id="c", seed=None),
        ]
    )
    hits = store.search("u1", SearchQuery(text="guitar weekend", vector=None))
    assert hits[0].memory.id == "g"
    assert hits[0].bm25_rank == 1
    assert hits[0].knn_rank is None


def test_cjk_bm25_finds_chinese_words(store: MemoryStore) -> None:
    """吉他 finds 用户爱好是吉他 without a vector (CJK pre-tokenised into bigrams)."""
    store.upsert(
        [
            make_memory("用户爱好是吉他。", mem_id="guitar", seed=None),
            make_memory("用户喜欢吃火锅。", mem_id="hotpot", seed=None),
            make_memory("用户住在上海。", mem_id="city", seed=None),
        ]
    )
    hits = store.search("u1", SearchQuery(text="吉他", vector=None))
    assert hits[0].memory.id == "guitar"
    question = store.search("u1", SearchQuery(text="你知道我的乐器爱好是什么?"))
    assert question[0].memory.id == "guitar"


def test_knn_exact_vector_ranked_first(store: MemoryStore) -> None:
    """A vector-only query puts the nearest memory first, then the next nearest."""
    store.upsert([make_memory(f"fact {i}", mem_id=f"m{i}", seed=i) for i in range(10)])
    hits = store.search("u1", SearchQuery(text=None, vector=vector(4), k=3))
    assert hits[0].memory.id == "m4"
    assert hits[0].knn_rank == 1
    assert hits[0].bm25_rank is None
    assert len(hits) == 3
    assert store.search("u1", SearchQuery(vector=near(6, 99)))[0].memory.id == "m6"


def test_hybrid_hits_carry_component_ranks_and_scores(store: MemoryStore) -> None:
    """Fused hits explain themselves: ranks and scores from each component that found them."""
    store.upsert(
        [
            make_memory("shared guitar", mem_id="both", seed=1),
            make_memory("other words", mem_id="knn-only", seed=2),
        ]
    )
    hits = store.search("u1", SearchQuery(text="guitar", vector=vector(1)))
    by_id = {h.memory.id: h for h in hits}
    assert hits[0].memory.id == "both"
    assert (by_id["both"].knn_rank, by_id["both"].bm25_rank) == (1, 1)
    assert by_id["both"].knn_score is not None
    assert by_id["both"].bm25_score is not None
    assert by_id["knn-only"].knn_rank == 2
    assert by_id["knn-only"].bm25_rank is None
    assert by_id["knn-only"].bm25_score is None
    assert hits[0].score > hits[1].score


def test_search_respects_k(store: MemoryStore) -> None:
    """No more than k hits come back."""
    store.upsert([make_memory(f"shared {i}", seed=i) for i in range(8)])
    assert len(store.search("u1", SearchQuery(text="shared", vector=vector(0), k=5))) == 5


@pytest.mark.parametrize(
    "text",
    ['"', "'", "*", "near", 'NEAR("a" b)', "a:b", "content:x", "-guitar", "OR", "AND NOT (", "^a"],
)
def test_query_syntax_in_text_is_literal(store: MemoryStore, text: str) -> None:
    """Search text never becomes query syntax: no error, and operators match as words."""
    store.upsert([make_memory("meet me near the station", mem_id="n", seed=None)])
    hits = store.search("u1", SearchQuery(text=text))
    assert {h.memory.id for h in hits} <= {"n"}
    if text == "near":
        assert ids_of([h.memory for h in hits]) == ["n"]


def test_empty_query_finds_nothing(store: MemoryStore) -> None:
    """No text tokens and no vector: nothing to rank by."""
    store.upsert([make_memory("something")])
    assert store.search("u1", SearchQuery(text=None, vector=None)) == []
    assert store.search("u1", SearchQuery(text="?! ...")) == []


# -- filters (count, list, BM25 and kNN must agree) ------------------------------------------


def test_filter_kinds(store: MemoryStore) -> None:
    """kinds keeps only the listed kinds."""
    store.upsert(
        [
            make_memory("shared obs", mem_id="o", kind=MemoryKind.OBSERVATION),
            make_memory("shared ins", mem_id="i", kind=MemoryKind.INSIGHT),
            make_memory("shared raw", mem_id="r", kind=MemoryKind.RAW),
        ]
    )
    assert matching(store, MemoryFilter(kinds=(MemoryKind.INSIGHT,))) == {"i"}
    both = MemoryFilter(kinds=(MemoryKind.OBSERVATION, MemoryKind.RAW))
    assert matching(store, both) == {"o", "r"}
    assert matching(store, MemoryFilter()) == {"o", "i", "r"}


def test_filter_status_hides_superseded_unless_asked(store: MemoryStore) -> None:
    """Superseded memories are left out by default and included on request."""
    store.upsert(
        [
            make_memory("shared old", mem_id="old", status=MemoryStatus.SUPERSEDED),
            make_memory("shared new", mem_id="new"),
        ]
    )
    assert matching(store, MemoryFilter()) == {"new"}
    assert matching(store, MemoryFilter(include_superseded=True)) == {"old", "new"}


def test_filter_session(store: MemoryStore) -> None:
    """session_id keeps only that session's memories."""
    store.upsert(
        [
            make_memory("shared a", mem_id="a", session_id="s1"),
            make_memory("shared b", mem_id="b", session_id="s2"),
            make_memory("shared c", mem_id="c"),
        ]
    )
    assert matching(store, MemoryFilter(session_id="s1")) == {"a"}


def test_filter_metadata_equality_compares_strings(store: MemoryStore) -> None:
    """Each (key, value) pair must match; non-string values compare by their JSON spelling."""
    store.upsert(
        [
            make_memory("shared a", mem_id="a", metadata={"src": "chat", "n": 3}),
            make_memory("shared b", mem_id="b", metadata={"src": "chat", "n": 4}),
            make_memory("shared c", mem_id="c", metadata={"src": "import"}),
        ]
    )
    assert matching(store, MemoryFilter(metadata=(("src", "chat"),))) == {"a", "b"}
    assert matching(store, MemoryFilter(metadata=(("src", "chat"), ("n", "3")))) == {"a"}
    assert matching(store, MemoryFilter(metadata=(("src", "Chat"),))) == set()
    assert matching(store, MemoryFilter(metadata=(("missing", "x"),))) == set()


def test_filter_ids(store: MemoryStore) -> None:
    """ids restricts to those ids; an empty tuple matches nothing."""
    store.upsert([make_memory(f"shared {i}", mem_id=f"m{i}") for i in range(4)])
    assert matching(store, MemoryFilter(ids=("m1", "m3", "zz"))) == {"m1", "m3"}
    assert matching(store, MemoryFilter(ids=())) == set()


def test_filter_recorded_at_window_is_half_open(store: MemoryStore) -> None:
    """[start, end): a memory exactly at start is in, exactly at end is out."""
    store.upsert([make_memory(f"shared {i}", mem_id=f"m{i}", minutes=i * 60) for i in range(5)])
    window = TimeWindow(
        BASE_TIME + timedelta(hours=1), BASE_TIME + timedelta(hours=3), TimeField.RECORDED_AT
    )
    assert matching(store, MemoryFilter(time=window)) == {"m1", "m2"}
    open_end = TimeWindow(start=BASE_TIME + timedelta(hours=3), field=TimeField.RECORDED_AT)
    assert matching(store, MemoryFilter(time=open_end)) == {"m3", "m4"}
    open_start = TimeWindow(end=BASE_TIME + timedelta(hours=1), field=TimeField.RECORDED_AT)
    assert matching(store, MemoryFilter(time=open_start)) == {"m0"}


def test_filter_window_compares_instants_across_timezones(store: MemoryStore) -> None:
    """A window given in UTC selects the same instants as one in the memory's timezone."""
    store.upsert([make_memory("shared", mem_id="m", minutes=0)])
    start = BASE_TIME.astimezone(UTC)
    window = TimeWindow(start, start + timedelta(seconds=1), TimeField.RECORDED_AT)
    assert matching(store, MemoryFilter(time=window)) == {"m"}


def test_filter_event_time_falls_back_to_recorded_at(store: MemoryStore) -> None:
    """On event_time, a memory without an event time is placed at its recorded_at."""
    day = timedelta(days=1)
    store.upsert(
        [
            # said today about last week: event in the window, recorded after it
            make_memory("shared e", mem_id="event-in", event_time=BASE_TIME - 7 * day),
            # event long ago, recorded inside the window
            make_memory(
                "shared o", mem_id="event-out", event_time=BASE_TIME - 30 * day, minutes=-8 * 1440
            ),
            # no event time, recorded inside the window: falls back to recorded_at
            make_memory("shared f", mem_id="fallback-in", minutes=-6 * 1440),
            # no event time, recorded outside the window
            make_memory("shared g", mem_id="fallback-out", minutes=0),
        ]
    )
    window = TimeWindow(BASE_TIME - 8 * day, BASE_TIME - 5 * day, TimeField.EVENT_TIME)
    assert matching(store, MemoryFilter(time=window)) == {"event-in", "fallback-in"}
    recorded = TimeWindow(BASE_TIME - 8 * day, BASE_TIME - 5 * day, TimeField.RECORDED_AT)
    assert matching(store, MemoryFilter(time=recorded)) == {"event-out", "fallback-in"}


def test_event_time_window_boundaries_are_half_open(store: MemoryStore) -> None:
    """Event times exactly at start are in, exactly at end are out."""
    start, end = BASE_TIME - timedelta(days=2), BASE_TIME - timedelta(days=1)
    store.upsert(
        [
            make_memory("shared s", mem_id="at-start", event_time=start),
            make_memory("shared e", mem_id="at-end", event_time=end),
            make_memory("shared b", mem_id="before-end", event_time=end - timedelta(seconds=1)),
        ]
    )
    window = TimeWindow(start, end, TimeField.EVENT_TIME)
    assert matching(store, MemoryFilter(time=window)) == {"at-start", "before-end"}


def test_filters_combine_with_and(store: MemoryStore) -> None:
    """Several filters at once must all hold."""
    store.upsert(
        [
            make_memory("shared a", mem_id="a", kind=MemoryKind.INSIGHT, session_id="s1"),
            make_memory("shared b", mem_id="b", kind=MemoryKind.INSIGHT, session_id="s2"),
            make_memory("shared c", mem_id="c", kind=MemoryKind.RAW, session_id="s1"),
        ]
    )
    flt = MemoryFilter(kinds=(MemoryKind.INSIGHT,), session_id="s1")
    assert matching(store, flt) == {"a"}


# -- list -------------------------------------------------------------------------------------


def test_list_pages_return_everything_exactly_once(store: MemoryStore) -> None:
    """25 memories (some sharing recorded_at) in pages of 7: each once, then cursor None."""
    store.upsert([make_memory(f"fact {i}", mem_id=f"m{i:02d}", minutes=i // 3) for i in range(25)])
    seen: list[str] = []
    sizes = []
    cursor = None
    while True:
        page = store.list("u1", limit=7, cursor=cursor)
        seen += ids_of(page.memories)
        sizes.append(len(page.memories))
        if page.cursor is None:
            break
        cursor = page.cursor
    assert sorted(seen) == [f"m{i:02d}" for i in range(25)]
    assert len(seen) == 25
    assert sizes == [7, 7, 7, 4]


def test_list_survives_writes_between_pages(store: MemoryStore) -> None:
    """Rewrites and inserts between pages never repeat or skip an existing memory."""
    originals = [make_memory(f"fact {i}", mem_id=f"m{i:02d}", minutes=i) for i in range(20)]
    store.upsert(originals)
    page = store.list("u1", limit=6)
    seen = ids_of(page.memories)
    store.upsert([originals[0], originals[15].replace(content="changed")])
    store.upsert([make_memory("new early", mem_id="new", minutes=-5)])
    while page.cursor is not None:
        page = store.list("u1", limit=6, cursor=page.cursor)
        seen += ids_of(page.memories)
    assert sorted(m for m in seen if m != "new") == sorted(ids_of(originals))


def test_list_with_filter_and_exact_page_size(store: MemoryStore) -> None:
    """Filtered pages hold only matches; the stable order repeats on a second pass."""
    kinds = (MemoryKind.OBSERVATION, MemoryKind.RAW)
    store.upsert([make_memory(f"fact {i}", mem_id=f"m{i}", kind=kinds[i % 2]) for i in range(8)])
    flt = MemoryFilter(kinds=(MemoryKind.RAW,))
    first = store.list("u1", flt, limit=4)
    assert sorted(ids_of(first.memories)) == ["m1", "m3", "m5", "m7"]
    if first.cursor is not None:
        assert store.list("u1", flt, limit=4, cursor=first.cursor).memories == []
    assert ids_of(store.list("u1", flt, limit=4).memories) == ids_of(first.memories)


def test_list_of_unknown_user_is_empty(store: MemoryStore) -> None:
    """A user with no memories gets an empty last page."""
    page = store.list("nobody")
    assert page.memories == []
    assert page.cursor is None


def test_bad_cursor_is_refused(store: MemoryStore) -> None:
    """A cursor the store did not make is InvalidInput naming the cursor."""
    with pytest.raises(InvalidInput) as err:
        store.list("u1", cursor="not a cursor!")
    assert err.value.field == "cursor"


# -- supersede, delete, delete_user, count ---------------------------------------------------


def test_supersede_hides_by_default_and_records_why(store: MemoryStore) -> None:
    """Superseded memories stay as history with superseded_by and valid_to set."""
    store.upsert([make_memory("shared old", mem_id="old"), make_memory("shared new", mem_id="new")])
    valid_to = datetime(2024, 11, 1, 12, tzinfo=UTC)
    assert store.supersede("u1", ["old", "missing"], "new", valid_to, CONTRADICTION) == 1
    assert matching(store, MemoryFilter()) == {"new"}
    assert matching(store, MemoryFilter(include_superseded=True)) == {"old", "new"}
    (old,) = store.get("u1", ["old"])
    assert old.status is MemoryStatus.SUPERSEDED
    assert old.superseded_by == "new"
    assert old.valid_to == valid_to
    assert old.updated_at is not None
    assert old.content == "shared old"
    assert store.search("u1", SearchQuery(text="old", vector=vector(0))) != []
    assert all(h.memory.id == "new" for h in store.search("u1", SearchQuery(text="old")))


def test_delete_removes_only_the_given_ids(store: MemoryStore) -> None:
    """delete returns how many it removed; the rest stay searchable."""
    store.upsert([make_memory(f"shared {i}", mem_id=f"m{i}", seed=i) for i in range(4)])
    assert store.delete("u1", ["m1", "m2", "missing"]) == 2
    assert store.delete("u1", ["m1"]) == 0
    assert total(store) == 2
    assert store.get("u1", ["m1", "m0"])[0].id == "m0"
    assert matching(store, MemoryFilter()) == {"m0", "m3"}
    assert store.search("u1", SearchQuery(vector=vector(1)))[0].memory.id != "m1"


def test_delete_user_leaves_nothing_and_can_rerun(store: MemoryStore) -> None:
    """After forget: count 0, empty list, empty search; again is harmless; others intact."""
    store.upsert([make_memory(f"shared {i}", mem_id=f"m{i}", seed=i) for i in range(5)])
    store.supersede("u1", ["m0"], "m1", BASE_TIME, CONTRADICTION)
    store.upsert([make_memory("shared other", user_id="u2", mem_id="m0")])
    assert store.delete_user("u1") == 5
    assert total(store) == 0
    assert store.list("u1", EVERYTHING).memories == []
    query = SearchQuery(text="shared", vector=vector(0), filter=EVERYTHING)
    assert store.search("u1", query) == []
    assert store.get("u1", ["m0"]) == []
    assert store.delete_user("u1") == 0
    assert store.delete_user("never-seen") == 0
    assert total(store, "u2") == 1


def test_count_with_filters(store: MemoryStore) -> None:
    """count applies the same filter as list and search."""
    store.upsert(
        [
            make_memory("a", mem_id="a", kind=MemoryKind.INSIGHT),
            make_memory("b", mem_id="b", kind=MemoryKind.RAW, status=MemoryStatus.SUPERSEDED),
            make_memory("c", mem_id="c", kind=MemoryKind.RAW),
        ]
    )
    assert store.count("u1") == 2
    assert store.count("u1", EVERYTHING) == 3
    assert store.count("u1", MemoryFilter(kinds=(MemoryKind.RAW,))) == 1
    assert store.count("u1", MemoryFilter(kinds=(MemoryKind.RAW,), include_superseded=True)) == 2
    assert store.count("nobody") == 0


# -- bad input: refused, named, nothing written -----------------------------------------------


def _too_big_metadata(limits: LimitSettings) -> dict[str, str]:
    return {"blob": "x" * (limits.max_metadata_bytes * 4)}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"embedding": [0.1] * (DIMS - 1)}, "embedding"),
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "bad\x00id"}, "user_id"),
        ({"user_id": "tab\tid"}, "user_id"),
        ({"user_id": "x" * 129}, "user_id"),
        ({"metadata": "big"}, "metadata"),
    ],
)
@pytest.mark.parametrize("position", [0, 2])
def test_bad_memory_is_refused_and_nothing_written(
    store: MemoryStore,
    limits: LimitSettings,
    change: dict[str, object],
    field: str,
    position: int,
) -> None:
    """InvalidInput names memories[i].field, and no memory of the batch is written."""
    store.upsert([make_memory("existing", mem_id="keep")])
    if change.get("metadata") == "big":
        change = {"metadata": _too_big_metadata(limits)}
    batch = [
        make_memory("existing rewritten", mem_id="keep"),
        make_memory("new 1", mem_id="n1", seed=1),
        make_memory("new 2", mem_id="n2", seed=2),
    ]
    batch[position] = batch[position].replace(**change)
    before = total(store)
    with pytest.raises(InvalidInput) as err:
        store.upsert(batch)
    assert err.value.field.startswith(f"memories[{position}].{field}")
    assert total(store) == before
    assert store.get("u1", ["keep"])[0].content == "existing"
    assert store.get("u1", ["n1", "n2"]) == []


def test_user_id_limit_is_the_configured_one(store: MemoryStore, limits: LimitSettings) -> None:
    """An id of exactly the maximum length is accepted; one more character is refused."""
    longest = "u" * limits.user_id_max_len
    store.upsert([make_memory("fits", user_id=longest)])
    assert store.count(longest) == 1
    with pytest.raises(InvalidInput):
        store.count(longest + "u")


@pytest.mark.parametrize("user_id", ["", "   ", "a\nb", "x" * 129])
def test_every_method_refuses_a_malformed_user_id(store: MemoryStore, user_id: str) -> None:
    """Reads, deletes and supersede validate the user id just like upsert."""
    calls = [
        lambda: store.get(user_id, ["m"]),
        lambda: store.search(user_id, SearchQuery(text="x")),
        lambda: store.list(user_id),
        lambda: store.count(user_id),
        lambda: store.delete(user_id, ["m"]),
        lambda: store.delete_user(user_id),
        lambda: store.supersede(user_id, ["m"], "n", BASE_TIME, CONTRADICTION),
    ]
    for call in calls:
        with pytest.raises(InvalidInput) as err:
            call()
        assert err.value.field == "user_id"


def test_query_vector_with_wrong_dims_is_refused(store: MemoryStore) -> None:
    """A query vector must have the configured dims."""
    with pytest.raises(InvalidInput) as err:
        store.search("u1", SearchQuery(vector=[0.1] * 3))
    assert "vector" in err.value.field


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_writers_and_readers_in_threads(store: MemoryStore) -> None:
    """One store object shared by threads: every write lands, reads never fail."""
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(10):
                memory = make_memory(f"shared {worker} {i}", mem_id=f"w{worker}-{i}", seed=i)
                store.upsert([memory])
                store.search("u1", SearchQuery(text="shared", vector=vector(i)))
        except BaseException as e:  # noqa: BLE001 - collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert total(store) == 40


def test_search_returns_embeddings_when_asked(store: MemoryStore) -> None:
    """with_vectors=True makes every hit carry its embedding (near-duplicate checks need it)."""
    memory = make_memory("用户喜欢爬山", user_id="vec-user", seed=7)
    store.upsert([memory])
    query = SearchQuery(text="爬山", vector=memory.embedding, k=3, with_vectors=True)
    (hit,) = store.search("vec-user", query)
    assert hit.memory.embedding == pytest.approx(memory.embedding, abs=1e-6)
