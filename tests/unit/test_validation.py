"""Turn validation (DESIGN §3): bad input is refused with ``InvalidInput`` naming the field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from memlane.config_sections import LimitSettings, RetrievalSettings
from memlane.errors import InvalidInput
from memlane.models import MemoryKind, Role
from memlane.validation import RetrieveParams, validate_retrieve, validate_turns

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 10, 26, 13, 26, tzinfo=UTC)
LIMITS = LimitSettings()


def turn(**fields: Any) -> dict[str, Any]:
    """A valid turn mapping, with some fields replaced."""
    base: dict[str, Any] = {"role": "user", "content": "我的爱好是吉他。"}
    base.update(fields)
    return base


def run(
    turns: object,
    user_id: object = "u1",
    session_id: object = None,
    limits: LimitSettings = LIMITS,
) -> list[Any]:
    """Validate with fixed clock, timezone and limits."""
    return validate_turns(user_id, turns, session_id, limits, TZ, NOW)


def refused(fn: Callable[[], object]) -> InvalidInput:
    """The InvalidInput raised by ``fn``."""
    with pytest.raises(InvalidInput) as info:
        fn()
    return info.value


def field_of_bad_turn(bad: dict[str, Any], **kw: Any) -> str:
    """The field named when ``bad`` is the second of three turns."""
    return refused(lambda: run([turn(), bad, turn(content="third")], **kw)).field


# -- content ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [None, 42, 3.5, b"bytes", ["text"], {"text": "x"}, True],
    ids=["none", "int", "float", "bytes", "list", "dict", "bool"],
)
def test_content_of_wrong_type_is_refused(content: object) -> None:
    """Content must be a string."""
    assert field_of_bad_turn(turn(content=content)) == "turns[1].content"


@pytest.mark.parametrize(
    "content", ["", " ", "\n\t  ", "\u3000"], ids=["empty", "space", "ws", "cjk-space"]
)
def test_empty_or_blank_content_is_refused(content: str) -> None:
    """Content must contain something other than whitespace."""
    assert field_of_bad_turn(turn(content=content)) == "turns[1].content"


def test_missing_content_is_refused() -> None:
    """A turn without content names the content field."""
    bad = turn()
    del bad["content"]
    assert field_of_bad_turn(bad) == "turns[1].content"


def test_oversized_content_is_refused_at_the_limit_plus_one() -> None:
    """Content may be exactly max_content_chars long, not one character more."""
    limits = LimitSettings(max_content_chars=100)
    assert run([turn(content="x" * 100)], limits=limits)[0].content == "x" * 100
    assert field_of_bad_turn(turn(content="x" * 101), limits=limits) == "turns[1].content"


def test_default_limit_refuses_huge_content() -> None:
    """The default limit (16,000 characters) applies without configuration."""
    assert field_of_bad_turn(turn(content="字" * 16_001)) == "turns[1].content"


def test_content_with_lone_surrogate_is_refused() -> None:
    """A string that cannot be encoded as UTF-8 is bad input, not a crash at push time."""
    assert field_of_bad_turn(turn(content="bad \ud800 text")) == "turns[1].content"


# -- role and name ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["robot", "User", "", None, 1, ["user"]])
def test_unknown_role_is_refused(role: object) -> None:
    """Only user, assistant and system are roles."""
    assert field_of_bad_turn(turn(role=role)) == "turns[1].role"


def test_missing_role_is_refused() -> None:
    """A role is required."""
    bad = turn()
    del bad["role"]
    assert field_of_bad_turn(bad) == "turns[1].role"


@pytest.mark.parametrize("role", ["user", "assistant", "system"])
def test_every_known_role_is_accepted(role: str) -> None:
    """The three roles parse into the Role enum."""
    assert run([turn(role=role)])[0].role is Role(role)


@pytest.mark.parametrize("name", ["", "  ", 7, "a\x00b", "n" * 129])
def test_bad_speaker_name_is_refused(name: object) -> None:
    """A name is a short printable string."""
    assert field_of_bad_turn(turn(name=name)) == "turns[1].name"


def test_speaker_name_is_kept() -> None:
    """An optional speaker name is carried on the turn."""
    assert run([turn(name="Caroline")])[0].name == "Caroline"


# -- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        "9999-12-31T00:00:00",
        datetime(9999, 12, 31, tzinfo=UTC),
        253402214400,  # 9999-12-31 as epoch seconds
        1e20,  # beyond what datetime can represent
        -1,  # 1969-12-31T23:59:59Z
        "1969-12-31T23:59:59Z",
        datetime(1900, 1, 1, tzinfo=UTC),
        (NOW + timedelta(days=2)).isoformat(),  # more than one day in the future
        "not a date",
        "",
        True,
        b"2024-01-01",
        [2024, 1, 1],
    ],
    ids=[
        "nan",
        "inf",
        "-inf",
        "iso-9999",
        "dt-9999",
        "epoch-9999",
        "epoch-overflow",
        "epoch-pre-1970",
        "iso-pre-1970",
        "dt-1900",
        "future",
        "garbage",
        "empty",
        "bool",
        "bytes",
        "list",
    ],
)
def test_bad_timestamp_is_refused(ts: object) -> None:
    """Non-finite, absurd, unparseable or mistyped timestamps name the ts field."""
    assert field_of_bad_turn(turn(ts=ts)) == "turns[1].ts"


def test_naive_timestamp_takes_the_configured_timezone() -> None:
    """A naive datetime (or ISO string without offset) is read in settings.timezone."""
    naive = datetime(2024, 10, 26, 21, 26)
    [a, b] = run([turn(ts=naive), turn(ts="2024-10-26T21:26:00", content="again")])
    for t in (a, b):
        assert t.ts.utcoffset() == timedelta(hours=8)
        assert t.ts == datetime(2024, 10, 26, 13, 26, tzinfo=UTC)


def test_aware_timestamp_keeps_its_offset() -> None:
    """An aware timestamp is not shifted into the configured timezone."""
    ts = datetime(2024, 10, 26, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert run([turn(ts=ts)])[0].ts == ts


def test_iso_string_and_epoch_seconds_are_accepted() -> None:
    """ISO-8601 (with Z or offset) and int/float epoch seconds all parse to the same instant."""
    instant = datetime(2024, 10, 26, 13, 26, tzinfo=UTC)
    epoch = instant.timestamp()
    parsed = run(
        [
            turn(ts="2024-10-26T13:26:00Z", content="a"),
            turn(ts="2024-10-26T21:26:00+08:00", content="b"),
            turn(ts=int(epoch), content="c"),
            turn(ts=float(epoch), content="d"),
        ]
    )
    assert [t.ts for t in parsed] == [instant] * 4
    assert all(t.ts.tzinfo is not None for t in parsed)


def test_missing_timestamp_defaults_to_now() -> None:
    """With no ts the turn is stamped with the validation clock."""
    assert run([turn()])[0].ts == NOW


def test_timestamp_within_one_day_in_the_future_is_accepted() -> None:
    """Small clock skew between bot and server is tolerated."""
    soon = NOW + timedelta(hours=23)
    assert run([turn(ts=soon)])[0].ts == soon


# -- user_id ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user_id",
    [
        "",
        "   ",
        "\t",
        "u" * 129,
        "a\x00b",
        "line\nbreak",
        "bell\x07",
        "del\x7f",
        None,
        42,
        b"u1",
        ["u1"],
    ],
    ids=[
        "empty",
        "blank",
        "tab",
        "too-long",
        "nul",
        "newline",
        "bell",
        "del",
        "none",
        "int",
        "bytes",
        "list",
    ],
)
def test_bad_user_id_is_refused(user_id: object) -> None:
    """A user id is 1..128 printable characters, not blank, and a string."""
    assert refused(lambda: run([turn()], user_id=user_id)).field == "user_id"


@pytest.mark.parametrize("user_id", ["a", "a:b", "*", "{a}", "用户-1", "u" * 128, "x y"])
def test_unusual_but_valid_user_ids_are_accepted(user_id: str) -> None:
    """Redis-significant characters are fine: keys embed the id verbatim in a hash tag."""
    assert run([turn()], user_id=user_id)[0].user_id == user_id


# -- session_id and turn_id -------------------------------------------------------------------


@pytest.mark.parametrize("session_id", ["", " ", 5, "s\x00", "s" * 257])
def test_bad_call_session_id_is_refused(session_id: object) -> None:
    """The session_id argument of the call is checked on its own."""
    assert refused(lambda: run([turn()], session_id=session_id)).field == "session_id"


@pytest.mark.parametrize("session_id", ["", 5, "s" * 257])
def test_bad_turn_session_id_is_refused(session_id: object) -> None:
    """A per-turn session_id names the turn's field."""
    assert field_of_bad_turn(turn(session_id=session_id)) == "turns[1].session_id"


