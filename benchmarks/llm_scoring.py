"""Scoring of the LLM quality bench: what one batch produced against what a careful reader expects.

Everything here is pure (vectors are given). For one batch:

- **Matching.** An expected observation matches a produced one when the cosine of their
  multilingual-e5-small passage embeddings (the best over the expected text and its accepted
  alternatives) is at least ``threshold`` AND every required keyword group and one subject marker
  (用户 / user, or the expectation's ``who``) appear in the produced text. Each produced
  observation matches at most one expectation (a maximum bipartite matching, higher cosines tried
  first), so an observation that packs five facts earns one match, not five. What is left is
  matched against the optional observations (neither credited nor counted against), then tagged
  as forbidden (the assistant's words, injected claims) or as a copy of an existing memory.
- **Precision** = matched / (produced - optional); **recall** = matched / expected;
  **strict recall** counts only matches that also have the right event time (when one is
  scored) and supersede the right memory (when one is expected): a fact stored but misdated, or
  stored while the old one stays active, is not fully remembered.
- **Event time**: a matched expectation with a date must carry that exact day (month, year) in
  the bench's timezone, at a granularity at least that fine; one marked as lasting must carry none.
- **Supersede**: an expected supersession is correct when the old memory is superseded by the
  produced observation matched to the expectation that names it; every other supersession in the
  plan is wrong. Merges into existing memories the batch does not restate are counted too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from benchmarks.llm_casefile import Case, Expectation, ExpectedTime

Similarity = Callable[[str, str], float]
_RANK = {"year": 0, "month": 1, "week": 2, "day": 3, "minute": 4}


@dataclass(frozen=True, slots=True)
class Produced:
    """One observation the plan would write."""

    id: str
    content: str
    event_time: datetime | None = None
    granularity: str | None = None


@dataclass
class BatchOutput:
    """What one batch gave: the plan's observations, supersessions and merges, and its cost."""

    outcome: str  # ok | rejected (bad output) | failed (the call itself failed)
    observations: list[Produced] = field(default_factory=list)
    supersede: list[tuple[str, str]] = field(default_factory=list)  # (old id, new id)
    merges: list[str] = field(default_factory=list)  # existing ids that absorbed an observation
    error: str | None = None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    repairs: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)


@dataclass
class BatchScore:
    """The score of one batch, with the evidence (what matched, what was missed, what was extra)."""

    id: str
    language: str
    category: str
    outcome: str
    expected: int
    produced: int
    tp: int
    strict_tp: int
    fp: int
    optional_hits: int
    time_expected: int
    time_matched: int
    time_correct: int
    lasting_matched: int
    lasting_with_time: int
    supersede_expected: int
    supersede_correct: int
    supersede_wrong: list[dict[str, str]]
    merges_unexpected: list[str]
    matches: list[dict[str, Any]]
    missed: list[str]
    false_positives: list[dict[str, Any]]
    error: str | None = None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    repairs: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)


def eligible(exp: Expectation, content: str, sim: Similarity, threshold: float) -> float | None:
    """The cosine of ``content`` to ``exp`` if it matches (keywords and threshold), else None."""
    if not exp.words_present(content):
        return None
    cosine = max(sim(content, t) for t in exp.texts)
    return cosine if cosine >= threshold else None


def match(
    expectations: Sequence[Expectation],
    produced: Sequence[Produced],
    sim: Similarity,
    threshold: float,
) -> dict[int, tuple[int, float]]:
    """A maximum one-to-one matching: produced index -> (expectation index, cosine)."""
    edges: list[list[tuple[float, int]]] = []
    for exp in expectations:
        found = [
            (c, j)
            for j, p in enumerate(produced)
            if (c := eligible(exp, p.content, sim, threshold))
        ]
        edges.append(sorted(found, reverse=True))
    owner: dict[int, tuple[int, float]] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for cosine, j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j][0], seen):
                owner[j] = (i, cosine)
                return True
        return False

    for i in range(len(expectations)):
        augment(i, set())
    return owner


def time_correct(expected: ExpectedTime, got: Produced, tz: tzinfo) -> bool:
    """The produced event time is the expected day (month, year), at least that precise."""
    if got.event_time is None:
        return False
    if _RANK.get(got.granularity or "minute", 4) < _RANK[expected.granularity]:
        return False
    local = got.event_time.astimezone(tz)
    return f"{local:%Y-%m-%d}"[: len(expected.value)] == expected.value


def show_time(got: Produced, tz: tzinfo) -> str | None:
    """A produced event time as the report shows it: ``2024-10-21 (day)``."""
    if got.event_time is None:
        return None
    return f"{got.event_time.astimezone(tz):%Y-%m-%d} ({got.granularity or 'minute'})"


