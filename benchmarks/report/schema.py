"""The shapes of the results documents the report reads (``benchmarks/results/*.json``).

This module has the shared envelope, the recall benchmarks and the guard's baseline;
``schema_system`` has the store, retrieval, ingest and cost benchmarks.

Each benchmark writes its document through ``benchmarks.common.write_result``: an envelope
(date, commit, command, machine, params, wall time) around its own ``results``. These
``TypedDict``s describe only the keys the report reads; a document is the parsed JSON itself,
so every figure reaches the page exactly as the benchmark recorded it. Keys such as ``r@10``
are not identifiers, hence the functional ``TypedDict`` form for the recall scores.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

# -- shared pieces --------------------------------------------------------------------------


class Machine(TypedDict):
    """What a benchmark ran on."""

    cpu: str
    cores: int
    ram_gib: float
    python: str
    loadavg: NotRequired[list[float] | None]


class Latency(TypedDict):
    """Latency percentiles in milliseconds (``benchmarks.common.latency_stats``)."""

    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


class Named(TypedDict):
    """Any row with a ``name``, as ablation rows have."""

    name: str


class Envelope(TypedDict):
    """The part every results document shares."""

    date: str
    commit: str
    command: str
    machine: Machine
    wall_s: float


# -- recall_bench ---------------------------------------------------------------------------

Recall25 = TypedDict(
    "Recall25", {"n": int, "r@1": float, "r@5": float, "r@10": float, "r@25": float}
)
Anchor25 = TypedDict("Anchor25", {"r@5": float, "r@10": float, "r@25": float})
Anchor10 = TypedDict("Anchor10", {"r@5": float, "r@10": float})
Recall20 = TypedDict(
    "Recall20", {"name": str, "r@1": float, "r@5": float, "r@10": float, "r@20": float}
)
LocomoSweepRow = TypedDict(
    "LocomoSweepRow",
    {"settings": dict[str, object], "r@5": float, "r@10": float, "r@25": float},
)
MadialSweepRow = TypedDict(
    "MadialSweepRow", {"settings": dict[str, object], "r@5": float, "r@10": float}
)


class LocomoAblation(TypedDict):
    """One retrieval variant on LoCoMo: per category, overall, and its latency."""

    name: str
    overrides: dict[str, object]
    per_category: dict[str, Recall25]
    overall: Recall25
    latency: Latency


class LocomoLoad(TypedDict):
    """How many memories the LoCoMo conversations became."""

    memories: int


class LocomoPart(TypedDict):
    """One cumulative step of what each part of the defaults buys (benchmarks.ablation)."""

    name: str
    per_category: dict[str, Recall25]
    overall: Recall25


class Locomo(TypedDict):
    """recall_bench's LoCoMo results."""

    conversations: list[str]
    load: LocomoLoad
    ablation: list[LocomoAblation]
    sweep: NotRequired[list[LocomoSweepRow] | None]
    parts: NotRequired[list[LocomoPart]]


class MadialAblation(Recall20):
    """One retrieval variant on MADial-Bench."""

    overrides: dict[str, object]


class Madial(TypedDict):
    """recall_bench's MADial-Bench results."""

    dialogues: int
    memories: int
    query_variants: list[Recall20]
    ablation: list[MadialAblation]
    chosen_query: str
    sweep: NotRequired[list[MadialSweepRow] | None]
    parts: NotRequired[list[Recall20]]


class RecallAnchors(TypedDict):
    """Published recall of other retrievers on the same benchmarks."""

    locomo_dragon: Anchor25
    madial_bge_m3: Anchor10
    madial_openai: Anchor10


RecallGoals = TypedDict(
    "RecallGoals",
    {
        "locomo_r@10": float,
        "locomo_multi_hop_r@10": NotRequired[float],
        "locomo_both_r@10": NotRequired[float],
        "madial_r@5": NotRequired[float],
        "madial_r@10": NotRequired[float],
    },
)


class RecallResults(TypedDict):
    """recall_bench's ``results``."""

    backend: str
    anchors: RecallAnchors
    goals: RecallGoals
    locomo: NotRequired[Locomo]
    madial: NotRequired[Madial]


class RecallParams(TypedDict):
    """recall_bench's ``params`` the report quotes."""

    top_k: int


class RecallDoc(Envelope):
    """``recall_bench.json``."""

    params: RecallParams
    results: RecallResults


# -- recall_modes ---------------------------------------------------------------------------


class ModeRun(TypedDict):
    """Recall of one memory mode with the default settings."""

    per_category: dict[str, Recall25]
    overall: Recall25


class RawLoad(TypedDict):
    """How many turn memories a mode loaded."""

    memories: int


class ObservationImport(TypedDict):
    """How a mode imported the dataset's observations."""

    api: str
    observations: int


class Mode(TypedDict):
    """One memory mode of recall_modes."""

    mode: str
    defaults: ModeRun
    raw_load: NotRequired[RawLoad]
    observation_import: NotRequired[ObservationImport]


class ModesResults(TypedDict):
    """recall_modes's ``results``."""

    conversations: list[str]
    anchors: dict[str, Anchor25]
    modes: list[Mode]


class ModesDoc(Envelope):
    """``recall_modes.json``."""

    results: ModesResults


# -- never_hurts ----------------------------------------------------------------------------

Recall10 = TypedDict("Recall10", {"r@5": float, "r@10": float})
NeverHurtsRow = TypedDict(
    "NeverHurtsRow",
    {
        "dataset": str,
        "formulation": str,
        "defaults": Recall10,
        "dense only": Recall10,
        "BM25 only": Recall10,
        "margin r@5": float,
        "margin r@10": float,
    },
)


class NeverHurtsResults(TypedDict):
    """never_hurts's ``results``."""

    rows: list[NeverHurtsRow]
    worst_margin: float
    tolerance: float
    ok: bool


class NeverHurtsDoc(Envelope):
    """``never_hurts.json``."""

    results: NeverHurtsResults


# -- the guard's baseline -------------------------------------------------------------------


class GuardFigure(TypedDict):
    """One figure of the regression guard's baseline."""

    what: str
    value: float
    ms: NotRequired[float]
    reference_ms: NotRequired[float]


class Tolerances(TypedDict):
    """How much worse than the baseline a figure may get."""

    latency_ratio_increase: float
    recall_points_drop: float


class BaselineMachine(TypedDict):
    """The machine a baseline was written on (the part the report reads)."""

    cpu: str


class Baseline(TypedDict):
    """``benchmarks/baseline.json``, or one CPU model's ``benchmarks/baselines/<model>.json``."""

    date: str
    commit: str
    machine: NotRequired[BaselineMachine]
    tolerances: Tolerances
    figures: dict[str, GuardFigure]