def test_call_session_id_applies_unless_the_turn_has_its_own() -> None:
    """The call's session is the default; a turn may override it."""
    a, b = run([turn(), turn(session_id="s2", content="x")], session_id="s1")
    assert (a.session_id, b.session_id) == ("s1", "s2")


@pytest.mark.parametrize("turn_id", ["", "  ", 12, "t" * 129, "t\x01"])
def test_bad_turn_id_is_refused(turn_id: object) -> None:
    """A client turn_id is a short printable string."""
    assert field_of_bad_turn(turn(turn_id=turn_id)) == "turns[1].turn_id"


def test_client_turn_id_is_kept() -> None:
    """The client's idempotency key wins over the derived one."""
    assert run([turn(turn_id="msg-42")])[0].turn_id == "msg-42"


# -- metadata ---------------------------------------------------------------------------------


def test_metadata_with_too_many_keys_is_refused() -> None:
    """More than max_metadata_keys keys is too much."""
    meta = {f"k{i}": i for i in range(LIMITS.max_metadata_keys + 1)}
    assert field_of_bad_turn(turn(metadata=meta)) == "turns[1].metadata"
    ok = {f"k{i}": i for i in range(LIMITS.max_metadata_keys)}
    assert run([turn(metadata=ok)])[0].metadata == ok