def score_batch(
    case: Case,
    out: BatchOutput,
    sim: Similarity,
    tz: tzinfo,
    threshold: float,
    copy_threshold: float,
) -> BatchScore:
    """Score what one batch produced against the case's expectations."""
    obs = out.observations
    required = match(case.expect, obs, sim, threshold)
    rest = [j for j in range(len(obs)) if j not in required]
    optional_raw = match(case.optional, [obs[j] for j in rest], sim, threshold)
    optional = {rest[k]: v for k, v in optional_raw.items()}
    matched_exp = {obs[j].id: case.expect[i] for j, (i, _) in required.items()}
    matched_exp |= {obs[j].id: case.optional[i] for j, (i, _) in optional.items()}
    matches, times = _matches(case, obs, required, tz)
    extra = [obs[j] for j in rest if j not in optional]
    supersede_expected = {case.seed_id(e.supersedes) for e in case.expect if e.supersedes}
    correct, wrong = _supersessions(case, out.supersede, matched_exp)
    hit = {i for i, _ in required.values()}
    return BatchScore(
        id=case.id,
        language=case.language,
        category=case.category,
        outcome=out.outcome,
        expected=len(case.expect),
        produced=len(obs),
        tp=len(required),
        strict_tp=_strict(case, obs, required, matches, set(out.supersede)),
        fp=len(extra),
        optional_hits=len(optional),
        time_expected=sum(1 for e in case.expect if e.event_time is not None),
        time_matched=times[0],
        time_correct=times[1],
        lasting_matched=times[2],
        lasting_with_time=times[3],
        supersede_expected=len(supersede_expected),
        supersede_correct=len(correct & supersede_expected),
        supersede_wrong=wrong,
        merges_unexpected=[
            _local(case, m)
            for m in out.merges
            if m not in {case.seed_id(i) for i in case.may_merge}
        ],
        matches=matches,
        missed=[e.text for i, e in enumerate(case.expect) if i not in hit],
        false_positives=[_tag(case, p, sim, threshold, copy_threshold) for p in extra],
        error=out.error,
        calls=out.calls,
        prompt_tokens=out.prompt_tokens,
        completion_tokens=out.completion_tokens,
        seconds=round(out.seconds, 2),
        repairs=dict(out.repairs),
        warnings=dict(out.warnings),
    )


def _matches(
    case: Case, obs: Sequence[Produced], required: dict[int, tuple[int, float]], tz: tzinfo
) -> tuple[list[dict[str, Any]], tuple[int, int, int, int]]:
    """The matched pairs with their time verdicts, and (timed, correct, lasting, lasting timed)."""
    rows: list[dict[str, Any]] = []
    timed = correct = lasting = lasting_timed = 0
    for j, (i, cosine) in _by_expectation(required):
        exp, got = case.expect[i], obs[j]
        row: dict[str, Any] = {
            "expected": exp.text,
            "produced": got.content,
            "cosine": round(cosine, 3),
            "event_time": show_time(got, tz),
        }
        if exp.event_time is not None:
            ok = time_correct(exp.event_time, got, tz)
            timed, correct = timed + 1, correct + ok
            row["time_expected"], row["time_ok"] = exp.event_time.value, ok
        elif exp.time_scored:
            lasting, lasting_timed = lasting + 1, lasting_timed + (got.event_time is not None)
            row["time_expected"], row["time_ok"] = None, got.event_time is None
        rows.append(row)
    return rows, (timed, correct, lasting, lasting_timed)


def _strict(
    case: Case,
    obs: Sequence[Produced],
    required: dict[int, tuple[int, float]],
    rows: Sequence[dict[str, Any]],
    done: set[tuple[str, str]],
) -> int:
    """Matches whose event time (if scored) is right and whose expected supersession happened."""
    count = 0
    for row, (j, (i, _)) in zip(rows, _by_expectation(required), strict=True):
        old = case.expect[i].supersedes
        superseded = old is None or (case.seed_id(old), obs[j].id) in done
        count += bool(row.get("time_ok", True) and superseded)
    return count


def _by_expectation(
    required: dict[int, tuple[int, float]],
) -> list[tuple[int, tuple[int, float]]]:
    """The matching in the order of the expectations."""
    return sorted(required.items(), key=lambda kv: kv[1][0])


