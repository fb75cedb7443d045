"""Table-driven tests for memlane.text.timeparse (Chinese and English time expressions)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memlane.text.timeparse import Granularity, TimeRange, find_time_ranges, parse_time_range

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Saturday 2024-10-26 21:26; the current week is Mon 10-21 .. Sun 10-27.
NOW = datetime(2024, 10, 26, 21, 26, tzinfo=SHANGHAI)
N = "2024-10-26 21:26"  # windows ("最近三天", "past week") end at now

Y, M, W, D, MIN = (
    Granularity.YEAR,
    Granularity.MONTH,
    Granularity.WEEK,
    Granularity.DAY,
    Granularity.MINUTE,
)

CHINESE_CASES: list[tuple[str, str, str, Granularity]] = [
    ("你知道我上个月去了哪里?", "2024-09-01", "2024-10-01", M),
    ("今天", "2024-10-26", "2024-10-27", D),
    ("昨天", "2024-10-25", "2024-10-26", D),
    ("前天", "2024-10-24", "2024-10-25", D),
    ("大前天", "2024-10-23", "2024-10-24", D),
    ("明天", "2024-10-27", "2024-10-28", D),
    ("昨晚", "2024-10-25", "2024-10-26", D),
    ("昨天晚上我吃了什么", "2024-10-25", "2024-10-26", D),
    ("上周", "2024-10-14", "2024-10-21", W),
    ("上星期", "2024-10-14", "2024-10-21", W),
    ("上礼拜", "2024-10-14", "2024-10-21", W),
    ("这周", "2024-10-21", "2024-10-28", W),
    ("本周", "2024-10-21", "2024-10-28", W),
    ("上周一", "2024-10-14", "2024-10-15", D),
    ("上礼拜三", "2024-10-16", "2024-10-17", D),
    ("上周三下午开会说了什么", "2024-10-16", "2024-10-17", D),
    ("上周日", "2024-10-20", "2024-10-21", D),
    ("上周天", "2024-10-20", "2024-10-21", D),
    ("上星期日", "2024-10-20", "2024-10-21", D),
    ("周一", "2024-10-21", "2024-10-22", D),
    ("星期六", "2024-10-26", "2024-10-27", D),
    ("星期天", "2024-10-20", "2024-10-21", D),
    ("礼拜五", "2024-10-25", "2024-10-26", D),
    ("上周末", "2024-10-19", "2024-10-21", D),
    ("周末去哪了", "2024-10-26", "2024-10-28", D),
    ("上个月", "2024-09-01", "2024-10-01", M),
    ("这个月", "2024-10-01", "2024-11-01", M),
    ("本月", "2024-10-01", "2024-11-01", M),
    ("上上个月", "2024-08-01", "2024-09-01", M),
    ("去年", "2023-01-01", "2024-01-01", Y),
    ("前年", "2022-01-01", "2023-01-01", Y),
    ("今年", "2024-01-01", "2025-01-01", Y),
    ("去年五月", "2023-05-01", "2023-06-01", M),
    ("去年5月", "2023-05-01", "2023-06-01", M),
    ("明年三月", "2025-03-01", "2025-04-01", M),
    ("五月份", "2024-05-01", "2024-06-01", M),
    ("5月份", "2024-05-01", "2024-06-01", M),
    ("五月天气很好", "2024-05-01", "2024-06-01", M),
    ("十月", "2024-10-01", "2024-11-01", M),
    ("十二月", "2023-12-01", "2024-01-01", M),
    ("三天前", "2024-10-23", "2024-10-24", D),
    ("3天前", "2024-10-23", "2024-10-24", D),
    ("两周前", "2024-10-07", "2024-10-14", W),
    ("两个星期前", "2024-10-07", "2024-10-14", W),
    ("两个月前", "2024-08-01", "2024-09-01", M),
    ("一年前", "2023-01-01", "2024-01-01", Y),
    ("半年前", "2024-04-01", "2024-05-01", M),
    ("两年多前", "2021-01-01", "2023-01-01", Y),
    ("几天前", "2024-10-21", "2024-10-25", D),
    ("前几天", "2024-10-21", "2024-10-25", D),
    ("三小时前", "2024-10-26 17:56", "2024-10-26 18:56", MIN),
    ("最近几天", "2024-10-21", N, D),
    ("最近一周", "2024-10-19", N, W),
    ("近三天", "2024-10-23", N, D),
    ("过去一周", "2024-10-19", N, W),
    ("这两天", "2024-10-24", N, D),
    ("最近半年", "2024-04-26", N, M),
    ("过去24小时", "2024-10-25 21:26", N, MIN),
    ("2023年5月", "2023-05-01", "2023-06-01", M),
    ("2023年5月3日", "2023-05-03", "2023-05-04", D),
    ("去年的五月三号", "2023-05-03", "2023-05-04", D),
    ("5月3日", "2024-05-03", "2024-05-04", D),
    ("5月3号", "2024-05-03", "2024-05-04", D),
    ("12月25日", "2023-12-25", "2023-12-26", D),
    ("2023年", "2023-01-01", "2024-01-01", Y),
    ("二〇二三年", "2023-01-01", "2024-01-01", Y),
]

ENGLISH_CASES: list[tuple[str, str, str, Granularity]] = [
    ("what did I do last Monday?", "2024-10-21", "2024-10-22", D),
    ("today", "2024-10-26", "2024-10-27", D),
    ("yesterday", "2024-10-25", "2024-10-26", D),
    ("the day before yesterday", "2024-10-24", "2024-10-25", D),
    ("tomorrow", "2024-10-27", "2024-10-28", D),
    ("last night", "2024-10-25", "2024-10-26", D),
    ("this morning", "2024-10-26", "2024-10-27", D),
    ("last week", "2024-10-14", "2024-10-21", W),
    ("this week", "2024-10-21", "2024-10-28", W),
    ("the week before last", "2024-10-07", "2024-10-14", W),
    ("last month", "2024-09-01", "2024-10-01", M),
    ("LAST MONTH", "2024-09-01", "2024-10-01", M),
    ("this month", "2024-10-01", "2024-11-01", M),
    ("last year", "2023-01-01", "2024-01-01", Y),
    ("this year", "2024-01-01", "2025-01-01", Y),
    ("last Friday", "2024-10-25", "2024-10-26", D),
    ("last Saturday", "2024-10-19", "2024-10-20", D),
    ("last Sunday", "2024-10-20", "2024-10-21", D),
    ("last Tuesday", "2024-10-22", "2024-10-23", D),
    ("on Monday", "2024-10-21", "2024-10-22", D),
    ("on Saturday", "2024-10-26", "2024-10-27", D),
    ("next Monday", "2024-10-28", "2024-10-29", D),
    ("since Monday", "2024-10-21", N, D),
    ("last weekend", "2024-10-19", "2024-10-21", D),
    ("this weekend", "2024-10-26", "2024-10-28", D),
    ("what did we do over the weekend", "2024-10-26", "2024-10-28", D),
    ("two days ago", "2024-10-24", "2024-10-25", D),
    ("2 days ago", "2024-10-24", "2024-10-25", D),
    ("a week ago", "2024-10-14", "2024-10-21", W),
    ("three weeks ago", "2024-09-30", "2024-10-07", W),
    ("a month ago", "2024-09-01", "2024-10-01", M),
    ("a year ago", "2023-01-01", "2024-01-01", Y),
    ("half a year ago", "2024-04-01", "2024-05-01", M),
    ("a couple of days ago", "2024-10-23", "2024-10-25", D),
    ("few days ago", "2024-10-21", "2024-10-25", D),
    ("an hour ago", "2024-10-26 19:56", "2024-10-26 20:56", MIN),
    ("past week", "2024-10-19", N, W),
    ("past 3 days", "2024-10-23", N, D),
    ("last 7 days", "2024-10-19", N, D),
    ("in the last week", "2024-10-19", N, W),
    ("the last few days", "2024-10-21", N, D),
    ("earlier this month", "2024-10-01", N, M),
    ("in May 2023", "2023-05-01", "2023-06-01", M),
    ("May 2023", "2023-05-01", "2023-06-01", M),
    ("in May", "2024-05-01", "2024-06-01", M),
    ("In May I went to Paris", "2024-05-01", "2024-06-01", M),
    ("last May", "2024-05-01", "2024-06-01", M),
    ("since May", "2024-05-01", N, M),
    ("in December", "2023-12-01", "2024-01-01", M),
    ("in October", "2024-10-01", "2024-11-01", M),
    ("at the end of March", "2024-03-01", "2024-04-01", M),
    ("May 3rd", "2024-05-03", "2024-05-04", D),
    ("May 3, 2023", "2023-05-03", "2023-05-04", D),
    ("3 May 2023", "2023-05-03", "2023-05-04", D),
    ("the 3rd of May", "2024-05-03", "2024-05-04", D),
    ("Dec 25", "2023-12-25", "2023-12-26", D),
    ("2023-05-03", "2023-05-03", "2023-05-04", D),
    ("2023/05", "2023-05-01", "2023-06-01", M),
    ("in 2023", "2023-01-01", "2024-01-01", Y),
    ("since 2020", "2020-01-01", N, Y),
    ("我last week去了哪", "2024-10-14", "2024-10-21", W),
]

CHINESE_NONE = [
    "五月天的演唱会",  # a band
    "五个人",
    "我一天吃三顿饭",  # duration, no 前
    "每周一开会",  # recurring
    "每年五月一日放假",  # recurring
    "周末愉快",  # greeting
    "最近怎么样",  # vague
    "这周围有什么好吃的",  # 周围 = surroundings
    "这个月饼好吃",  # 月饼 = mooncake
    "我想上月球",
    "将近三天没睡",  # duration
    "今日头条说的",  # an app
    "一周一次",  # frequency, not 周一
    "以前年轻的时候",  # 以前 + 年轻, not 前年
    "以前天天去",  # 以前 + 天天, not 前天
    "提前几天订票",  # 提前 = in advance
    "13月",  # no such month
    "2月30日",  # no such date
]

ENGLISH_NONE = [
    "I like May",
    "May I ask you something?",
    "I may go",
    "things in may be wrong",
    "the March of time",
    "we march on",
    "Will is my friend",
    "Sunday school is fun",  # bare weekdays need on/last/this/next
    "3 apples",
    "every Monday",
    "on Mondays",
    "every year in May",
    "I checked monday.com",
    "recently",
    "the other day",
    "in 3000",
    "mayor of London",
    "Jan's house",
]


def _at(text: str, tz: ZoneInfo = SHANGHAI) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def _check(result: TimeRange | None, start: str, end: str, granularity: Granularity) -> None:
    assert result is not None
    assert (result.start, result.end, result.granularity) == (_at(start), _at(end), granularity)


@pytest.mark.parametrize(("query", "start", "end", "granularity"), CHINESE_CASES, ids=str)
def test_resolves_chinese_expressions(
    query: str, start: str, end: str, granularity: Granularity
) -> None:
    """Chinese expressions resolve to the expected [start, end) and granularity."""
    _check(parse_time_range(query, NOW), start, end, granularity)


@pytest.mark.parametrize(("query", "start", "end", "granularity"), ENGLISH_CASES, ids=str)
def test_resolves_english_expressions(
    query: str, start: str, end: str, granularity: Granularity
) -> None:
    """English expressions resolve (case-insensitively) to the expected range."""
    _check(parse_time_range(query, NOW), start, end, granularity)


@pytest.mark.parametrize("query", CHINESE_NONE + ENGLISH_NONE)
def test_non_temporal_or_recurring_text_yields_none(query: str) -> None:
    """Names, verbs, durations, recurring and vague phrases give no range."""
    assert parse_time_range(query, NOW) is None
    assert find_time_ranges(query, NOW) == []


OTHER_NOW_CASES = [
    ("五月", "2024-03-15 12:00", "2023-05-01", "2023-06-01", M),
    ("in May", "2024-03-15 12:00", "2023-05-01", "2023-06-01", M),
    ("last May", "2024-05-15 12:00", "2023-05-01", "2023-06-01", M),
    ("周一", "2024-10-21 10:00", "2024-10-21", "2024-10-22", D),
    ("last Monday", "2024-10-21 10:00", "2024-10-14", "2024-10-15", D),
    ("上周末", "2024-10-21 10:00", "2024-10-19", "2024-10-21", D),
    ("周末", "2024-10-23 10:00", "2024-10-19", "2024-10-21", D),
    ("上个月", "2024-01-15 10:00", "2023-12-01", "2024-01-01", M),
    ("一个月前", "2024-03-31 10:00", "2024-02-01", "2024-03-01", M),
    ("2月29日", "2025-03-01 10:00", "2024-02-29", "2024-03-01", D),
    ("去年", "2024-01-01 00:00", "2023-01-01", "2024-01-01", Y),
]


@pytest.mark.parametrize(("query", "now", "start", "end", "granularity"), OTHER_NOW_CASES)
def test_resolution_depends_on_now(
    query: str, now: str, start: str, end: str, granularity: Granularity
) -> None:
    """Month/weekday ambiguity resolves to the most recent past one relative to `now`."""
    _check(parse_time_range(query, _at(now)), start, end, granularity)


def test_reports_matched_text_and_span() -> None:
    """`text` is the expression as written and `span` its offsets in the query."""
    query = "你知道我上个月去了哪里?"
    result = parse_time_range(query, NOW)
    assert result is not None
    assert (result.text, result.span) == ("上个月", (4, 7))
    assert query[slice(*result.span)] == result.text


def test_overlapping_candidates_keep_the_most_specific() -> None:
    """去年五月 wins over 去年; the day before yesterday wins over yesterday."""
    assert [r.text for r in find_time_ranges("去年五月去了北京", NOW)] == ["去年五月"]
    assert [r.text for r in find_time_ranges("the day before yesterday", NOW)] == [
        "the day before yesterday"
    ]


def test_find_returns_all_expressions_in_order() -> None:
    """find_time_ranges returns every non-overlapping expression, left to right."""
    ranges = find_time_ranges("上周一和昨天, and also last month", NOW)
    assert [r.text for r in ranges] == ["上周一", "昨天", "last month"]
    assert parse_time_range("上周一和昨天", NOW) == ranges[0]


def test_naive_now_is_rejected() -> None:
    """A naive `now` raises ValueError naming `now`."""
    with pytest.raises(ValueError, match="now"):
        parse_time_range("昨天", datetime(2024, 10, 26, 21, 26))


def test_results_carry_the_timezone_of_now() -> None:
    """Calendar days are those of now's zone, and results use now's tzinfo."""
    new_york = ZoneInfo("America/New_York")
    now_ny = NOW.astimezone(new_york)  # the same instant: 2024-10-26 09:26 in New York
    result = parse_time_range("today", now_ny)
    assert result is not None
    assert result.start.tzinfo is new_york and result.end.tzinfo is new_york
    assert result.start == _at("2024-10-26", new_york)
    early = parse_time_range("今天", _at("2024-10-26 02:00"))  # 10-25 14:00 in New York
    late = parse_time_range("今天", _at("2024-10-26 02:00").astimezone(new_york))
    assert early is not None and late is not None
    assert (early.start.day, late.start.day) == (26, 25)


def test_default_now_is_the_local_clock() -> None:
    """Without `now`, ranges are resolved against the aware local clock."""
    result = parse_time_range("today")
    assert result is not None and result.start.tzinfo is not None
    assert result.start <= datetime.now().astimezone() + timedelta(seconds=1)


FRAGMENTS = [q for q, *_ in CHINESE_CASES + ENGLISH_CASES] + CHINESE_NONE + ENGLISH_NONE
# Expressions that may legitimately lie in the future: explicit future words, "this"/本/这/今
# (e.g. 这周日 on a Saturday), and explicit years.
FUTURE_OK = re.compile(
    r"明|后|下|next|tomorrow|this|coming|今|本|这|\d{4}|[〇零一二三四五六七八九]{4}", re.IGNORECASE
)
ZONES = [SHANGHAI, ZoneInfo("UTC"), ZoneInfo("America/New_York"), ZoneInfo("Pacific/Kiritimati")]
queries = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=5).map(" ".join),
)
nows = st.datetimes(
    min_value=datetime(1950, 1, 1),
    max_value=datetime(2090, 12, 31),
    timezones=st.sampled_from(ZONES),
)


@settings(max_examples=400, deadline=None)
@given(query=queries, now=nows)
def test_arbitrary_text_never_raises_and_ranges_are_sane(query: str, now: datetime) -> None:
    """Any text parses without error; ranges are non-empty and in now's zone; unless the
    expression is explicitly future, a range starts by now and either ends by now + 1 day
    or is the current period (contains now, e.g. 十二月 on 1 December)."""
    for result in find_time_ranges(query, now):
        assert result.start < result.end
        assert result.start.tzinfo is now.tzinfo
        assert query[slice(*result.span)] == result.text
        if not FUTURE_OK.search(result.text):
            assert result.start <= now
            assert result.end <= now + timedelta(days=1) or now < result.end


def test_every_rule_has_one_pattern_and_one_resolver() -> None:
    """Patterns and resolvers are joined by the Rule enum: every rule has both, nothing else."""
    from memlane.text import timeparse, timewords

    assert set(timewords.PATTERNS) == set(timewords.Rule)
    assert set(timeparse._RESOLVERS) == set(timewords.Rule)