def test_oversized_metadata_is_refused() -> None:
    """Metadata over max_metadata_bytes (JSON, UTF-8) is too big."""
    assert field_of_bad_turn(turn(metadata={"note": "x" * 3000})) == "turns[1].metadata"
    assert field_of_bad_turn(turn(metadata={"note": "字" * 700})) == "turns[1].metadata"


@pytest.mark.parametrize(
    "value",
    [{"a": 1}, [1, 2], (1,), {1, 2}, object()],
    ids=["dict", "list", "tuple", "set", "object"],
)
def test_nested_metadata_names_the_key(value: object) -> None:
    """Metadata is flat: a non-scalar value names its key."""
    assert field_of_bad_turn(turn(metadata={"ok": 1, "deep": value})) == "turns[1].metadata.deep"


def test_non_finite_metadata_value_is_refused() -> None:
    """NaN cannot round-trip through JSON."""
    bad = turn(metadata={"score": float("nan")})
    assert field_of_bad_turn(bad) == "turns[1].metadata.score"


@pytest.mark.parametrize(
    "meta", [["a"], "text", 5, {1: "int key"}, {"": "empty key"}, {"k" * 65: 1}]
)
def test_metadata_of_wrong_shape_is_refused(meta: object) -> None:
    """Metadata is a mapping with short string keys."""
    assert field_of_bad_turn(turn(metadata=meta)) == "turns[1].metadata"


def test_metadata_with_lone_surrogate_is_refused() -> None:
    """Metadata that cannot be encoded is bad input, not an encoding crash."""
    bad = turn(metadata={"note": "\udcff"})
    assert field_of_bad_turn(bad).startswith("turns[1].metadata")


def test_flat_scalar_metadata_is_kept() -> None:
    """Strings, numbers, booleans and None are allowed values."""
    meta = {"s": "x", "i": 1, "f": 0.5, "b": True, "n": None}
    assert run([turn(metadata=meta)])[0].metadata == meta


# -- turn shape and list shape ----------------------------------------------------------------


def test_unknown_turn_field_is_refused() -> None:
    """A misspelt field is reported, not silently dropped."""
    assert field_of_bad_turn(turn(contnet="typo")) == "turns[1].contnet"
    assert field_of_bad_turn(turn(user_id="other")) == "turns[1].user_id"


