"""The throughput section: turns/s against worker processes, the embedder's CPU, the plot."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, NotRequired, TypedDict

from benchmarks.report.markdown import provenance, table
from benchmarks.report.schema import Envelope

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# A doubling of workers that gains less than this factor counts as flat.
FLAT_GAIN = 1.25
# A machine this busy (share of its cores) is saturated.
SATURATED = 0.85

HEADER = [
    "worker processes",
    "turns",
    "users",
    "seconds",
    "turns/s",
    "speed-up vs 1",
    "turns/s per round",
    "embedder cores",
    "embedder CPU ms per turn",
    "workers cores",
    "machine cores busy",
]


class ThroughputRun(TypedDict):
    """One worker-process count."""

    workers: int
    turns: int
    users: int
    push_s: float
    drain_s: float
    turns_per_s: float
    embedder_cores: float
    workers_cores: float
    machine_cores_busy: float
    cores: int
    rounds: NotRequired[list[float]]  # turns/s of each round (the row holds their means)


class ThroughputParams(TypedDict):
    """How the benchmark ran."""

    workers: list[int]
    users: int
    rounds: NotRequired[int]
    turns_per_user: int
    batch_max_turns: int
    embed_threads: int
    worker_concurrency: int
    store: str
    embedder: str


class ThroughputResults(TypedDict):
    """The runs, in worker-count order."""

    runs: list[ThroughputRun]


class ThroughputDoc(Envelope):
    """``benchmarks/results/throughput_bench.json``."""

    params: ThroughputParams
    results: ThroughputResults


def throughput_section(doc: ThroughputDoc) -> list[str]:
    """Turns/s with 1, 2, 4 worker processes behind one HTTP embedder, and where it flattens."""
    p, runs = doc["params"], doc["results"]["runs"]
    out = ["## Throughput with N worker processes", "", *provenance(doc), ""]
    out += [
        f"Raw mode, {p['users']} users x {p['turns_per_user']} turns per run, batches of up to "
        f"{p['batch_max_turns']}, store {p['store']}. Each worker process runs one task at a "
        f"time; embeddings come from {p['embedder']}, one inference at a time on "
        f"{p['embed_threads']} OpenMP threads, in a process of its own. Cores = CPU seconds / "
        "wall seconds of the drain." + _rounds(p),
        "",
        "![turns/s against worker processes](img/throughput.png)",
        "",
    ]
    base = runs[0]["turns_per_s"] if runs else 0.0
    out += table(
        HEADER,
        [
            [
                r["workers"],
                r["turns"],
                r["users"],
                r["drain_s"],
                r["turns_per_s"],
                f"{r['turns_per_s'] / base:.2f}x" if base else None,
                ", ".join(str(x) for x in r.get("rounds", [])) or None,
                r["embedder_cores"],
                embed_ms_per_turn(r),
                r["workers_cores"],
                f"{r['machine_cores_busy']} of {r['cores']}",
            ]
            for r in runs
        ],
    )
    out += [throughput_bend(runs, p["embed_threads"]), ""]
    return out


def _rounds(p: ThroughputParams) -> str:
    n = p.get("rounds", 1)
    if n < 2:
        return ""
    return (
        f" Each count ran {n} times, the order reversed every round (1, 2, 4, 4, 2, 1), so a "
        "neighbour's load that changes during the benchmark does not favour one count; a row "
        "is the mean of its rounds."
    )


def embed_ms_per_turn(r: ThroughputRun) -> float:
    """The embedder's CPU time per stored turn, in milliseconds."""
    return round(1000 * r["embedder_cores"] * r["drain_s"] / r["turns"], 1) if r["turns"] else 0.0


def throughput_bend(runs: list[ThroughputRun], embed_threads: int) -> str:
    """Where the curve flattens and why, from the recorded CPU figures."""
    steps = ", ".join(
        f"{a['workers']} to {b['workers']} x{b['turns_per_s'] / a['turns_per_s']:.2f}"
        for a, b in itertools.pairwise(runs)
        if a["turns_per_s"]
    )
    return (f"Gain per step: {steps}. " if steps else "") + _bend(runs, embed_threads)


