"""The throughput section of the report: the table, where the curve flattens and why, the plot."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report.schema import Machine
from benchmarks.report.throughput import (
    ThroughputDoc,
    ThroughputRun,
    throughput_bend,
    throughput_section,
)


def run(workers: int, tps: float, embedder: float, busy: float) -> ThroughputRun:
    """One worker-process count on a 2-core machine."""
    return {
        "workers": workers,
        "turns": 600,
        "users": 30,
        "push_s": 0.1,
        "drain_s": round(600 / tps, 2),
        "turns_per_s": tps,
        "embedder_cores": embedder,
        "workers_cores": round(busy - embedder - 0.1, 2),
        "machine_cores_busy": busy,
        "cores": 2,
    }


def doc(runs: list[ThroughputRun]) -> ThroughputDoc:
    """throughput_bench.json with the given runs."""
    machine: Machine = {"cpu": "Test CPU", "cores": 2, "ram_gib": 4.0, "python": "3.11.7"}
    return {
        "date": "2025-01-01 00:00 UTC",
        "commit": "abc123",
        "command": "python -m benchmarks.throughput_bench",
        "machine": machine,
        "wall_s": 60.0,
        "params": {
            "workers": [r["workers"] for r in runs],
            "users": 30,
            "rounds": 2,
            "turns_per_user": 20,
            "batch_max_turns": 20,
            "embed_threads": 2,
            "worker_concurrency": 1,
            "store": "sqlite",
            "embedder": "benchmarks.embed_server",
        },
        "results": {"runs": runs},
    }


SATURATED = [run(1, 40.0, 1.1, 1.5), run(2, 60.0, 1.3, 1.95), run(4, 62.0, 1.2, 2.0)]
for _r in SATURATED:
    _r["rounds"] = [_r["turns_per_s"] - 2, _r["turns_per_s"] + 2]


def test_section_shows_each_run_and_the_speed_up() -> None:
    """One row per worker count with its speed-up against one worker, and the plot's link."""
    text = "\n".join(throughput_section(doc(SATURATED)))
    assert (
        "| 2 | 600 | 30 | 10.0 | 60.0 | 1.50x | 58.0, 62.0 | 1.3 | 21.7 | 0.55 | 1.95 of 2 |"
        in text
    )
    assert "a row is the mean of its rounds" in text
    assert "![turns/s against worker processes](img/throughput.png)" in text


def test_bend_on_saturated_cores_blames_the_competition_for_cores() -> None:
    """2 -> 4 workers gains 1.03x with 2.0 of 2 cores busy: flat after 2, cores saturated."""
    text = throughput_bend(SATURATED, 2)
    assert text.startswith("Gain per step: 1 to 2 x1.50, 2 to 4 x1.03. ")
    assert "The curve flattens after 2 worker process(es): 2 to 4 gained 1.03x" in text
    assert "the embedder 1.2 cores" in text
    assert "The cores are saturated" in text
    # 1.2 cores x 9.68 s / 600 turns = 19.4 ms per turn; 2 cores / 19.4 ms = 103 turns/s.
    assert "19.4 ms of CPU per turn" in text and "about 103 turns/s" in text


def test_bend_on_an_idle_machine_says_the_embedder_is_the_limit() -> None:
    """A flat step with the embedder busy on its 2 threads but the machine not saturated."""
    runs = [run(1, 40.0, 1.7, 1.6), run(2, 42.0, 1.7, 1.65)]
    text = throughput_bend(runs, 2)
    assert "flattens after 1 worker process(es)" in text
    assert "The embedder is the bottleneck" in text


def test_no_flat_step_is_said_so() -> None:
    """Every doubling gains enough: no bend is claimed."""
    text = throughput_bend([run(1, 20.0, 0.5, 0.8), run(2, 39.0, 0.9, 1.2)], 2)
    assert "No flat step up to 2 worker processes." in text


def test_plot_is_drawn(tmp_path: Path) -> None:
    """The figure renders to a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    from benchmarks.report.plots import save
    from benchmarks.report.throughput import throughput_plot

    path = save(throughput_plot(doc(SATURATED)), tmp_path / "throughput.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bend_on_a_shared_machine_says_the_embedder_was_starved() -> None:
    """Cores saturated while the benchmark's own processes used little: blame the neighbours."""
    runs = [run(1, 6.4, 0.47, 2.0), run(2, 6.7, 0.53, 2.0)]
    runs[0]["workers_cores"] = runs[1]["workers_cores"] = 0.02
    text = throughput_bend(runs, 2)
    assert "mostly by processes outside the benchmark" in text
    assert "used 0.55 of the 2.0 busy cores" in text
