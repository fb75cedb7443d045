"""Word tables and number parsing for :mod:`memlane.text.timeparse` (Chinese and English).

The two modules are joined by typed keys, not strings: each pattern of :data:`PATTERNS` is
named by a :class:`Rule`, which ``timeparse`` maps to its resolver, and calendar units are
:class:`Unit` members everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from enum import StrEnum
from typing import Final

from memlane.models import TimeGranularity


class Unit(StrEnum):
    """A calendar unit a time expression counts in (the value is its English word)."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class Rule(StrEnum):
    """The name of one pattern of :data:`PATTERNS`; ``timeparse`` resolves each by its rule."""

    CN_DAY = "cn_day"
    CN_YEAR_WORD = "cn_year_word"
    CN_WEEK = "cn_week"
    CN_BARE_WEEKDAY = "cn_bare_weekday"
    CN_MONTH_REL = "cn_month_rel"
    CN_AGO = "cn_ago"
    CN_FEW_DAYS = "cn_few_days"
    CN_WINDOW = "cn_window"
    CN_DATE = "cn_date"
    CN_YEAR = "cn_year"
    EN_DAY = "en_day"
    EN_CALENDAR = "en_calendar"
    EN_BEFORE_LAST = "en_before_last"
    EN_WEEKDAY = "en_weekday"
    EN_WEEKEND = "en_weekend"
    EN_AGO = "en_ago"
    EN_PAST = "en_past"
    EN_LAST_N = "en_last_n"
    EN_IN_THE_LAST = "en_in_the_last"
    EN_MONTH = "en_month"
    EN_MONTH_DAY = "en_month_day"
    EN_DAY_MONTH = "en_day_month"
    NUMERIC_DATE = "numeric_date"
    EN_YEAR = "en_year"


CN_DIGITS: Final[dict[str, int]] = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3,
    "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
CN_MULTIPLIERS: Final[dict[str, int]] = {"十": 10, "百": 100}
CN_WEEKDAYS: Final[dict[str, int]] = {
    "一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6,
}  # fmt: skip
CN_DAY_WORDS: Final[dict[str, int]] = {
    "大前天": -3, "前天": -2, "昨天": -1, "昨日": -1, "昨晚": -1, "昨夜": -1, "昨儿个": -1,
    "昨儿": -1, "今天": 0, "今日": 0, "今晚": 0, "今早": 0, "今儿个": 0, "今儿": 0,
    "明天": 1, "明日": 1, "明晚": 1, "明早": 1, "后天": 2, "大后天": 3,
}  # fmt: skip
CN_YEAR_WORDS: Final[dict[str, int]] = {
    "大前年": -3, "前年": -2, "去年": -1, "今年": 0, "明年": 1, "后年": 2,
}  # fmt: skip
CN_PREFIXES: Final[dict[str, int]] = {"上上": -2, "上": -1, "这": 0, "本": 0, "下": 1, "下下": 2}
CN_UNITS: Final[dict[str, Unit]] = {
    "天": Unit.DAY, "日": Unit.DAY, "周": Unit.WEEK, "週": Unit.WEEK, "星期": Unit.WEEK,
    "礼拜": Unit.WEEK, "月": Unit.MONTH, "年": Unit.YEAR, "小时": Unit.HOUR, "钟头": Unit.HOUR,
    "分钟": Unit.MINUTE,
}  # fmt: skip
# Vague counts map to an inclusive (low, high) range of units.
CN_VAGUE: Final[dict[str, tuple[int, int]]] = {
    "几": (2, 5), "数": (2, 5), "好几": (3, 7), "十几": (11, 19), "些": (2, 5),
}  # fmt: skip

EN_NUMBERS: Final[dict[str, int]] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "thirty": 30,
}  # fmt: skip
EN_VAGUE: Final[dict[str, tuple[int, int]]] = {
    "a couple of": (2, 3), "couple of": (2, 3), "a few": (2, 5), "few": (2, 5), "several": (3, 7),
}  # fmt: skip
EN_UNITS: Final[tuple[Unit, ...]] = tuple(Unit)  # minute, hour, day, week, month, year
EN_MONTHS: Final[dict[str, int]] = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8,
    "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
