"""Resolve Chinese and English time expressions in a query to half-open datetime ranges.

``parse_time_range("你知道我上个月去了哪里?", now)`` gives last calendar month as
``[start, end)`` in ``now``'s timezone. Pure functions; the clock is read only when
``now`` is None. Weeks start on Monday.

Resolution rules (documented choices):

* Calendar words (上周, last month, 去年) give the whole calendar period.
* "N units ago" (三天前, two weeks ago) give the calendar period containing now - N units;
  vague counts (几天前, a few days ago) span several such periods. Hours/minutes give a
  one-unit window centred on the instant.
* Windows (最近三天, past week, last 7 days) run from midnight N units ago up to ``now``.
* A month or date without a year (五月, in May, 5月3日) is the most recent one that is not
  in the future; "last May" is the most recent one strictly before the current month.
* A bare weekday (周一, on Monday) is the most recent one, today included; "last Monday" is
  the most recent strictly before today; 上周一 is Monday of the previous calendar week.
* Bare 周末 / "over the weekend" is the most recent weekend (the current one on Sat/Sun);
  周末愉快 / 周末快乐 are greetings and return nothing.
* No range: vague words (recently, 最近, the other day), recurring expressions (每周一,
  every Monday, on Mondays), 五月天 (a band), English months without a date cue (I like May,
  May I ask), and bare English weekdays (Sunday school).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from memlane.models import TimeGranularity
from memlane.text import timewords as tw
from memlane.text.timewords import Rule, Unit

# The query side shares the memories' granularity enum (it includes WEEK).
Granularity = TimeGranularity


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Half-open [start, end) in the timezone of `now`."""

    start: datetime
    end: datetime
    granularity: Granularity
    text: str  # the matched expression as it appears in the query
    span: tuple[int, int]  # character offsets in the query


_Span = tuple[datetime, datetime, Granularity]
_Resolver = Callable[[re.Match[str], datetime], _Span | None]

_MIN_YEAR, _MAX_YEAR = 1900, 2199

# ---------------------------------------------------------------------------- calendar maths


def _at(d: date, tz: tzinfo | None) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def _add_months(d: date, n: int) -> date:
    years, month0 = divmod(d.month - 1 + n, 12)
    year = d.year + years
    nxt = date(year + (month0 == 11), (month0 + 1) % 12 + 1, 1)
    return date(year, month0 + 1, min(d.day, (nxt - timedelta(days=1)).day))


def _shift(d: date, unit: Unit, n: int) -> date:
    if unit is Unit.DAY:
        return d + timedelta(days=n)
    if unit is Unit.WEEK:
        return d + timedelta(weeks=n)
    return _add_months(d, n * (12 if unit is Unit.YEAR else 1))


def _period(d: date, unit: Unit) -> tuple[date, date]:
    if unit is Unit.DAY:
        return d, d + timedelta(days=1)
    if unit is Unit.WEEK:
        monday = d - timedelta(days=d.weekday())
        return monday, monday + timedelta(days=7)
    if unit is Unit.MONTH:
        first = d.replace(day=1)
        return first, _add_months(first, 1)
    return date(d.year, 1, 1), date(d.year + 1, 1, 1)


def _dates(now: datetime, a: date, b: date, unit: Unit) -> _Span:
    return _at(a, now.tzinfo), _at(b, now.tzinfo), tw.GRANULARITY[unit]


def _calendar(now: datetime, unit: Unit, offset: int) -> _Span:
    a, b = _period(_shift(now.date(), unit, offset), unit)
    return _dates(now, a, b, unit)


def _day(now: datetime, d: date) -> _Span:
    return _dates(now, d, d + timedelta(days=1), Unit.DAY)


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _ago(now: datetime, unit: Unit, low: int, high: int) -> _Span:
    if unit in tw.SUB_DAY:
        step = tw.SUB_DAY[unit]
        end = min(now - low * step + step / 2, now)
        return _minute(now - high * step - step / 2), _minute(end), Granularity.MINUTE
    first = _period(_shift(now.date(), unit, -high), unit)[0]
    last = _period(_shift(now.date(), unit, -low), unit)[1]
    return _dates(now, first, last, unit)


