"""The ingestion section: ``add_turns`` latency, worker throughput and its bend."""

from __future__ import annotations

import itertools

from benchmarks.report.markdown import provenance, table
from benchmarks.report.schema import Latency
from benchmarks.report.schema_system import IngestDoc, IngestResults, Throughput

THROUGHPUT_HEADER = [
    "worker processes",
    "turns",
    "users",
    "batches",
    "seconds",
    "turns/s",
    "cores used by workers",
    "machine cores busy",
    "first turn stored after (s, incl. start-up)",
]


def ingest_section(doc: IngestDoc) -> list[str]:
    """How fast a bot's push returns and how fast workers drain the buffer."""
    res = doc["results"]
    out = ["## Ingestion", "", *provenance(doc), ""]
    out += [
        f"Redis: {res['redis']}. A TCP `redis-server` is "
        + (
            "installed and measured too."
            if res["redis_server_installed"]
            else "not installed on this machine, so only the unix socket is measured."
        ),
        "",
    ]
    out += ["`add_turns` (validation + one atomic Redis script):", ""]
    out += table(
        ["transport", "turns per call", "calls", "p50 ms", "p95 ms", "p99 ms"], add_turns_rows(res)
    )
    out += [
        "Raw-mode throughput with real worker processes (`worker.supervisor.Supervisor`: "
        "a Celery prefork worker with N processes and a beat), from the first push until "
        "every turn is stored:",
        "",
    ]
    out += table(THROUGHPUT_HEADER, [throughput_row(r) for r in res["throughput"]])
    bend = ingest_bend(res)
    if bend:
        out += [bend, ""]
    out += push_delay_lines(res)
    out += [
        "Anchor: mem0 `add` takes seconds and blocks the caller; graphiti takes 12-36 s per "
        "episode. memlane's `add_turns` returns after the Redis write.",
        "",
    ]
    return out


def add_turns_rows(res: IngestResults) -> list[list[object]]:
    """``add_turns`` latency per transport and turns per call."""
    transports: list[tuple[str, dict[str, Latency] | None]] = [
        ("unix", res.get("add_turns_unix")),
        ("tcp", res.get("add_turns_tcp")),
    ]
    return [
        [transport, size, s["n"], s["p50_ms"], s["p95_ms"], s["p99_ms"]]
        for transport, by_size in transports
        if by_size
        for size, s in by_size.items()
    ]


def throughput_row(r: Throughput) -> list[object]:
    """One worker-process count of the throughput run."""
    return [
        r["concurrency"],
        r["turns"],
        r["users"],
        r.get("batches", ""),
        r["drain_s"],
        r["turns_per_s"],
        r.get("cores_used_by_workers", ""),
        r.get("machine_cores_busy", ""),
        r["first_turn_searchable_s"],
    ]


def push_delay_lines(res: IngestResults) -> list[str]:
    """How long a pushed turn takes to become searchable, where it was measured."""
    p = res.get("push_to_searchable")
    if not p or "batching_defaults" not in res:
        return []
    b = res["batching_defaults"]
    return [
        f"Push-to-searchable delay at the default batching settings (idle "
        f"{b['idle_s']} s, dispatch every {b['dispatch_interval_s']} s, max wait "
        f"{b['max_wait_s']} s), {p['n']} samples, {p['concurrency']} worker processes: "
        f"p50 {p['p50_ms'] / 1000:.2f} s, p95 {p['p95_ms'] / 1000:.2f} s "
        f"({p['timed_out']} timed out). Until then, `retrieve(include_pending=True)` "
        "already finds the turn in the buffer.",
        "",
    ]


def ingest_bend(res: IngestResults) -> str:
    """Why throughput does (not) grow with worker processes, from the recorded CPU use."""
    runs = [r for r in res.get("throughput", []) if r.get("turns_per_s")]
    if len(runs) < 2 or "cores_used_by_workers" not in runs[0]:
        return (
            "This run did not record the workers' CPU use; rerun ingest_bench to see whether "
            "the curve is bound by CPU or by the batching timers."
            if len(runs) >= 2
            else ""
        )
    return " ".join(
        part
        for part in (cpu_summary(runs), flat_from(runs), why_bound(runs), one_process(runs))
        if part
    )


def cpu_summary(runs: list[Throughput]) -> str:
    """Gains relative to the first run, and each run's CPU use."""
    base, cores = runs[0], runs[0]["cores"]
    gains = "; ".join(
        f"x{r['concurrency']}: {r['turns_per_s'] / base['turns_per_s']:.2f}x" for r in runs[1:]
    )
    cpu = ", ".join(
        f"x{r['concurrency']} {r['worker_cpu_s_per_1000_turns']} CPU-s per 1,000 turns, "
        f"{r['cores_used_by_workers']} of {cores} cores (machine {r['machine_cores_busy']})"
        for r in runs
    )
    return f"Turns/s relative to x{base['concurrency']}: {gains}. Worker CPU: {cpu}."


def flat_from(runs: list[Throughput]) -> str:
    """The first step where one more process gains less than 20 %."""
    for prev, r in itertools.pairwise(runs):
        if r["turns_per_s"] < 1.2 * prev["turns_per_s"]:
            return (
                f"The curve is flat from {prev['concurrency']} process(es) on "
                f"(x{r['concurrency']} gains less than 20 %)."
            )
    return ""


def why_bound(runs: list[Throughput]) -> str:
    """Whether the workers ran out of CPU or waited for the batching timers."""
    cores = runs[0]["cores"]
    best = max(runs, key=lambda r: r["turns_per_s"])
    per_turn = min(r["worker_cpu_s_per_1000_turns"] for r in runs) / 1000
    ceiling = cores / per_turn if per_turn else 0
    busy = max(r["machine_cores_busy"] or 0 for r in runs)
    if ceiling and (best["turns_per_s"] >= 0.6 * ceiling or busy >= 0.85 * cores):
        return (
            f"Why: the work is CPU-bound. At {per_turn * 1000:.1f} CPU-s per 1,000 turns "
            "(embedding each turn with the local model, Celery and the store write), "
            f"{cores} cores cap raw-mode ingest near {ceiling:.0f} turns/s, and the best run "
            f"reaches {best['turns_per_s'] / ceiling:.0%} of that; more processes than cores "
            "only share the same cores. The rest of the drain is the beat's dispatch interval "
            f"(a batch waits up to {best['timer_wait_s']} s for it)."
        )
    share = best["timer_wait_s"] / best["drain_s"] if best.get("drain_s") else 0
    return (
        f"Why: the workers left CPU idle, so part of the drain is waiting, not work: each "
        f"batch waits at least {best['timer_wait_s']} s for the batching timers "
        f"(idle_s, dispatch_interval_s), {share:.0%} of the {best['drain_s']} s drain."
    )


def one_process(runs: list[Throughput]) -> str:
    """Why a single process may cost more CPU per turn than several."""
    base = runs[0]
    if base["worker_cpu_s_per_1000_turns"] > 1.4 * min(
        r["worker_cpu_s_per_1000_turns"] for r in runs[1:]
    ):
        return (
            "One process costs more CPU per turn than several: it runs the model with one "
            "OpenMP thread per core, and those threads spin while other processes hold the "
            "cores; with N > 1 `memlane worker` sets OMP_NUM_THREADS=1."
        )
    return ""
