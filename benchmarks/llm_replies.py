"""The model's side of the LLM quality bench: the oracle's replies, and what a reply needed fixed.

- :func:`oracle_replier` answers extraction prompts the way the bench's careful reader would
  (each batch's expected observations, with their times, source turns and supersessions) and
  every arbitration pair with "distinct". Served by the test suite's fake OpenAI-compatible
  server, it checks the plumbing: any figure below 100 % in an oracle run is lost by memlane
  itself, not by a model.
- :func:`echo_output` is a baseline that does not read: the user's turns stored as said, or
  crudely put in the third person. The set is built so that it scores low.
- :func:`reply_repairs` counts the values of an extraction reply that memlane's validation has to
  repair or drop rather than refuse (an unreadable event time, an importance outside [0, 1], a
  source turn out of range, a link to an id that was not shown or with an unknown relation).
  It reads the reply itself, so it does not depend on how memlane's parser is organised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from benchmarks.llm_casefile import Case
from benchmarks.llm_scoring import BatchOutput, Produced

Body = dict[str, Any]
_DATE = re.compile(r"^\d{4}(?:[-/.]\d{1,2}(?:[-/.]\d{1,2})?)?$")
_NULLS = {"", "null", "none", "unknown"}
_GRANULARITIES = {"year", "month", "week", "day", "minute"}


def last_user_text(body: Body) -> str:
    """The text of the last user message of a chat request."""
    users = [m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""


def case_of(text: str, cases: Sequence[Case]) -> Case | None:
    """The batch whose turns are all quoted in an extraction prompt (None if none is)."""
    block = text.split("<turns>", 1)[-1]
    return next((c for c in cases if all(t.content in block for t in c.turns)), None)


def oracle_reply(case: Case) -> dict[str, Any]:
    """The extraction a careful reader gives for ``case``: its expected observations and links."""
    observations = [
        {
            "content": e.text,
            "event_time": e.event_time.value if e.event_time else None,
            "time_granularity": e.event_time.granularity if e.event_time else None,
            "keywords": [group[0] for group in e.keywords],
            "importance": 0.6,
            "source_turns": list(e.source_turns),
            "about": "user",
            "subject": e.subject,
        }
        for e in case.expect
    ]
    links = [
        {"observation": i, "memory_id": case.seed_id(e.supersedes), "relation": "contradiction"}
        for i, e in enumerate(case.expect)
        if e.supersedes
    ]
    return {"observations": observations, "links": links}


def oracle_replier(cases: Sequence[Case]) -> Callable[[Body], dict[str, Any]]:
    """A reply function for ``LLMServer.default_reply``: the oracle's answer to each prompt."""

    def reply(body: Body) -> dict[str, Any]:
        text = last_user_text(body)
        if "<turns>" not in text:  # arbitration: every ambiguous pair is two distinct facts
            pairs = len(re.findall(r"^\s*NEW", text, re.MULTILINE))
            return {"decisions": [{"pair": i, "relation": "distinct"} for i in range(pairs)]}
        case = case_of(text, cases)
        return oracle_reply(case) if case else {"observations": [], "links": []}

    return reply


def reply_repairs(raw: object, turns: int, candidates: Collection[str]) -> dict[str, int]:
    """What memlane has to fix or drop in an extraction reply it accepts, by kind (pure)."""
    counts: dict[str, int] = {}

    def count(kind: str, n: int = 1) -> None:
        if n:
            counts[kind] = counts.get(kind, 0) + n

    if not isinstance(raw, dict):
        return counts
    items = raw.get("observations")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            count("event_time_unreadable", not _readable_time(item.get("event_time")))
            count("importance_clamped", not _unit_number(item.get("importance")))
            count("granularity_unknown", not _granularity_ok(item.get("time_granularity")))
            count("source_turn_dropped", _bad_turns(item.get("source_turns"), turns))
    links = raw.get("links")
    n_obs = len(items) if isinstance(items, list) else 0
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict):
            count("link_dropped", not _link_ok(link, n_obs, candidates))
    return counts


def _readable_time(value: object) -> bool:
    if value is None or (isinstance(value, str) and value.strip().lower() in _NULLS):
        return True
    text = str(value).strip()
    if _DATE.match(text):
        return True
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _unit_number(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    try:
        return 0.0 <= float(value) <= 1.0
    except ValueError:
        return False


def _granularity_ok(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.lower() in _GRANULARITIES | _NULLS)


def _bad_turns(value: object, turns: int) -> int:
    items = value if isinstance(value, list) else [] if value is None else [value]
    return sum(
        1
        for v in items
        if not (str(v).lstrip("#").isdigit() and 1 <= int(str(v).lstrip("#")) <= turns)
    )


def _link_ok(link: dict[str, Any], observations: int, candidates: Collection[str]) -> bool:
    index = link.get("observation")
    return (
        isinstance(index, int)
        and not isinstance(index, bool)
        and 0 <= index < observations
        and link.get("memory_id") in candidates
        and str(link.get("relation", "")).lower() in ("duplicate", "contradiction")
    )


# -- baselines that do not read: echo the user's turns -----------------------------------------

_EN_PRONOUNS = (
    (r"\bI'm\b", "the user is"),
    (r"\bI've\b", "the user has"),
    (r"\bI\b", "the user"),
    (r"\bmy\b", "the user's"),
    (r"\bme\b", "the user"),
)


def third_person(text: str, language: str) -> str:
    """A crude third-person rewrite of a user turn (我 -> 用户, I -> the user)."""
    if language == "zh":
        return text.replace("我", "用户")
    for pattern, repl in _EN_PRONOUNS:
        text = re.sub(pattern, repl, text, flags=re.IGNORECASE)
    return text


def echo_output(case: Case, rewrite: bool) -> BatchOutput:
    """Every user turn stored as it was said (or crudely rewritten): no times, no supersessions."""
    said = [t.content for t in case.turns if t.role == "user"]
    texts = [third_person(t, case.language) if rewrite else t for t in said]
    return BatchOutput("ok", [Produced(f"echo-{i}", t) for i, t in enumerate(texts)])