@pytest.mark.parametrize("bad", ["text", 5, None, ["role", "user"]])
def test_turn_that_is_not_a_mapping_is_refused(bad: object) -> None:
    """Each turn is a mapping."""
    assert refused(lambda: run([turn(), bad])).field == "turns[1]"


def test_empty_turn_list_is_refused() -> None:
    """At least one turn per call."""
    assert refused(lambda: run([])).field == "turns"


@pytest.mark.parametrize(
    "turns",
    ["a string", b"bytes", {"role": "user"}, 5, None],
    ids=["str", "bytes", "dict", "int", "none"],
)
def test_turns_that_are_not_a_list_are_refused(turns: object) -> None:
    """``turns`` is a list of mappings; a single mapping is not accepted."""
    assert refused(lambda: run(turns)).field == "turns"


def test_too_many_turns_in_one_call_are_refused() -> None:
    """max_turns_per_call bounds one call."""
    limits = LimitSettings(max_turns_per_call=3)
    turns = [turn(content=f"c{i}") for i in range(4)]
    assert refused(lambda: run(turns, limits=limits)).field == "turns"


def test_the_first_bad_turn_is_named_by_index() -> None:
    """The index in the path is the position of the offending turn."""
    turns = [turn(content=f"c{i}") for i in range(5)]
    turns[3]["role"] = "bot"
    assert refused(lambda: run(turns)).field == "turns[3].role"


# -- default turn ids -------------------------------------------------------------------------


def test_default_turn_id_is_stable_for_the_same_input() -> None:
    """Same user, session, ts, role and content -> same id, across calls."""
    ts = "2024-10-26T21:26:00+08:00"
    first = run([turn(ts=ts)], session_id="s")[0].turn_id
    second = run([turn(ts=ts)], session_id="s")[0].turn_id
    assert first == second
    assert first.startswith("t-")


@pytest.mark.parametrize(
    ("change", "kw"),
    [
        ({"content": "我的爱好是钢琴。"}, {}),
        ({"role": "assistant"}, {}),
        ({"ts": "2024-10-26T21:27:00+08:00"}, {}),
        ({}, {"session_id": "other"}),
        ({}, {"user_id": "u2"}),
    ],
    ids=["content", "role", "ts", "session", "user"],
)
def test_default_turn_id_differs_when_an_input_differs(
    change: dict[str, Any], kw: dict[str, Any]
) -> None:
    """Each of user, session, ts, role and content goes into the id."""
    ts = "2024-10-26T21:26:00+08:00"
    base = run([turn(ts=ts)], session_id="s")[0].turn_id
    args: dict[str, Any] = {"session_id": "s", **kw}
    other = run([turn(**{"ts": ts, **change})], **args)[0].turn_id
    assert other != base


def test_nothing_is_returned_for_a_partially_bad_call() -> None:
    """Validation is all-or-nothing: the error surfaces before any turn is produced."""
    with pytest.raises(InvalidInput):
        run([turn(), turn(content=""), turn()])


# -- corner cases (issue 11, item 10) ---------------------------------------------------------


class NoOffset(tzinfo):
    """A tzinfo whose utcoffset() is None: aware in form, naive in fact."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return "none"


class BrokenZone(NoOffset):
    """A tzinfo whose utcoffset() raises."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        raise RuntimeError("broken zone")


@pytest.mark.parametrize("content", ["\x00I play the guitar", "guitar\x00", "吉他\x00吉他"])
def test_nul_in_content_is_refused(content: str) -> None:
    """The embedder stops at NUL ("\\x00I play..." embeds like ""), so content may not hold one."""
    assert field_of_bad_turn(turn(content=content)) == "turns[1].content"


@pytest.mark.parametrize("zone", [NoOffset(), BrokenZone()], ids=["none", "raises"])
def test_tzinfo_without_a_usable_offset_is_refused(zone: tzinfo) -> None:
    """A tzinfo whose utcoffset() is None or raises names the ts field (it used to TypeError)."""
    bad = turn(ts=datetime(2024, 10, 26, 12, 0, tzinfo=zone))
    assert field_of_bad_turn(bad) == "turns[1].ts"