EN_WEEKDAYS: Final[dict[str, int]] = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3,
    "friday": 4, "saturday": 5, "sunday": 6,
}  # fmt: skip
EN_DAY_WORDS: Final[dict[str, int]] = {
    "the day before yesterday": -2, "the day after tomorrow": 2, "yesterday": -1,
    "last night": -1, "today": 0, "tonight": 0, "this morning": 0, "this afternoon": 0,
    "this evening": 0, "tomorrow": 1,
}  # fmt: skip
EN_PREFIXES: Final[dict[str, int]] = {
    "last": -1, "previous": -1, "the previous": -1, "this": 0, "current": 0,
    "the current": 0, "next": 1,
}  # fmt: skip

# "半年" / "half a year": half of a unit re-expressed as (smaller unit, count).
HALF_UNITS: Final[dict[Unit, tuple[Unit, int]]] = {
    Unit.YEAR: (Unit.MONTH, 6),
    Unit.MONTH: (Unit.WEEK, 2),
    Unit.HOUR: (Unit.MINUTE, 30),
}
# The granularity a range counted in a unit gets (sub-day units are minute-precise), and the
# length of the sub-day units.
GRANULARITY: Final[dict[Unit, TimeGranularity]] = {
    Unit.MINUTE: TimeGranularity.MINUTE,
    Unit.HOUR: TimeGranularity.MINUTE,
    Unit.DAY: TimeGranularity.DAY,
    Unit.WEEK: TimeGranularity.WEEK,
    Unit.MONTH: TimeGranularity.MONTH,
    Unit.YEAR: TimeGranularity.YEAR,
}
SUB_DAY: Final[dict[Unit, timedelta]] = {
    Unit.HOUR: timedelta(hours=1),
    Unit.MINUTE: timedelta(minutes=1),
}
HALF_WORDS: Final[frozenset[str]] = frozenset({"半", "half a", "half an"})


def alternation(words: Iterable[str]) -> str:
    """Regex alternation of `words`, longest first, with spaces matching any whitespace."""
    ordered = sorted(words, key=len, reverse=True)
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ordered)


def normalize(text: str) -> str:
    """Lower-case `text` and collapse runs of whitespace to one space."""
    return " ".join(text.lower().split())


def cn_int(text: str) -> int | None:
    """Parse Arabic digits or a Chinese numeral such as 二十三 / 一百零五; None if malformed."""
    if text.isdigit():
        return int(text)
    total, pending = 0, None
    for ch in text:
        if ch in CN_DIGITS:
            if pending:  # two significant digits in a row, e.g. 一一
                return None
            pending = CN_DIGITS[ch]
        elif ch in CN_MULTIPLIERS:
            total += (1 if pending is None else pending) * CN_MULTIPLIERS[ch]
            pending = None
        else:
            return None
    return total + (pending or 0)


def cn_year(text: str) -> int:
    """Parse a 4-digit year written in Arabic digits or digit-by-digit Chinese (二〇二三)."""
    if text.isdigit():
        return int(text)
    return int("".join(str(CN_DIGITS[ch]) for ch in text))


def parse_count(token: str) -> tuple[int, int] | None:
    """Count word → inclusive (low, high); exact numbers give low == high."""
    key = normalize(token)
    vague = CN_VAGUE.get(key) or EN_VAGUE.get(key)
    if vague is not None:
        return vague
    value = EN_NUMBERS.get(key)
    if value is None:
        value = cn_int(key)
    return None if value is None else (value, value)


# ---------------------------------------------------------------------------- regex sources
# Compiled (case-insensitively) by memlane.text.timeparse. Each pattern comes with trigger
# substrings: the pattern can only match if one of them occurs in the lower-cased query,
# which lets the parser skip most patterns cheaply.

