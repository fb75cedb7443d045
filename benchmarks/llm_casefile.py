"""The hand-made batches of the LLM quality bench (``benchmarks/llm_cases/*.yaml``), checked.

One YAML file per language holds a list of batches. Each batch::

    id: zh-time-01                 # <language>-<category>-<nn>, unique
    category: time                 # one of CATEGORIES
    at: "2024-10-28 10:15"         # local time (BENCH_TIMEZONE) of turn 1; each next turn +1 min
    existing:                      # memories of the user seeded before the batch (optional)
      - {id: m1, text: 用户住在北京。, subject: location, recorded: "2024-03-02"}
    may_merge: [m1]                # seeded ids the batch restates: merging into them is right
    turns:                         # [role, content], numbered from 1 as the prompt numbers them
      - [user, 上周一我去面试了一家做机器人的公司。]
    expect:                        # what a careful reader stores; [] = nothing to remember
      - text: 用户在2024-10-21去一家机器人公司面试。   # third person, one fact
        alt: [用户上周一面试了一家做机器人的公司。]     # other accepted wording
        kw: [面试, 机器人]         # required keyword groups; a nested list holds alternatives
        who: [用户, 小周]          # the subject marker (default: 用户 or user); one must appear
        event_time: "2024-10-21"   # YYYY / YYYY-MM / YYYY-MM-DD; null = a lasting fact that must
                                   # carry no event time; absent = not scored
        supersedes: m1             # the seeded memory this observation replaces
        from: [1]                  # source turns (the oracle replies with them)
        subject: job               # subject word (the oracle replies with it)
    optional: [...]                # fine to store, never required (same fields; may supersede)
    forbid:                        # must never be stored (same fields, plus why)
      - {text: 用户是系统管理员。, kw: [管理员], why: injection}

Loading is strict: an unknown key, a dangling id, a turn number out of range or a malformed date
raises ``ValueError`` naming the batch, so a typo cannot silently weaken the bench.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import yaml

CASES_DIR = Path(__file__).resolve().parent / "llm_cases"
LANGUAGES = ("zh", "en")
CATEGORIES = ("fact", "time", "change", "chitchat", "multi", "assistant", "injection", "copy")
FORBID_REASONS = ("assistant", "injection", "chitchat")
DEFAULT_WHO = ("用户", "user")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_EXPECT_KEYS = {"text", "alt", "kw", "who", "event_time", "supersedes", "from", "subject", "why"}
_CASE_KEYS = {
    "id",
    "category",
    "at",
    "existing",
    "may_merge",
    "turns",
    "expect",
    "optional",
    "forbid",
}
_UNSET = object()


@dataclass(frozen=True, slots=True)
class ExpectedTime:
    """An expected event time: ``2024-10-21`` (day), ``2024-10`` (month) or ``2024`` (year)."""

    value: str

    @property
    def granularity(self) -> str:
        """``day``, ``month`` or ``year``, from the text's precision."""
        return {4: "year", 7: "month", 10: "day"}[len(self.value)]


@dataclass(frozen=True, slots=True)
class Expectation:
    """One observation a careful reader would (or, in ``forbid``, would never) store."""

    text: str
    alts: tuple[str, ...] = ()
    keywords: tuple[tuple[str, ...], ...] = ()
    who: tuple[str, ...] = DEFAULT_WHO  # empty: no marker required (forbidden facts)
    time_scored: bool = False  # False: the event time is not judged
    event_time: ExpectedTime | None = None  # None with time_scored: must have no event time
    supersedes: str | None = None
    source_turns: tuple[int, ...] = ()
    subject: str | None = None
    why: str | None = None

    @property
    def texts(self) -> tuple[str, ...]:
        """The text and its accepted alternatives (what the embedding is compared with)."""
        return (self.text, *self.alts)

    def words_present(self, content: str) -> bool:
        """Every keyword group and one subject marker appear in ``content`` (case-insensitive)."""
        lowered = content.casefold()
        groups = (*self.keywords, self.who) if self.who else self.keywords
        return all(any(w.casefold() in lowered for w in group) for group in groups)


@dataclass(frozen=True, slots=True)
class Seed:
    """A memory of the user that exists before the batch."""

    id: str
    text: str
    subject: str | None
    recorded: datetime


@dataclass(frozen=True, slots=True)
class CaseTurn:
    """One turn of a batch."""

    role: str
    content: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class Case:
    """One batch of the bench and what a careful reader expects from it."""

    id: str
    language: str
    category: str
    turns: tuple[CaseTurn, ...]
    expect: tuple[Expectation, ...]
    optional: tuple[Expectation, ...] = ()
    forbid: tuple[Expectation, ...] = ()
    existing: tuple[Seed, ...] = ()
    may_merge: tuple[str, ...] = ()

    def seed_id(self, local_id: str) -> str:
        """The store id of a seeded memory (unique across batches)."""
        return f"o-seed-{self.id}-{local_id}"


