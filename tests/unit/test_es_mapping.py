"""The pure builders of the Elasticsearch store: filters, queries, documents and cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from memlane.errors import InvalidInput
from memlane.models import Memory, MemoryFilter, MemoryKind, TimeField, TimeWindow
from memlane.store import es_mapping as m
from memlane.text.tokens import tokenize

T0 = datetime(2024, 10, 26, 13, 26, tzinfo=UTC)
T1 = T0 + timedelta(days=1)


def _memory(**fields: Any) -> Memory:
    base: dict[str, Any] = {
        "id": "m1",
        "user_id": "u1",
        "kind": MemoryKind.OBSERVATION,
        "content": "The user plays 吉他",
        "recorded_at": T0,
    }
    return Memory(**(base | fields))


def test_user_filter_always_comes_first() -> None:
    """Every filter list starts with the user term, whatever else is asked."""
    for flt in (None, MemoryFilter(), MemoryFilter(include_superseded=True, ids=("a",))):
        assert m.build_filters("u1", flt)[0] == {"term": {"user_id": "u1"}}


def test_default_filter_keeps_active_only() -> None:
    """No filter means: this user's active memories."""
    assert m.build_filters("u1", None) == [
        {"term": {"user_id": "u1"}},
        {"term": {"status": "active"}},
    ]
    assert m.build_filters("u1", MemoryFilter(include_superseded=True)) == [
        {"term": {"user_id": "u1"}}
    ]


def test_each_filter_field_maps_to_a_clause() -> None:
    """kinds, ids, session and metadata become terms on their keyword fields."""
    flt = MemoryFilter(
        kinds=(MemoryKind.INSIGHT, MemoryKind.RAW),
        ids=("a", "b"),
        session_id="s1",
        metadata=(("src", "chat"), ("n", "3")),
        include_superseded=True,
    )
    assert m.build_filters("u1", flt)[1:] == [
        {"terms": {"kind": ["insight", "raw"]}},
        {"terms": {"id": ["a", "b"]}},
        {"term": {"session_id": "s1"}},
        {"term": {"metadata_kv": "src=chat"}},
        {"term": {"metadata_kv": "n=3"}},
    ]


def test_empty_ids_matches_nothing() -> None:
    """ids=() is an empty terms list (matches no document), not a missing filter."""
    clauses = m.build_filters("u1", MemoryFilter(ids=()))
    assert {"terms": {"id": []}} in clauses


def test_recorded_at_window_is_half_open_range() -> None:
    """[start, end) on recorded_at is gte/lt; open ends are left out."""
    window = TimeWindow(T0, T1, TimeField.RECORDED_AT)
    assert m.time_clause(window) == {
        "range": {"recorded_at": {"gte": T0.isoformat(), "lt": T1.isoformat()}}
    }
    open_end = TimeWindow(start=T0, field=TimeField.RECORDED_AT)
    assert m.time_clause(open_end) == {"range": {"recorded_at": {"gte": T0.isoformat()}}}


