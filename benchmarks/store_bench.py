"""Store-only performance: bulk-load rate and hybrid search latency, SQLite and Elasticsearch.

Loads the synthetic corpus of :mod:`benchmarks.corpus` (zh+en template memories, 384-d vectors
derived from ~2,000 real local-model embeddings plus noise) through the public
``MemoryStore.upsert``, then times ``MemoryStore.search`` (kNN + BM25 fused by z-scores,
the default 50 candidates per component) for queries over random users, with the query
vector given (no embedding in the timing). With ``--sizes`` the same store is grown step by
step and measured at each size, with the RSS of this process (and of the Elasticsearch JVM
when ``--es-state`` names the node's state dir). Goal: p95 <= 15 ms on both backends.
"""

from __future__ import annotations

import argparse
import json
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
from memlane.config import Settings, load_settings
from memlane.llm.embeddings import CachingEmbedder
from memlane.store.base import MemoryStore, SearchQuery
from memlane.store.fusion import Fusion

NAME = "store_bench"
GOAL_P95_MS = 15.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.store_bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--backend", choices=["sqlite", "elasticsearch", "both"], default="both")
    common.add_es_args(p)
    p.add_argument(
        "--es-state",
        default=None,
        help="es-node state dir, to report the JVM's RSS (e.g. /tmp/esstate-bench)",
    )
    p.add_argument("--n", type=int, default=100_000, help="memories (default: %(default)s)")
    p.add_argument("--users", type=int, default=1000, help="users (default: %(default)s)")
    p.add_argument(
        "--sizes",
        default=None,
        help="comma list of corpus sizes to measure as the store grows, e.g. "
        "1000,10000,100000 (the last one defaults to --n)",
    )
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--chunk", type=int, default=5000, help="memories per upsert call")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the loaded stores for benchmarks.retrieval_bench (--reuse)",
    )
    p.add_argument("--quick", action="store_true", help="n=10,000, 200 queries")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--es-variant-no-vectors",
        action="store_true",
        help="also time Elasticsearch searches with the embedding excluded from "
        "_source (a proposed change; memlane's store currently fetches it)",
    )
    return p.parse_args(argv)


def corpus_index(n: int, users: int) -> str:
    """The store name of a corpus (its SQLite file / Elasticsearch alias)."""
    return f"memlane-bench-corpus-{n}-{users}"


def marker_path(settings: Settings, workdir: Path) -> Path:
    return workdir / f"{settings.store.es_index}.{settings.store.backend}.loaded.json"


def read_marker(settings: Settings, workdir: Path) -> dict[str, Any] | None:
    path = marker_path(settings, workdir)
    return json.loads(path.read_text()) if path.exists() else None


def write_marker(settings: Settings, workdir: Path, loaded: int, corpus: Corpus) -> None:
    marker_path(settings, workdir).write_text(
        json.dumps({"loaded": loaded, "n": corpus.n, "users": corpus.users, "seed": corpus.seed})
    )


def search_query(text: str, vector: Sequence[float], k: int = 10) -> SearchQuery:
    """A hybrid store query with memlane's default retrieval weights."""
    r = load_settings(environ={}).retrieval
    return SearchQuery(
        text=text,
        vector=vector,
        k=k,
        candidates=r.candidates,
        fusion=Fusion.of(r),
    )


def time_searches(
    store: MemoryStore,
    users: Sequence[str],
    queries: Sequence[str],
    vectors: Sequence[Sequence[float]],
    n: int,
    seed: int,
) -> dict[str, Any]:
    """Latency of ``n`` searches over random users (after 50 warm-up searches)."""
    rng = random.Random(seed)
    picks = [(rng.choice(users), rng.randrange(len(queries))) for _ in range(n + 50)]
    samples = []
    hits = 0
    for j, (user, qi) in enumerate(picks):
        q = search_query(queries[qi], vectors[qi])
        t0 = time.perf_counter()
        found = store.search(user, q)
        dt = time.perf_counter() - t0
        if j >= 50:
            samples.append(dt)
            hits += len(found)
    return {**common.latency_stats(samples), "mean_hits": round(hits / max(1, n), 2)}


def time_without_vectors(
    store: MemoryStore,
    users: Sequence[str],
    queries: Sequence[str],
    vectors: Sequence[Sequence[float]],
    n: int,
    seed: int,
) -> dict[str, Any]:
    """Search latency when kNN/BM25 bodies leave the 384 floats out of ``_source``."""
    import memlane.store.es_mapping as mapping

    knn, bm25 = mapping.knn_body, mapping.bm25_body
    mapping.knn_body = lambda v, f, s, with_embedding=False: knn(v, f, s, False)  # type: ignore
    mapping.bm25_body = lambda t, f, s, with_embedding=False: bm25(t, f, s, False)  # type: ignore
    try:
        return time_searches(store, users, queries, vectors, n, seed)
    finally:
        mapping.knn_body, mapping.bm25_body = knn, bm25


