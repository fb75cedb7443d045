"""End-to-end ``MemoryClient.retrieve`` latency at 100k memories (1,000 users), vs store-only.

Three timings on the same store and the same random (user, query) pairs:

* ``store_only``: ``MemoryStore.search`` with the query vector given (no embedding);
* ``end_to_end_cold``: ``MemoryClient.retrieve`` with distinct query texts, so the query-vector
  LRU never hits and each call embeds its query with the local model (multilingual-e5-small);
* ``end_to_end_cached``: the same calls again, now served from the LRU;
* ``end_to_end_loaded``: ``end_to_end_cold`` again (other distinct texts) while two worker
  processes consolidate on the same machine (:mod:`benchmarks.load`, started and stopped
  here). Goal: loaded p95 <= 3x the idle (cold) p95. The client embeds with the product's
  defaults (``embedding.threads`` 2, passive OpenMP waiting), the load processes with the
  worker's (``embedding.worker_threads`` 1, passive).

``retrieve`` also parses time expressions, fuses, boosts and ranks. The corpus is the one of
:mod:`benchmarks.store_bench` (shared loader in :mod:`benchmarks.corpus`); ``--reuse`` takes
a store that ``store_bench --keep`` left loaded. Goal: p95 <= 30 ms end to end. Anchors: mem0
search p50 148 ms / p95 200 ms; MemoryScope ~500 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.corpus import (
    DEFAULT_WORKDIR,
    Corpus,
    bench_settings,
    drop_store,
    embedder_for,
    open_store,
    query_texts,
    total_count,
)
from benchmarks.load import consolidating_workers
from benchmarks.store_bench import corpus_index, read_marker, search_query, write_marker
from memlane.client import MemoryClient
from memlane.services import Services

NAME = "retrieval_bench"
GOAL_P95_MS = 30.0
GOAL_LOADED_RATIO = 3.0
LOAD_WORKERS = 2
ANCHORS = {"mem0": {"p50_ms": 148.0, "p95_ms": 200.0}, "memoryscope": {"approx_ms": 500.0}}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.retrieval_bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--backend", choices=["sqlite", "elasticsearch", "both"], default="both")
    common.add_es_args(p)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument(
        "--reuse",
        action="store_true",
        help="use the store left by `store_bench --keep` when it holds this corpus",
    )
    p.add_argument("--keep", action="store_true", help="keep the store afterwards")
    p.add_argument(
        "--loaded-queries",
        type=int,
        default=200,
        help="queries timed while two consolidating workers run (0: skip the loaded case)",
    )
    p.add_argument("--quick", action="store_true", help="n=10,000, 200 queries, 50 loaded")
    p.add_argument("--seed", type=int, default=2)
    return p.parse_args(argv)


def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    corpus = Corpus(args.n, args.users)
    settings = bench_settings(
        backend, args.workdir, args.es_url, es_index=corpus_index(corpus.n, corpus.users)
    )
    embedder = embedder_for(settings)
    marker = read_marker(settings, args.workdir) if args.reuse else None
    reused = bool(marker and marker.get("loaded") == corpus.n and marker.get("seed") == corpus.seed)
    store = open_store(settings) if reused else None
    if store is not None and total_count(store) != corpus.n:
        store.close()
        store, reused = None, False
    if store is None:
        drop_store(settings)
        store = open_store(settings)
        corpus.prepare(embedder, args.workdir / "cache")
        common.progress(f"{backend}: loading {corpus.n} memories")
        corpus.load(store, 0, corpus.n, 5000)
    common.progress(f"{backend}: store ready ({'reused' if reused else 'loaded'})")
    client = MemoryClient(settings, Services(settings, store=store, embedder=embedder))
    rng = random.Random(args.seed)
    users = corpus.users_in(corpus.n)
    # Distinct texts that store_bench did not use (another seed), so the LRU starts cold.
    texts = query_texts(args.queries + 50, seed=args.seed + 100)
    pairs = [(rng.choice(users), t) for t in texts]
    out: dict[str, Any] = {
        "backend": backend,
        "reused_store": reused,
        "n": corpus.n,
        "users": corpus.users,
    }
    try:
        for user, text in pairs[:50]:  # warm-up: model, connections, caches
            client.retrieve(user, text, top_k=10)
        pairs = pairs[50:]
        cold, embed_only = [], []
        for user, text in pairs:
            t0 = time.perf_counter()
            client.retrieve(user, text, top_k=10)
            cold.append(time.perf_counter() - t0)
        for _, text in pairs[: min(200, len(pairs))]:
            t0 = time.perf_counter()
            embedder.inner.embed_query(text)
            embed_only.append(time.perf_counter() - t0)
        cached = []
        for user, text in pairs:
            t0 = time.perf_counter()
            client.retrieve(user, text, top_k=10)
            cached.append(time.perf_counter() - t0)
        vectors = [embedder.embed_query(t) for _, t in pairs]
        store_only = []
        for (user, text), vec in zip(pairs, vectors, strict=True):
            q = search_query(text, vec, k=settings.retrieval.candidates)
            t0 = time.perf_counter()
            store.search(user, q)
            store_only.append(time.perf_counter() - t0)
        out.update(
            store_only=common.latency_stats(store_only),
            embed_query_only=common.latency_stats(embed_only),
            end_to_end_cold=common.latency_stats(cold),
            end_to_end_cached=common.latency_stats(cached),
            goal_p95_ms=GOAL_P95_MS,
        )
        out["goal_met"] = out["end_to_end_cold"]["p95_ms"] <= GOAL_P95_MS
        if args.loaded_queries:
            out.update(loaded(client, users, rng, args, out["end_to_end_cold"]["p95_ms"]))
        common.progress(
            f"{backend}: store {out['store_only']['p95_ms']} ms p95, cold "
            f"{out['end_to_end_cold']['p95_ms']} ms p95, cached "
            f"{out['end_to_end_cached']['p95_ms']} ms p95"
        )
    finally:
        store.close()
        if args.keep:
            write_marker(settings, args.workdir, corpus.n, corpus)
        else:
            drop_store(settings)
            from benchmarks.store_bench import marker_path

            marker_path(settings, args.workdir).unlink(missing_ok=True)
    return out


def loaded(
    client: MemoryClient,
    users: Sequence[str],
    rng: random.Random,
    args: argparse.Namespace,
    idle_p95_ms: float,
) -> dict[str, Any]:
    """Cold end-to-end retrieve while ``LOAD_WORKERS`` processes consolidate next to it."""
    texts = query_texts(args.loaded_queries, seed=args.seed + 200)
    timings = []
    with consolidating_workers(LOAD_WORKERS, args.workdir / "load"):
        load_before = os.getloadavg()[0]
        for text in texts:
            t0 = time.perf_counter()
            client.retrieve(rng.choice(users), text, top_k=10)
            timings.append(time.perf_counter() - t0)
        load_after = os.getloadavg()[0]
    stats = common.latency_stats(timings)
    ratio = round(stats["p95_ms"] / idle_p95_ms, 2) if idle_p95_ms else None
    common.progress(f"loaded: p95 {stats['p95_ms']} ms = {ratio}x idle {idle_p95_ms} ms")
    return {
        "end_to_end_loaded": stats,
        "load_workers": LOAD_WORKERS,
        "loadavg_1m": [round(load_before, 1), round(load_after, 1)],
        "loaded_over_idle_p95": ratio,
        "goal_loaded_ratio": GOAL_LOADED_RATIO,
        "loaded_goal_met": ratio is not None and ratio <= GOAL_LOADED_RATIO,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if args.quick:
        args.n, args.queries = min(args.n, 10_000), min(args.queries, 200)
        args.loaded_queries = min(args.loaded_queries, 50)
        args.users = min(args.users, max(1, args.n // 100))
    args.workdir.mkdir(parents=True, exist_ok=True)
    backends = ["sqlite", "elasticsearch"] if args.backend == "both" else [args.backend]
    if "elasticsearch" in backends and not args.es_url:
        if args.backend == "both":
            common.progress("no --es-url: skipping elasticsearch")
            backends = ["sqlite"]
        else:
            raise SystemExit("--es-url is required for --backend elasticsearch")
    results: dict[str, Any] = {"goal_p95_ms": GOAL_P95_MS, "anchors": ANCHORS, "backends": {}}
    for backend in backends:
        results["backends"][backend] = bench_backend(backend, args)
    params = {
        "backends": backends,
        "n": args.n,
        "users": args.users,
        "queries": args.queries,
        "loaded_queries": args.loaded_queries,
        "top_k": 10,
        "reuse": args.reuse,
        "quick": args.quick,
        "seed": args.seed,
    }
    common.write_result(NAME, params, results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