def _window(now: datetime, unit: Unit, n: int) -> _Span | None:
    if n < 1:
        return None
    if unit in tw.SUB_DAY:
        return _minute(now - n * tw.SUB_DAY[unit]), now, Granularity.MINUTE
    return _at(_shift(now.date(), unit, -n), now.tzinfo), now, tw.GRANULARITY[unit]


def _weekend(now: datetime, week_offset: int) -> _Span:
    monday = _period(_shift(now.date(), Unit.WEEK, week_offset), Unit.WEEK)[0]
    return _dates(now, monday + timedelta(days=5), monday + timedelta(days=7), Unit.DAY)


def _recent_weekend(now: datetime) -> _Span:
    return _weekend(now, 0 if now.weekday() >= 5 else -1)


def _week_day(now: datetime, week_offset: int, weekday: int) -> _Span:
    monday = _period(_shift(now.date(), Unit.WEEK, week_offset), Unit.WEEK)[0]
    return _day(now, monday + timedelta(days=weekday))


def _past_weekday(today: date, weekday: int, strict: bool) -> date:
    delta = (today.weekday() - weekday) % 7
    return today - timedelta(days=7 if strict and delta == 0 else delta)


def _check_year(year: int) -> int:
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise ValueError(f"year {year} out of range")
    return year


def _month_span(now: datetime, year: int, month: int) -> _Span:
    return _calendar_at(now, date(_check_year(year), month, 1), Unit.MONTH)


def _calendar_at(now: datetime, d: date, unit: Unit) -> _Span:
    a, b = _period(d, unit)
    return _dates(now, a, b, unit)


def _recent_date(today: date, month: int, day: int) -> date:
    for year in range(today.year, today.year - 9, -1):
        with suppress(ValueError):  # 2月29日 in a non-leap year: try an earlier year
            candidate = date(year, month, day)
            if candidate <= today:
                return candidate
    raise ValueError("no such date")


def _date_span(now: datetime, year: int | None, month: int, day: int | None) -> _Span:
    today = now.date()
    if day is not None:
        d = _recent_date(today, month, day) if year is None else date(_check_year(year), month, day)
        return _day(now, d)
    if year is None:
        year = today.year if month <= today.month else today.year - 1
    return _month_span(now, year, month)


def _since(now: datetime, span: _Span) -> _Span:
    return span[0], now, span[2]