def test_metadata_integers_must_fit_in_64_bits() -> None:
    """2**63 - 1 is accepted; one more, or a 5,000-digit integer, names the key."""
    ok = {"big": 2**63 - 1, "small": -(2**63)}
    assert run([turn(metadata=ok)])[0].metadata == ok
    assert field_of_bad_turn(turn(metadata={"big": 2**63})) == "turns[1].metadata.big"
    huge = 10**5000  # str() of it raises ValueError (over 4,300 digits)
    assert field_of_bad_turn(turn(metadata={"huge": huge})) == "turns[1].metadata.huge"


def test_name_may_be_max_name_chars_long_not_more() -> None:
    """The speaker name is bounded by limits.max_name_chars (room is left for it in the store)."""
    limits = LimitSettings(max_name_chars=5)
    assert run([turn(name="abcde")], limits=limits)[0].name == "abcde"
    assert field_of_bad_turn(turn(name="abcdef"), limits=limits) == "turns[1].name"


# -- retrieve parameters (issue 11, item 9) ---------------------------------------------------

RETRIEVAL = RetrievalSettings(max_query_chars=50)


def params(**changes: Any) -> RetrieveParams:
    """Validate a retrieve call: a good one, with some parameters replaced."""
    args: dict[str, Any] = {
        "query": "你知道我的乐器爱好是什么?",
        "top_k": None,
        "kinds": None,
        "time_range": None,
        "now": None,
        "include_pending": False,
        "rerank": None,
    }
    args.update(changes)
    return validate_retrieve(**args, settings=RETRIEVAL, tz=TZ)


START = datetime(2024, 10, 1, tzinfo=UTC)
END = datetime(2024, 10, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"query": None}, "query"),
        ({"query": 42}, "query"),
        ({"query": b"guitar"}, "query"),
        ({"query": ["guitar"]}, "query"),
        ({"query": ""}, "query"),
        ({"query": "  \n"}, "query"),
        ({"query": "\ud800guitar"}, "query"),
        ({"query": "gui\x00tar"}, "query"),
        ({"query": "x" * 51}, "query"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 1001}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_k": "5"}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"kinds": "rawx"}, "kinds"),
        ({"kinds": ["raw", "bogus"]}, "kinds[1]"),
        ({"kinds": []}, "kinds"),
        ({"kinds": 5}, "kinds"),
        ({"kinds": b"raw"}, "kinds"),
        ({"time_range": (END, START)}, "time_range"),
        ({"time_range": (START, START)}, "time_range"),
        ({"time_range": (START,)}, "time_range"),
        ({"time_range": "2024-10"}, "time_range"),
        ({"time_range": ("2024-10-01", None)}, "time_range[0]"),
        ({"time_range": (None, datetime(2024, 1, 1, tzinfo=NoOffset()))}, "time_range[1]"),
        ({"now": "2024-10-26"}, "now"),
        ({"now": datetime(2024, 10, 26, tzinfo=BrokenZone())}, "now"),
        ({"include_pending": "yes"}, "include_pending"),
        ({"include_pending": None}, "include_pending"),
        ({"include_pending": 1}, "include_pending"),
        ({"rerank": "no"}, "rerank"),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else str(v),
)
def test_bad_retrieve_parameter_is_refused_by_name(change: dict[str, Any], field: str) -> None:
    """Every bad retrieve parameter raises InvalidInput naming it (not a TypeError deep inside)."""
    assert refused(lambda: params(**change)).field == field


def test_good_retrieve_parameters_are_normalised() -> None:
    """One kind string is a list of one; top_k None is the default; naive times take the tz."""
    p = params(kinds="raw", top_k=None, time_range=(datetime(2024, 10, 1), None))
    assert p.kinds == (MemoryKind.RAW,)
    assert p.top_k == RETRIEVAL.top_k
    assert p.time_range == (datetime(2024, 10, 1, tzinfo=TZ), None)
    both = params(kinds=[MemoryKind.RAW, "insight", "raw"], top_k=1000, rerank=True)
    assert both.kinds == (MemoryKind.RAW, MemoryKind.INSIGHT)
    assert (both.top_k, both.rerank, both.include_pending) == (1000, True, False)
    assert params(query="x" * 50).query == "x" * 50
    assert params(time_range=(None, None)).time_range == (None, None)