def test_event_time_window_falls_back_to_recorded_at() -> None:
    """On event_time: event_time in range, or no event_time and recorded_at in range."""
    clause = m.time_clause(TimeWindow(T0, T1, TimeField.EVENT_TIME))
    bounds = {"gte": T0.isoformat(), "lt": T1.isoformat()}
    assert clause == {
        "bool": {
            "should": [
                {"range": {"event_time": bounds}},
                {
                    "bool": {
                        "must_not": [{"exists": {"field": "event_time"}}],
                        "filter": [{"range": {"recorded_at": bounds}}],
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }


def test_unbounded_window_adds_no_clause_and_naive_bounds_are_refused() -> None:
    """A window with neither end filters nothing; a naive bound is InvalidInput."""
    assert len(m.build_filters("u1", MemoryFilter(time=TimeWindow()))) == 2
    naive = TimeWindow(start=datetime(2024, 1, 1))
    with pytest.raises(InvalidInput) as err:
        m.build_filters("u1", MemoryFilter(time=naive))
    assert err.value.field == "filter.time.start"


def test_knn_and_bm25_share_the_same_filters() -> None:
    """Both bodies carry the identical filter list; kNN asks for enough candidates."""
    filters = m.build_filters("u1", MemoryFilter(session_id="s"))
    knn = m.knn_body([0.1, 0.2], filters, 30)
    bm25 = m.bm25_body("guitar", filters, 30)
    assert bm25 is not None
    assert knn["knn"]["filter"] is filters
    assert bm25["query"]["bool"]["filter"] is filters
    assert (knn["knn"]["k"], knn["size"], knn["knn"]["num_candidates"]) == (30, 30, 100)
    assert m.knn_body([0.1], filters, 20_000)["knn"]["num_candidates"] == m.MAX_KNN_CANDIDATES


def test_bm25_query_text_is_tokens_never_syntax() -> None:
    """User text becomes lowercased tokens (CJK bigrams too) in a match query."""
    body = m.bm25_body('NEAR("a" b) 吉他', [], 10)
    assert body is not None
    match = body["query"]["bool"]["must"][0]["match"]["search_text"]
    assert match["query"] == " ".join(tokenize('NEAR("a" b) 吉他'))
    assert "(" not in match["query"] and '"' not in match["query"]
    assert m.bm25_body("?! ...", [], 10) is None


def test_source_adds_derived_fields_and_reading_drops_them() -> None:
    """search_text and metadata_kv are written, then stripped when reading back."""
    memory = _memory(keywords=["Hobby"], subject="music", metadata={"n": 3, "ok": True, "x": None})
    source = m.to_source(memory)
    assert source["search_text"] == " ".join(tokenize("The user plays 吉他 Hobby music"))
    assert "吉他" in source["search_text"].split()
    assert source["metadata_kv"] == ["n=3", "ok=true"]
    back = m.from_source(source)
    assert back == memory.replace(valid_from=memory.recorded_at)


def test_metadata_term_escapes_the_separator() -> None:
    """Keys containing '=' cannot be confused with values containing '='."""
    assert m.metadata_term("a=b", "c") != m.metadata_term("a", "b=c")
    assert m.metadata_term("k", None) is None


def test_doc_id_is_unique_per_user_and_id() -> None:
    """Two users' equal ids get different _ids; the _id fits Elasticsearch's limit."""
    assert m.doc_id("a", "m1") != m.doc_id("b", "m1")
    assert m.doc_id("a", "m1") == m.doc_id("a", "m1")
    assert m.doc_id("ab", "c") != m.doc_id("a", "bc")
    assert len(m.doc_id("用" * 128, "x" * 256).encode()) <= 512


def test_mapping_is_strict_with_required_routing() -> None:
    """Strict dynamic mapping, routing required, cosine vector of the configured dims."""
    mapping = m.mappings(384)
    assert mapping["dynamic"] == "strict"
    assert mapping["_routing"] == {"required": True}
    vector = mapping["properties"]["embedding"]
    assert (vector["dims"], vector["similarity"], vector["index"]) == (384, "cosine", True)
    assert mapping["properties"]["metadata"] == {"type": "object", "enabled": False}
    assert m.index_name("mem", 3) == "mem-v3"


def test_list_body_sorts_stably_and_follows_the_cursor() -> None:
    """Pages sort by (recorded_at, id), fetch one extra, and resume after the cursor."""
    cursor = m.encode_cursor([1729949160123, "m1"])
    body = m.list_body([], 7, m.decode_cursor(cursor))
    assert body["sort"] == [{"recorded_at": "asc"}, {"id": "asc"}]
    assert body["size"] == 8
    assert body["search_after"] == [1729949160123, "m1"]


@pytest.mark.parametrize("cursor", ["not a cursor!", "", m.encode_cursor(["x", 1]), "W10="])
def test_foreign_cursor_is_refused(cursor: str) -> None:
    """Anything list() did not make is InvalidInput naming the cursor."""
    with pytest.raises(InvalidInput) as err:
        m.decode_cursor(cursor)
    assert err.value.field == "cursor"


def test_sizes_stay_inside_the_result_window() -> None:
    """Huge pages and candidate counts are capped at max_result_window, not refused by ES."""
    assert m.list_body([], 10_000, None)["size"] == m.MAX_RESULT_WINDOW
    assert m.page_has_more(m.MAX_RESULT_WINDOW, 10_000)
    assert not m.page_has_more(4, 7)
    assert m.page_has_more(8, 7)
    body = m.bm25_body("guitar", [], 50_000)
    assert body is not None
    assert body["size"] == m.MAX_RESULT_WINDOW


def test_routing_is_a_digest_without_separators() -> None:
    """Routing values are 16 hex characters, stable per user id, so commas never reach ES."""
    assert m.routing("p0,q0") == m.routing("p0,q0") != m.routing("p0")
    assert all(
        len(m.routing(u)) == 16 and set(m.routing(u)) <= set("0123456789abcdef")
        for u in ("p0,q0", ",", "用户,1", "_all", "a b")
    )


def test_index_version_reads_the_suffix_of_our_names_only() -> None:
    """``<alias>-v<N>`` gives N; other names (or other aliases) give None."""
    assert m.index_version("mem-v2", "mem") == 2
    assert m.index_version("mem-v12", "mem") == 12
    assert m.index_version("mem-vx", "mem") is None
    assert m.index_version("other-v2", "mem") is None
    assert m.index_version("mem-v-1", "mem") is None


def test_indices_before_version_3_hold_stale_tokens() -> None:
    """Versions 1-2 (and unversioned names) name `memlane migrate-index`; 3 on are current."""
    assert "memlane migrate-index" in (m.stale_tokens("mem-v2", "mem", 3) or "")
    assert "mem-v3" in (m.stale_tokens("mem-v1", "mem", 3) or "")
    assert m.stale_tokens("mem", "mem", 3) is not None
    assert m.stale_tokens("mem-v3", "mem", 3) is None
    assert m.stale_tokens("mem-v4", "mem", 4) is None