def _count_unit(token: str, unit: Unit, more: bool = False) -> tuple[Unit, int, int] | None:
    if tw.normalize(token) in tw.HALF_WORDS:
        half = tw.HALF_UNITS.get(unit)
        return None if half is None else (half[0], half[1], half[1])
    count = tw.parse_count(token)
    if count is None or count[0] < 1:  # "0天前" is not a past period
        return None
    low, high = count
    return unit, low, (low + max(1, low // 2) if more else high)


# ---------------------------------------------------------------------------- resolvers


def _r_day_word(m: re.Match[str], now: datetime) -> _Span:
    key = tw.normalize(m.group(0))
    return _calendar(now, Unit.DAY, tw.CN_DAY_WORDS.get(key, tw.EN_DAY_WORDS.get(key, 0)))


def _r_cn_year_word(m: re.Match[str], now: datetime) -> _Span:
    return _calendar(now, Unit.YEAR, tw.CN_YEAR_WORDS[m.group(0)])


def _r_cn_week(m: re.Match[str], now: datetime) -> _Span:
    offset, day = tw.CN_PREFIXES[m["pre"]], m["d"]
    if day is None:
        return _calendar(now, Unit.WEEK, offset)
    if day == "末":
        return _weekend(now, offset)
    return _week_day(now, offset, tw.CN_WEEKDAYS[day])


def _r_cn_bare_weekday(m: re.Match[str], now: datetime) -> _Span:
    if m["d"] == "末":
        return _recent_weekend(now)
    return _day(now, _past_weekday(now.date(), tw.CN_WEEKDAYS[m["d"]], strict=False))


def _r_cn_month_rel(m: re.Match[str], now: datetime) -> _Span:
    return _calendar(now, Unit.MONTH, tw.CN_PREFIXES[m["pre"]])


def _r_ago(m: re.Match[str], now: datetime) -> _Span | None:
    unit = tw.CN_UNITS.get(m["u"]) or Unit(tw.normalize(m["u"]))
    parsed = _count_unit(m["n"], unit, more="多" in m.group(0))
    return None if parsed is None else _ago(now, *parsed)


def _r_cn_few_days(m: re.Match[str], now: datetime) -> _Span:
    low, high = (1, 3) if m["n"] == "两" else tw.CN_VAGUE[m["n"]]
    return _ago(now, Unit.DAY, low, high)


def _r_window(m: re.Match[str], now: datetime) -> _Span | None:
    unit = tw.CN_UNITS.get(m["u"]) or Unit(tw.normalize(m["u"]))
    parsed = _count_unit(m["n"] or "1", unit)
    if parsed is None or (m.groupdict().get("pre") == "这" and parsed[2] == 1):
        return None
    return _window(now, parsed[0], parsed[2])


def _r_cn_date(m: re.Match[str], now: datetime) -> _Span | None:
    year = tw.cn_year(m["y"]) if m["y"] else None
    if m["yr"]:
        year = now.year + tw.CN_YEAR_WORDS[m["yr"]]
    month, day = tw.cn_int(m["m"]), tw.cn_int(m["d"]) if m["d"] else None
    return None if month is None else _date_span(now, year, month, day)


def _r_cn_year(m: re.Match[str], now: datetime) -> _Span:
    return _calendar_at(now, date(_check_year(tw.cn_year(m["y"])), 1, 1), Unit.YEAR)


def _r_en_calendar(m: re.Match[str], now: datetime) -> _Span:
    pre, unit = tw.normalize(m["pre"]), Unit(tw.normalize(m["u"]))
    if pre == "earlier this":
        return _since(now, _calendar(now, unit, 0))
    return _calendar(now, unit, -2 if pre == "before last" else tw.EN_PREFIXES[pre])


def _r_en_weekday(m: re.Match[str], now: datetime) -> _Span:
    pre, weekday, today = tw.normalize(m["pre"]), tw.EN_WEEKDAYS[m["wd"].lower()], now.date()
    if pre == "this":
        return _week_day(now, 0, weekday)
    if pre in ("next", "this coming"):
        return _day(now, today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1))
    span = _day(now, _past_weekday(today, weekday, strict=pre in ("last", "past", "this past")))
    return _since(now, span) if pre == "since" else span


def _r_en_weekend(m: re.Match[str], now: datetime) -> _Span:
    pre = tw.normalize(m["pre"])
    offsets = {"this": 0, "next": 1, "this coming": 1, "last": -1, "past": -1, "this past": -1}
    return _recent_weekend(now) if pre not in offsets else _weekend(now, offsets[pre])


def _month_year(today: date, month: int, pre: str) -> int:
    if pre == "this":
        return today.year
    if pre == "last":
        return today.year if month < today.month else today.year - 1
    if pre == "next":
        return today.year if month > today.month else today.year + 1
    return today.year if month <= today.month else today.year - 1


def _r_en_month(m: re.Match[str], now: datetime) -> _Span | None:
    month, pre = tw.EN_MONTHS[m["mon"].lower()], tw.normalize(m["pre"] or "")
    if not pre and not m["y"]:
        return None
    year = int(m["y"]) if m["y"] else _month_year(now.date(), month, pre)
    span = _month_span(now, year, month)
    return _since(now, span) if pre == "since" else span


def _r_en_date(m: re.Match[str], now: datetime) -> _Span:
    year = int(m["y"]) if m["y"] else None
    return _date_span(now, year, tw.EN_MONTHS[m["mon"].lower()], int(m["d"]))


def _r_numeric_date(m: re.Match[str], now: datetime) -> _Span | None:
    if m["d"] is None and m["sep"] == ".":
        return None
    day = int(m["d"]) if m["d"] else None
    return _date_span(now, _check_year(int(m["y"])), int(m["m"]), day)


def _r_en_year(m: re.Match[str], now: datetime) -> _Span:
    span = _calendar_at(now, date(_check_year(int(m["y"])), 1, 1), Unit.YEAR)
    return _since(now, span) if m["pre"].lower() == "since" else span


# ---------------------------------------------------------------------------- patterns

_RESOLVERS: dict[Rule, _Resolver] = {
    Rule.CN_DAY: _r_day_word, Rule.CN_YEAR_WORD: _r_cn_year_word, Rule.CN_WEEK: _r_cn_week,
    Rule.CN_BARE_WEEKDAY: _r_cn_bare_weekday, Rule.CN_MONTH_REL: _r_cn_month_rel,
    Rule.CN_AGO: _r_ago, Rule.CN_FEW_DAYS: _r_cn_few_days, Rule.CN_WINDOW: _r_window,
    Rule.CN_DATE: _r_cn_date, Rule.CN_YEAR: _r_cn_year, Rule.EN_DAY: _r_day_word,
    Rule.EN_CALENDAR: _r_en_calendar, Rule.EN_BEFORE_LAST: _r_en_calendar,
    Rule.EN_WEEKDAY: _r_en_weekday, Rule.EN_WEEKEND: _r_en_weekend, Rule.EN_AGO: _r_ago,
    Rule.EN_PAST: _r_window, Rule.EN_LAST_N: _r_window, Rule.EN_IN_THE_LAST: _r_window,
    Rule.EN_MONTH: _r_en_month, Rule.EN_MONTH_DAY: _r_en_date, Rule.EN_DAY_MONTH: _r_en_date,
    Rule.NUMERIC_DATE: _r_numeric_date, Rule.EN_YEAR: _r_en_year,
}  # fmt: skip
_RULES: tuple[tuple[re.Pattern[str], tuple[str, ...], _Resolver], ...] = tuple(
    (re.compile(source, re.IGNORECASE), triggers, _RESOLVERS[name])
    for name, (source, triggers) in tw.PATTERNS.items()
)
_BLOCKERS = re.compile(tw.BLOCKERS[0], re.IGNORECASE)

# ---------------------------------------------------------------------------- public API


def _reference_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now().astimezone()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now


def _resolve(resolve: _Resolver, m: re.Match[str], now: datetime) -> _Span | None:
    try:
        return resolve(m, now)
    except (ValueError, OverflowError):  # impossible dates, years out of range
        return None


def _candidates(query: str, lowered: str, now: datetime) -> Iterator[TimeRange]:
    for pattern, triggers, resolve in _RULES:
        if not any(t in lowered for t in triggers):
            continue
        for m in pattern.finditer(query):
            span = _resolve(resolve, m, now)
            if span is not None and span[0] < span[1]:
                yield TimeRange(span[0], span[1], span[2], m.group(0), m.span())


def _overlaps(span: tuple[int, int], others: list[tuple[int, int]]) -> bool:
    return any(span[0] < b and a < span[1] for a, b in others)


def _blocked_spans(query: str, lowered: str) -> list[tuple[int, int]]:
    if not any(t in lowered for t in tw.BLOCKERS[1]):
        return []
    return [m.span() for m in _BLOCKERS.finditer(query)]


def find_time_ranges(query: str, now: datetime | None = None) -> list[TimeRange]:
    """All non-overlapping time expressions in `query`, in order of appearance.

    Where candidates overlap, the longest (most specific) one wins. `now` must be
    timezone-aware (default: the local clock); results carry `now`'s tzinfo.
    """
    ref, lowered = _reference_now(now), query.lower()
    blocked = _blocked_spans(query, lowered)
    chosen: list[TimeRange] = []
    for cand in sorted(
        _candidates(query, lowered, ref), key=lambda c: (c.span[0] - c.span[1], c.span[0])
    ):
        if not _overlaps(cand.span, blocked + [c.span for c in chosen]):
            chosen.append(cand)
    return sorted(chosen, key=lambda c: c.span[0])


def parse_time_range(query: str, now: datetime | None = None) -> TimeRange | None:
    """First (most specific if overlapping) time expression in `query`, or None."""
    ranges = find_time_ranges(query, now)
    return ranges[0] if ranges else None