_B = r"(?<![A-Za-z0-9_])"  # English word start (also works next to CJK text)
_E = r"(?![A-Za-z0-9_]|\.[A-Za-z0-9])"  # English word end; rejects "monday.com"
_CN_NUM = r"\d{1,4}|[零〇一二两三四五六七八九十百]{1,5}"
_CN_COUNT = rf"好几|十几|几|数|半|{_CN_NUM}"
_CN_UNIT = r"小时|钟头|分钟|天|日|周|週|星期|礼拜|月|年"
_CN_MONTH = r"\d{1,2}|十[一二]?|[一二三四五六七八九]"
_CN_DAY = r"\d{1,2}|[一二三]?十[一二三四五六七八九]?|[一二三四五六七八九]"
_CN_YEAR = r"\d{4}|[〇零一二三四五六七八九]{4}"
_CN_NOT_AFTER = r"以之从提目先事当眼然最落聪证发透声阐注标鲜黎失"  # 以前天天, 聪明天才 ...
_CN_PREFIX = r"(?<![马晚早])(?P<pre>上上|上|这|本|下下|下)\s*个?\s*"
_CN_WEEK = ("周", "週", "星期", "礼拜")
_EN_COUNT = rf"{alternation([*EN_VAGUE, *EN_NUMBERS, 'half a', 'half an'])}|\d{{1,4}}"
_EN_UNIT = rf"(?P<u>{'|'.join(EN_UNITS)})s?"
_MAY_VERB = r"(?!\s+(?:be|have|not|also|never|still|well)(?![a-z]))"
_EN_MONTH = alternation(EN_MONTHS).replace("may", "may" + _MAY_VERB, 1)
_EN_MONTH_PRE = (
    r"in|during|since|last|this|next|early|late|mid|(?:end|beginning|start|middle|rest)\s+of"
)
_EN_WEEKDAY = alternation(EN_WEEKDAYS)
_MONTH_KEYS = (*(k for k in EN_MONTHS if len(k) == 3), "may")
_DIGITS = tuple("0123456789")