def es_pid(state: str | None) -> int | None:
    if not state:
        return None
    try:
        return int((Path(state) / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def bench_backend(
    backend: str,
    args: argparse.Namespace,
    sizes: list[int],
    embedder: CachingEmbedder,
    queries: list[str],
    vectors: list[list[float]],
) -> dict[str, Any]:
    corpus = Corpus(max(sizes), args.users)
    corpus.prepare(embedder, args.workdir / "cache")
    settings = bench_settings(
        backend, args.workdir, args.es_url, es_index=corpus_index(corpus.n, corpus.users)
    )
    drop_store(settings)
    marker_path(settings, args.workdir).unlink(missing_ok=True)
    store = open_store(settings)
    out: dict[str, Any] = {
        "backend": backend,
        "users": corpus.users,
        "per_user": corpus.per_user,
        "steps": [],
    }
    loaded = 0
    try:
        for size in sizes:
            common.progress(f"{backend}: loading {loaded}..{size}")
            spent = corpus.load(store, loaded, size, args.chunk)
            rate = (size - loaded) / spent if spent else 0.0
            loaded = size
            count = total_count(store)
            users = corpus.users_in(size)
            lat = time_searches(store, users, queries, vectors, args.queries, args.seed)
            step = {
                "size": size,
                "count": count,
                "users": len(users),
                "load_memories": size - (out["steps"][-1]["size"] if out["steps"] else 0),
                "load_s": round(spent, 1),
                "load_rate_per_s": round(rate, 1),
                "search": lat,
                "bench_rss_mib": common.rss_mib(),
            }
            pid = es_pid(args.es_state) if backend == "elasticsearch" else None
            if pid:
                step["es_jvm_rss_mib"] = common.pid_rss_mib(pid)
            if backend == "sqlite":
                db = settings.sqlite_file
                step["sqlite_file_mib"] = round(
                    sum(
                        Path(str(db) + s).stat().st_size
                        for s in ("", "-wal")
                        if Path(str(db) + s).exists()
                    )
                    / 2**20,
                    1,
                )
            common.progress(
                f"{backend} @ {size}: load {rate:.0f}/s, search p50 "
                f"{lat.get('p50_ms')} ms p95 {lat.get('p95_ms')} ms"
            )
            out["steps"].append(step)
        if backend == "elasticsearch" and args.es_variant_no_vectors:
            out["variant_no_vectors_in_source"] = time_without_vectors(
                store, corpus.users_in(loaded), queries, vectors, args.queries, args.seed
            )
            common.progress(
                f"elasticsearch without vectors in _source: {out['variant_no_vectors_in_source']}"
            )
        total_s = sum(s["load_s"] for s in out["steps"])
        out["bulk_load_rate_per_s"] = round(loaded / total_s, 1) if total_s else None
        out["final"] = out["steps"][-1]
        out["goal_p95_ms"] = GOAL_P95_MS
        out["goal_met"] = out["final"]["search"]["p95_ms"] <= GOAL_P95_MS
    finally:
        store.close()
        if args.keep:
            write_marker(settings, args.workdir, loaded, corpus)
        else:
            drop_store(settings)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if args.quick:
        args.n, args.queries = min(args.n, 10_000), min(args.queries, 200)
        args.users = min(args.users, max(1, args.n // 100))
    sizes = common.parse_csv_ints(args.sizes) if args.sizes else [args.n]
    if args.quick:
        sizes = [s for s in sizes if s <= args.n] or [args.n]
    args.workdir.mkdir(parents=True, exist_ok=True)
    backends = ["sqlite", "elasticsearch"] if args.backend == "both" else [args.backend]
    if "elasticsearch" in backends and not args.es_url:
        if args.backend == "both":
            common.progress("no --es-url: skipping elasticsearch")
            backends = ["sqlite"]
        else:
            raise SystemExit("--es-url is required for --backend elasticsearch")
    embedder = embedder_for(bench_settings("sqlite", args.workdir))
    queries = query_texts(1000)
    common.progress(f"embedding {len(queries)} query texts")
    vectors = embedder.inner.embed_passages([])  # warm the model
    vectors = [embedder.embed_query(q) for q in queries]
    results: dict[str, Any] = {"goal_p95_ms": GOAL_P95_MS, "backends": {}}
    for backend in backends:
        results["backends"][backend] = bench_backend(
            backend, args, sizes, embedder, queries, vectors
        )
    params = {
        "backends": backends,
        "n": args.n,
        "users": args.users,
        "sizes": sizes,
        "queries": args.queries,
        "chunk": args.chunk,
        "k": 10,
        "quick": args.quick,
        "seed": args.seed,
    }
    common.write_result(NAME, params, results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