def load_cases(directory: Path = CASES_DIR, tz: tzinfo | None = None) -> list[Case]:
    """Every batch of ``<directory>/<language>.yaml``, zh first, in file order."""
    from zoneinfo import ZoneInfo

    from benchmarks.corpus import BENCH_TIMEZONE

    zone = tz or ZoneInfo(BENCH_TIMEZONE)
    cases: list[Case] = []
    for language in LANGUAGES:
        path = directory / f"{language}.yaml"
        items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        cases += [parse_case(item, language, zone) for item in items]
    ids = [c.id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate batch ids: {', '.join(duplicates)}")
    return cases


def select(cases: Sequence[Case], only: str | None) -> list[Case]:
    """The batches whose id, id prefix, language or category is in the comma list ``only``."""
    if not only:
        return list(cases)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    return [
        c for c in cases if any(c.id.startswith(w) or w in (c.language, c.category) for w in wanted)
    ]


def run_order(cases: Sequence[Case]) -> list[Case]:
    """The batches in rounds: the first of each category in zh, then in en, then the seconds, ...

    A run against a slow model may be read before it ends (the results file is rewritten after
    every batch): in this order a prefix covers every category in both languages evenly. The
    language changes once per round, not every batch, because a local server keeps the last
    prompt's prefix cached and the zh and en prompts share no prefix (a switch cost ~200 s on
    the busy development machine).
    """
    rank: dict[tuple[str, str], int] = {}
    keyed = []
    for case in cases:
        group = (case.language, case.category)
        rank[group] = rank.get(group, -1) + 1
        keyed.append(((rank[group], case.language != "zh", CATEGORIES.index(case.category)), case))
    return [case for _, case in sorted(keyed, key=lambda kc: kc[0])]


def parse_case(item: Any, language: str, tz: tzinfo) -> Case:
    """One batch from its YAML mapping; raises ``ValueError`` naming it."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise ValueError(f"{language}.yaml: every batch needs a string id")
    case_id = item["id"]
    try:
        return _parse_case(item, language, tz)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"batch {case_id}: {e}") from e


def _parse_case(item: dict[str, Any], language: str, tz: tzinfo) -> Case:
    _no_unknown(item, _CASE_KEYS, "batch")
    if not item["id"].startswith(f"{language}-"):
        raise ValueError(f"id must start with {language}-")
    if item["category"] not in CATEGORIES:
        raise ValueError(f"unknown category {item['category']!r}")
    start = datetime.strptime(str(item["at"]), "%Y-%m-%d %H:%M").replace(tzinfo=tz)
    turns = tuple(_turn(t, start + timedelta(minutes=i)) for i, t in enumerate(item["turns"]))
    existing = tuple(_seed(s, tz) for s in item.get("existing") or [])
    case = Case(
        id=item["id"],
        language=language,
        category=item["category"],
        turns=turns,
        expect=tuple(_expectation(e) for e in item.get("expect") or []),
        optional=tuple(_expectation(e) for e in item.get("optional") or []),
        # A forbidden fact is forbidden whoever it is said about: no subject marker needed.
        forbid=tuple(_expectation(e, who=()) for e in item.get("forbid") or []),
        existing=existing,
        may_merge=tuple(str(i) for i in item.get("may_merge") or []),
    )
    _check_references(case)
    return case


def _turn(raw: Any, ts: datetime) -> CaseTurn:
    role, content = raw
    if role not in ("user", "assistant") or not str(content).strip():
        raise ValueError(f"bad turn {raw!r}")
    return CaseTurn(role, str(content), ts)


def _seed(raw: dict[str, Any], tz: tzinfo) -> Seed:
    _no_unknown(raw, {"id", "text", "subject", "recorded"}, "existing memory")
    recorded = datetime.strptime(str(raw["recorded"]), "%Y-%m-%d").replace(hour=20, tzinfo=tz)
    return Seed(str(raw["id"]), str(raw["text"]), raw.get("subject"), recorded)


def _expectation(raw: dict[str, Any], who: tuple[str, ...] = DEFAULT_WHO) -> Expectation:
    _no_unknown(raw, _EXPECT_KEYS, "expectation")
    when = raw.get("event_time", _UNSET)
    if when is not _UNSET and when is not None and not _DATE.match(str(when)):
        raise ValueError(f"event_time {when!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
    if raw.get("why") is not None and raw["why"] not in FORBID_REASONS:
        raise ValueError(f"unknown why {raw['why']!r}")
    return Expectation(
        text=str(raw["text"]),
        alts=tuple(str(a) for a in raw.get("alt") or []),
        keywords=tuple(_group(g) for g in raw.get("kw") or []),
        who=tuple(str(w) for w in raw["who"]) if raw.get("who") else who,
        time_scored=when is not _UNSET,
        event_time=ExpectedTime(str(when)) if when not in (_UNSET, None) else None,
        supersedes=str(raw["supersedes"]) if raw.get("supersedes") else None,
        source_turns=tuple(int(n) for n in raw.get("from") or []),
        subject=raw.get("subject"),
        why=raw.get("why"),
    )


def _group(raw: Any) -> tuple[str, ...]:
    words = tuple(str(w) for w in (raw if isinstance(raw, list) else [raw]))
    if not words or not all(w.strip() for w in words):
        raise ValueError(f"empty keyword group {raw!r}")
    return words


def _check_references(case: Case) -> None:
    seeds = {s.id for s in case.existing}
    for exp in (*case.expect, *case.optional):
        if exp.supersedes is not None and exp.supersedes not in seeds:
            raise ValueError(f"{exp.text!r} supersedes unknown memory {exp.supersedes!r}")
        if any(not 1 <= n <= len(case.turns) for n in exp.source_turns):
            raise ValueError(f"{exp.text!r}: a source turn is out of range")
        if not exp.words_present(exp.text):
            raise ValueError(f"{exp.text!r} lacks its own keywords or subject marker")
    for exp in case.expect:
        if not exp.source_turns:
            raise ValueError(f"{exp.text!r} names no source turn (from)")
    if unknown := set(case.may_merge) - seeds:
        raise ValueError(f"may_merge names unknown memories {sorted(unknown)}")
    if any(f.why is None for f in case.forbid):
        raise ValueError("every forbidden observation needs a why")


def _no_unknown(raw: dict[str, Any], known: set[str], what: str) -> None:
    if unknown := set(raw) - known:
        raise ValueError(f"unknown {what} keys {sorted(unknown)}")