def _supersessions(
    case: Case, done: Sequence[tuple[str, str]], matched_exp: dict[str, Expectation]
) -> tuple[set[str], list[dict[str, str]]]:
    correct: set[str] = set()
    wrong: list[dict[str, str]] = []
    for old, new in done:
        exp = matched_exp.get(new)
        if exp is not None and exp.supersedes and case.seed_id(exp.supersedes) == old:
            correct.add(old)
        else:
            wrong.append({"old": _local(case, old), "new": new})
    return correct, wrong


def _local(case: Case, full_id: str) -> str:
    prefix = case.seed_id("")
    return full_id.removeprefix(prefix) if full_id.startswith(prefix) else full_id


def _tag(
    case: Case, got: Produced, sim: Similarity, threshold: float, copy_threshold: float
) -> dict[str, Any]:
    """A produced observation that matched nothing: forbidden? a copy of an existing memory?"""
    why = next((f.why for f in case.forbid if eligible(f, got.content, sim, threshold)), None)
    copy = next((s.id for s in case.existing if sim(got.content, s.text) >= copy_threshold), None)
    return {"content": got.content, "forbidden": why, "copy_of": copy}


# -- totals ---------------------------------------------------------------------------------------


def ratio(num: float, den: float) -> float | None:
    """``num / den`` to 3 decimals; None when nothing was there to count."""
    return round(num / den, 3) if den else None


def aggregate(scores: Sequence[BatchScore]) -> dict[str, Any]:
    """The figures of a set of batches (a language, a category, or all)."""
    tp, fp = sum(s.tp for s in scores), sum(s.fp for s in scores)
    expected = sum(s.expected for s in scores)
    precision, recall = ratio(tp, tp + fp), ratio(tp, expected)
    f1 = ratio(2 * tp, 2 * tp + fp + (expected - tp))
    empty = [s for s in scores if s.expected == 0]
    tagged = [f for s in scores for f in s.false_positives]
    accepted = [s for s in scores if s.outcome == "ok"]
    return {
        "batches": len(scores),
        "expected": expected,
        "produced": sum(s.produced for s in scores),
        "tp": tp,
        "fp": fp,
        "optional": sum(s.optional_hits for s in scores),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "strict_recall": ratio(sum(s.strict_tp for s in scores), expected),
        "event_time": _time_totals(scores),
        "supersede": {
            "expected": sum(s.supersede_expected for s in scores),
            "correct": sum(s.supersede_correct for s in scores),
            "wrong": sum(len(s.supersede_wrong) for s in scores),
            "accuracy": ratio(
                sum(s.supersede_correct for s in scores), sum(s.supersede_expected for s in scores)
            ),
        },
        "merges_unexpected": sum(len(s.merges_unexpected) for s in scores),
        "nothing_to_remember": {
            "batches": len(empty),
            "clean": sum(1 for s in empty if s.outcome == "ok" and s.fp == 0),
        },
        "forbidden": _count(f["forbidden"] for f in tagged if f["forbidden"]),
        "copies": sum(1 for f in tagged if f["copy_of"]),
        "outputs": {
            "accepted": len(accepted),
            "rejected": sum(1 for s in scores if s.outcome == "rejected"),
            "failed": sum(1 for s in scores if s.outcome == "failed"),
            "repaired": sum(1 for s in accepted if s.repairs),
        },
        "repairs": _sum_counts(s.repairs for s in scores),
        "warnings": _sum_counts(s.warnings for s in scores),
        "per_batch": _cost(scores),
    }


def _time_totals(scores: Sequence[BatchScore]) -> dict[str, Any]:
    matched, correct = sum(s.time_matched for s in scores), sum(s.time_correct for s in scores)
    expected = sum(s.time_expected for s in scores)
    return {
        "expected": expected,
        "matched": matched,
        "correct": correct,
        "accuracy": ratio(correct, matched),
        "recall": ratio(correct, expected),
        "lasting_matched": sum(s.lasting_matched for s in scores),
        "lasting_with_time": sum(s.lasting_with_time for s in scores),
    }


def _cost(scores: Sequence[BatchScore]) -> dict[str, float]:
    n = max(len(scores), 1)
    seconds = sorted(s.seconds for s in scores) or [0.0]
    return {
        "llm_calls": round(sum(s.calls for s in scores) / n, 2),
        "prompt_tokens": round(sum(s.prompt_tokens for s in scores) / n, 1),
        "completion_tokens": round(sum(s.completion_tokens for s in scores) / n, 1),
        "seconds_mean": round(sum(seconds) / n, 2),
        "seconds_p50": round(seconds[len(seconds) // 2], 2),
        "seconds_max": round(seconds[-1], 2),
    }


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


def _sum_counts(counts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for key, value in c.items():
            out[key] = out.get(key, 0) + value
    return dict(sorted(out.items()))