# rule -> (regex source, trigger substrings); dict order breaks ties between equal-length hits.
PATTERNS: Final[dict[Rule, tuple[str, tuple[str, ...]]]] = {
    Rule.CN_DAY: (rf"(?<![{_CN_NOT_AFTER}])(?:{alternation(CN_DAY_WORDS)})",
                  ("天", "日", "晚", "夜", "儿", "早")),
    Rule.CN_YEAR_WORD: (rf"(?<![{_CN_NOT_AFTER}])(?:{alternation(CN_YEAR_WORDS)})(?![轻纪龄级代])",
                        ("年",)),
    Rule.CN_WEEK: (rf"{_CN_PREFIX}(?:周|週|星期|礼拜)"
                   r"(?:(?P<d>[一二三四五六日天末])|(?![围边到全期岁年刊报长游转]))", _CN_WEEK),
    Rule.CN_BARE_WEEKDAY: (r"(?<![\d零〇一二两三四五六七八九十几每个上下这本])(?:周|週|星期|礼拜)"
                           r"(?P<d>[一二三四五六日天末])", _CN_WEEK),
    Rule.CN_MONTH_REL: (rf"{_CN_PREFIX}月(?![球亮光台饼色食嫂老])", ("月",)),
    Rule.CN_AGO: (rf"(?P<n>{_CN_COUNT})\s*多?\s*个?\s*多?\s*(?P<u>{_CN_UNIT})\s*多?\s*[之以]?前",
                  ("前",)),
    Rule.CN_FEW_DAYS: (r"(?<![提之以从目先事当眼跟面向往])前(?P<n>几|两|些)天", ("前",)),
    Rule.CN_WINDOW: (rf"(?<![将接附])(?P<pre>最近|近|过去|这)\s*的?\s*(?P<n>{_CN_COUNT})\s*多?"
                     rf"\s*个?\s*(?P<u>{_CN_UNIT})(?:以来|之内|内|里|中)?", ("近", "过去", "这")),
    Rule.CN_DATE: (rf"(?:(?<!\d)(?P<y>{_CN_YEAR})\s*年\s*"
                   rf"|(?P<yr>{alternation(CN_YEAR_WORDS)})\s*的?\s*)?"
                   rf"(?<![\d零〇一二两三四五六七八九十百几个每第])(?P<m>{_CN_MONTH})\s*月份?"
                   rf"(?:\s*(?P<d>{_CN_DAY})\s*[日号號])?", ("月",)),
    Rule.CN_YEAR: (rf"(?<!\d)(?P<y>{_CN_YEAR})\s*年(?![代纪级])", ("年",)),
    Rule.EN_DAY: (rf"{_B}(?:{alternation(EN_DAY_WORDS)}){_E}",
                  ("yesterday", "today", "tonight", "tomorrow", "night", "morning", "afternoon",
                  "evening")),
    Rule.EN_CALENDAR: (rf"{_B}(?P<pre>earlier\s+this|{alternation(EN_PREFIXES)})\s+"
                       rf"(?P<u>week|month|year){_E}", ("week", "month", "year")),
    Rule.EN_BEFORE_LAST: (rf"{_B}the\s+(?P<u>week|month|year)\s+(?P<pre>before\s+last){_E}",
                          ("before",)),
    Rule.EN_WEEKDAY: (rf"{_B}(?P<pre>last|this\s+past|past|this\s+coming|this|next|on|since)\s+"
                      rf"(?P<wd>{_EN_WEEKDAY}){_E}", ("day",)),
    Rule.EN_WEEKEND: (rf"{_B}(?P<pre>last|this\s+past|past|this\s+coming|this|next"
                      rf"|(?:on|over|at|during)\s+the)\s+weekend{_E}", ("weekend",)),
    Rule.EN_AGO: (rf"{_B}(?P<n>{_EN_COUNT})\s+{_EN_UNIT}\s+ago{_E}", ("ago",)),
    Rule.EN_PAST: (rf"{_B}(?:the\s+)?past\s+(?:(?P<n>{_EN_COUNT})\s+)?{_EN_UNIT}{_E}", ("past",)),
    Rule.EN_LAST_N: (rf"{_B}(?:the\s+)?last\s+(?P<n>{_EN_COUNT})\s+{_EN_UNIT}{_E}", ("last",)),
    Rule.EN_IN_THE_LAST: (rf"{_B}(?:in|over|during|within)\s+the\s+last\s+(?P<n>){_EN_UNIT}{_E}",
                          ("last",)),
    Rule.EN_MONTH: (rf"{_B}(?:(?P<pre>{_EN_MONTH_PRE})[\s-]+)?(?P<mon>{_EN_MONTH})(?!['’]){_E}"
                    rf"(?:(?:,\s*|\s+of\s+|\s+)(?P<y>\d{{4}})(?!\d))?", _MONTH_KEYS),
    Rule.EN_MONTH_DAY: (rf"{_B}(?:(?:on|in|since|last|this)\s+)?(?P<mon>{_EN_MONTH})\.?\s+"
                        rf"(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<y>\d{{4}}))?"
                        rf"(?![\d:]){_E}", _MONTH_KEYS),
    Rule.EN_DAY_MONTH: (rf"{_B}(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?"
                        rf"(?P<mon>{_EN_MONTH})(?!['’]){_E}(?:,?\s+(?P<y>\d{{4}})(?!\d))?",
                        _MONTH_KEYS),
    Rule.NUMERIC_DATE: (r"(?<![\d/.-])(?P<y>\d{4})(?P<sep>[-/.])(?P<m>\d{1,2})"
                        r"(?:(?P=sep)(?P<d>\d{1,2}))?(?!\d|[-/.]\d)", ("-", "/", ".")),
    Rule.EN_YEAR: (rf"{_B}(?P<pre>in|during|since|of|(?:the\s+)?year)\s+(?P<y>\d{{4}})"
                   rf"(?![\d]|[-/.]\d){_E}", _DIGITS),
}  # fmt: skip

# Recurring or non-temporal phrases: any candidate overlapping one of these is dropped.
BLOCKERS: Final[tuple[str, tuple[str, ...]]] = (
    r"每(?:一个|一|个)?\s*(?:周|週|星期|礼拜|天|日|晚|早|个?月|年)[〇零一二两三四五六七八九十日天末号份月\d]*"
    r"|隔(?:周|天|日|月)|五月天(?!气)|周末(?:愉快|快乐)|今日头条|明日之后"
    rf"|{_B}(?:every|each)\s+(?:other\s+|single\s+)?(?:day|night|morning|evening|week|weekend"
    rf"|month|year|{_EN_MONTH}|{_EN_WEEKDAY})s?{_E}(?:\s+(?:in|on|during)\s+[a-z]+)?",
    ("每", "隔", "五月天", "周末", "今日头条", "明日之后", "every", "each"),
)  # fmt: skip
