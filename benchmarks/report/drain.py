"""The per-user drain section (``drain_bench``): one user's backlog, raw mode, and its goal."""

from __future__ import annotations

from typing import NotRequired, TypedDict

from benchmarks.report.markdown import mark, provenance, table
from benchmarks.report.schema import Envelope
from benchmarks.report.table_row import Goal

DRAIN_GOAL_TURNS_PER_S = 40.0  # issue 17: one user, raw mode, 2 cores


class Profile(TypedDict):
    """The in-process consolidation of one user's turns, embedding timed apart."""

    turns: int
    batch_max_turns: int
    turns_per_s: float
    embed_share: float
    embed_ms_per_turn: float
    other_ms_per_turn: float
    load_average_at_start: float
    max_threads: NotRequired[int]


class Drain(TypedDict):
    """One drain under a real supervisor, for one worker shape."""

    shape: str
    processes: int
    threads: int
    max_threads: NotRequired[int]
    turns: int
    drain_s: float | None
    turns_per_s: float | None
    worker_cores_used: NotRequired[float | None]
    worker_cpu_ms_per_turn: NotRequired[float]
    machine_cores_busy: NotRequired[float | None]
    load_average_at_start: NotRequired[float]


class DrainResults(TypedDict):
    """drain_bench's ``results``."""

    where_the_time_goes: Profile
    drain: list[Drain]


class DrainDoc(Envelope):
    """``drain_bench.json``."""

    results: DrainResults


HEADER = [
    "shape (processes x threads)",
    "borrows idle cores up to",
    "turns",
    "seconds",
    "turns/s",
    "worker CPU ms per turn",
    "cores used by the workers",
    "machine cores busy",
    "load average at start",
]


def drain_section(doc: DrainDoc) -> list[str]:
    """How fast one user's backlog drains, and where the time goes."""
    res = doc["results"]
    p = res["where_the_time_goes"]
    out = ["## Per-user drain", "", *provenance(doc), ""]
    out += [
        "One user's imported backlog in raw mode on the embedded default, drained by a real "
        "supervisor (what `memlane up` runs); the clock starts when the push ends. A worker "
        "embedding alone borrows the idle cores (`embedding.worker_max_threads`, "
        "`memlane/llm/core_slots.py`); `/1` turns that off, as before it existed:",
        "",
    ]
    out += table(HEADER, [_row(d) for d in res["drain"]])
    out += [
        f"Where the time goes (the same consolidation in-process, {p['turns']} turns, batches "
        f"of {p['batch_max_turns']}, load average {p['load_average_at_start']}): embedding "
        f"{100 * p['embed_share']:.0f} % ({p['embed_ms_per_turn']} ms per turn), everything "
        f"else (buffer reads and commits, SQLite writes, lease checks) {p['other_ms_per_turn']} "
        "ms per turn. One user is one lease, so one process drains it and its embedder bounds "
        "the rate: 1000 / (worker CPU ms per turn) is what one core gives, and borrowing "
        "multiplies it by the cores the process could use.",
        "",
    ]
    return out


def _row(d: Drain) -> list[object]:
    return [
        d["shape"],
        d.get("max_threads", d["threads"]),
        d["turns"],
        d["drain_s"],
        d["turns_per_s"],
        d.get("worker_cpu_ms_per_turn"),
        d.get("worker_cores_used"),
        d.get("machine_cores_busy"),
        d.get("load_average_at_start"),
    ]


DEFAULT_SHAPE = "2x1"  # what `memlane up` runs: 2 processes, 1 thread each, borrowing on


def drain_goals(doc: DrainDoc | None) -> list[Goal]:
    """The drain rate of `memlane up`'s default shape (else the best one) against the goal."""
    what, goal = "per-user drain, raw mode, embedded default", f">= {DRAIN_GOAL_TURNS_PER_S:g}"
    runs = [d for d in (doc["results"]["drain"] if doc else []) if d["turns_per_s"] is not None]
    if not runs:
        return [Goal(what, goal + " turns/s", "not measured", "", "")]
    default = [d for d in runs if d["shape"] == DEFAULT_SHAPE]
    d = default[0] if default else max(runs, key=lambda run: run["turns_per_s"] or 0.0)
    best = d["turns_per_s"] or 0.0
    met = best >= DRAIN_GOAL_TURNS_PER_S
    reason = (
        ""
        if met
        else f"the embedder bounds it: {d.get('worker_cpu_ms_per_turn')} ms CPU per turn "
        f"({d['shape']}), measured at load average {d.get('load_average_at_start')}"
    )
    return [Goal(f"{what} ({d['shape']})", goal + " turns/s", best, mark(met), reason)]