def _bend(runs: list[ThroughputRun], embed_threads: int) -> str:
    for a, b in itertools.pairwise(runs):
        gain = b["turns_per_s"] / a["turns_per_s"] if a["turns_per_s"] else 0.0
        ideal = b["workers"] / a["workers"]
        if gain >= min(FLAT_GAIN, ideal):
            continue
        head = (
            f"The curve flattens after {a['workers']} worker process(es): "
            f"{a['workers']} to {b['workers']} gained {gain:.2f}x (ideal {ideal:.0f}x); with "
            f"{a['workers']} the embedder already used {a['embedder_cores']} of "
            f"{a['cores']} cores. "
        )
        return head + _why(b, embed_threads)
    if not runs:
        return ""
    last = runs[-1]
    return f"No flat step up to {last['workers']} worker processes. " + _why(last, embed_threads)


def _why(r: ThroughputRun, embed_threads: int) -> str:
    busy, cores = r["machine_cores_busy"], r["cores"]
    emb, work = r["embedder_cores"], r["workers_cores"]
    per_turn = embed_ms_per_turn(r)
    ceiling = f"{cores * 1000 / per_turn:.0f}" if per_turn else "?"
    figures = (
        f"With {r['workers']} the machine was {busy} of {cores} cores busy: the embedder "
        f"{emb} cores, the workers {work}, the rest Redis, the store, the beat and any other "
        f"process on the machine. The embedder spent {per_turn} ms of CPU per turn, so even "
        f"with all {cores} cores to itself it would cap the run at about {ceiling} turns/s."
    )
    own = emb + work
    if busy >= SATURATED * cores and own < 0.6 * busy:
        return (
            f"{figures} The cores were saturated mostly by processes outside the benchmark "
            f"(the embedder and the workers used {own:.2f} of the {busy} busy cores): the "
            f"embedder got {emb} cores, and the run went as fast as those buy at {per_turn} ms "
            "a turn. More workers cannot help when the embedder is starved; the curve itself "
            "needs a quiet machine."
        )
    if busy >= SATURATED * cores:
        return (
            f"{figures} The cores are saturated: the embedder holds most of them, and the "
            "workers, Redis, the store and any neighbour share the rest with it, so another "
            "worker only queues one more batch at the embedder; more throughput needs more "
            "cores (or an embedder on other hosts) or a cheaper embedding, not more workers."
        )
    if emb >= 0.8 * embed_threads:
        return (
            f"{figures} The embedder is the bottleneck: one inference at a time on "
            f"{embed_threads} threads, and it is busy nearly all the time."
        )
    return (
        f"{figures} Neither the cores nor the embedder are saturated, so the workers wait on "
        "timers and I/O (dispatch interval, store writes)."
    )


def throughput_plot(doc: ThroughputDoc) -> Figure:
    """Turns/s and the embedder's cores against worker processes."""
    import matplotlib.pyplot as plt

    runs = doc["results"]["runs"]
    xs = [r["workers"] for r in runs]
    fig, ax1 = plt.subplots(figsize=(6, 4))
    ax1.plot(xs, [r["turns_per_s"] for r in runs], "o-", label="turns/s")
    ax1.set_xticks(xs, [str(x) for x in xs])
    ax1.set_xlabel("worker processes (1 task each)")
    ax1.set_ylabel("turns per second")
    ax1.set_ylim(bottom=0)
    ax2 = ax1.twinx()
    ax2.plot(xs, [r["embedder_cores"] for r in runs], "s--", color="tab:orange", label="embedder")
    ax2.plot(xs, [r["machine_cores_busy"] for r in runs], "^:", color="tab:red", label="machine")
    ax2.set_ylabel("cores busy")
    ax2.set_ylim(0, max(r["cores"] for r in runs) + 0.2)
    lines = ax1.get_lines() + ax2.get_lines()
    ax1.legend(lines, [str(line.get_label()) for line in lines], fontsize=8, loc="lower right")
    ax1.set_title(f"Raw-mode throughput, HTTP embedder ({runs[0]['cores']} cores)")
    return fig
