"""The plots of docs/img/, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.report.results import Results
from benchmarks.report.schema import Anchor25, ModesDoc, Recall25, RecallDoc
from benchmarks.report.schema_system import StoreDoc, SweepDoc
from benchmarks.report.throughput import throughput_plot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110


def write_plots(r: Results, img_dir: Path) -> list[Path]:
    """Draw every plot whose results exist into ``img_dir``; return the files written."""
    import matplotlib

    # Agg renders to files only; the report runs on machines without a display.
    matplotlib.use("Agg")
    img_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if r.store:
        written.append(save(store_latency(r.store), img_dir / "store_latency.png"))
    if r.recall and "locomo" in r.recall["results"]:
        written.append(save(recall_locomo(r.recall), img_dir / "recall_locomo.png"))
    if r.recall and "madial" in r.recall["results"]:
        written.append(save(recall_madial(r.recall), img_dir / "recall_madial.png"))
    if r.modes:
        written.append(save(recall_modes(r.modes), img_dir / "recall_modes.png"))
    if r.sweep:
        written.append(save(cost_sweep(r.sweep), img_dir / "cost_sweep.png"))
    if r.throughput and r.throughput["results"]["runs"]:
        written.append(save(throughput_plot(r.throughput), img_dir / "throughput.png"))
    return written


def save(fig: Figure, path: Path) -> Path:
    """Lay out, write and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def at_ks(o: Recall25) -> list[float]:
    """Recall at k = 1, 5, 10, 25."""
    return [o["r@1"], o["r@5"], o["r@10"], o["r@25"]]


def anchor_ks(a: Anchor25) -> list[float]:
    """A paper's recall at k = 5, 10, 25."""
    return [a["r@5"], a["r@10"], a["r@25"]]


def store_latency(store: StoreDoc) -> Figure:
    """Search latency and RSS against corpus size, per backend."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, b in store["results"]["backends"].items():
        sizes = [s["size"] for s in b["steps"]]
        ax1.plot(sizes, [s["search"]["p50_ms"] for s in b["steps"]], "o-", label=f"{name} p50")
        ax1.plot(sizes, [s["search"]["p95_ms"] for s in b["steps"]], "s--", label=f"{name} p95")
        rss = [s.get("es_jvm_rss_mib") or s["bench_rss_mib"] for s in b["steps"]]
        ax2.plot(
            sizes,
            rss,
            "o-",
            label=f"{name} ({'ES JVM' if name == 'elasticsearch' else 'bench process'})",
        )
    ax1.axhline(store["results"]["goal_p95_ms"], color="grey", lw=0.8, ls=":", label="goal p95")
    for ax, title, unit in ((ax1, "store search latency", "ms"), (ax2, "RSS", "MiB")):
        ax.set_xscale("log")
        ax.set_xlabel("memories")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.legend(fontsize=7)
    return fig


def recall_locomo(recall: RecallDoc) -> Figure:
    """LoCoMo recall@k of each ablation variant next to DRAGON's."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in recall["results"]["locomo"]["ablation"]:
        ax.plot([1, 5, 10, 25], at_ks(r["overall"]), "o-", label=r["name"])
    a = recall["results"]["anchors"]["locomo_dragon"]
    ax.plot([5, 10, 25], anchor_ks(a), "k^:", label="DRAGON (paper)")
    ax.set_xlabel("k")
    ax.set_ylabel("evidence recall@k (%)")
    ax.set_title("LoCoMo, raw dialog turns")
    ax.legend(fontsize=7)
    return fig


def recall_madial(recall: RecallDoc) -> Figure:
    """MADial-Bench recall@k of each ablation variant next to BGE-M3's and OpenAI's."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in recall["results"]["madial"]["ablation"]:
        ax.plot([1, 5, 10, 20], [r["r@1"], r["r@5"], r["r@10"], r["r@20"]], "o-", label=r["name"])
    anchors = recall["results"]["anchors"]
    for a, style, label in (
        (anchors["madial_openai"], "k^:", "openai"),
        (anchors["madial_bge_m3"], "kv:", "bge_m3"),
    ):
        ax.plot([5, 10], [a["r@5"], a["r@10"]], style, label=label)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k (%)")
    ax.set_title("MADial-Bench zh")
    ax.legend(fontsize=7)
    return fig


def recall_modes(modes: ModesDoc) -> Figure:
    """LoCoMo recall@k per memory mode, next to the paper's."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in modes["results"]["modes"]:
        ax.plot([1, 5, 10, 25], at_ks(m["defaults"]["overall"]), "o-", label=m["mode"])
        a = modes["results"]["anchors"].get(m["mode"])
        if a:
            ax.plot([5, 10, 25], anchor_ks(a), "^:", label=f"paper, {m['mode']}")
    ax.set_xlabel("k")
    ax.set_ylabel("evidence recall@k (%)")
    ax.set_title("LoCoMo recall by memory mode")
    ax.legend(fontsize=7)
    return fig


def cost_sweep(sweep: SweepDoc) -> Figure:
    """LLM calls and prompt tokens per 1,000 turns against batch size."""
    import matplotlib.pyplot as plt

    rows = sweep["results"]["rows"]
    sizes = [r["batch_max_turns"] for r in rows]
    fig, ax1 = plt.subplots(figsize=(6, 4))
    ax1.plot(sizes, [r["llm_calls_per_1000_turns"] for r in rows], "o-", label="LLM calls")
    ax1.set_xscale("log", base=2)
    ax1.set_xticks(sizes, [str(x) for x in sizes])
    ax1.minorticks_off()
    ax1.set_xlabel("batch_max_turns")
    ax1.set_ylabel("LLM calls per 1,000 turns")
    ax2 = ax1.twinx()
    ax2.plot(
        sizes,
        [r["prompt_tokens_per_1000_turns"] / 1000 for r in rows],
        "s--",
        color="tab:orange",
        label="prompt tokens (k)",
    )
    ax2.set_ylabel("prompt tokens per 1,000 turns (thousands)")
    ax1.set_title("LLM cost vs batch size")
    fig.legend(fontsize=7, loc="center right", bbox_to_anchor=(0.85, 0.6))
    return fig
