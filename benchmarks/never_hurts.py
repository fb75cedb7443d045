"""Fusion never hurts: the defaults against dense-only and BM25-only on every formulation.

For every MADial-Bench zh query formulation of :mod:`benchmarks.recall_bench` and every LoCoMo
memory mode of :mod:`benchmarks.recall_modes` (raw turns, observations, both), R@5 and R@10
of three retrievals through ``MemoryClient.retrieve``: the defaults, dense only and BM25 only
(the benches' ablation rows: one weight 0, query time boost off). The margin is
``defaults - max(dense only, BM25 only)``; the check holds when every margin is at least
``-TOLERANCE`` (1 point), the goal of issue 14.

Stores are built exactly as those benches build them (SQLite, the same loaders). Vectors come
from the local model through a disk cache keyed by text (the model's vectors are
deterministic; the cache only saves time, ``--no-embed-cache`` turns it off). Used by
``make bench`` (results under ``benchmarks/results/never_hurts.json`` and a table in
docs/PERFORMANCE.md) and by ``tests/integration/test_fusion_never_hurts.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.corpus import DEFAULT_WORKDIR, DiskCachedEmbedder, bench_settings, drop_store
from benchmarks.corpus import open_store as open_bench_store
from benchmarks.datasets import (
    LOCOMO_FILE,
    MADIAL_DIALOGUE_FILE,
    MADIAL_MEMORY_FILE,
    load_locomo,
    load_madial,
)
from benchmarks.recall_bench import (
    MADIAL_QUERIES,
    client_for,
    eval_madial,
    load_locomo_store,
    load_madial_store,
    madial_day,
)
from benchmarks.recall_modes import MODES, evaluate, import_observations
from memlane.client import MemoryClient
from memlane.llm.embeddings import build_embedder
from memlane.services import Services

NAME = "never_hurts"
TOLERANCE = 1.0
NO_TIME = {"time_match_boost": 0.0}
CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "dense only": {"bm25_weight": 0.0, **NO_TIME},
    "BM25 only": {"knn_weight": 0.0, **NO_TIME},
}
KS = ("r@5", "r@10")
Row = dict[str, Any]


def margin_row(dataset: str, formulation: str, scores: dict[str, dict[str, float]]) -> Row:
    """One formulation's R@5/R@10 per configuration and the defaults' margins (pure)."""
    row: Row = {"dataset": dataset, "formulation": formulation, **scores}
    for k in KS:
        best_single = max(scores["dense only"][k], scores["BM25 only"][k])
        row[f"margin {k}"] = round(scores["defaults"][k] - best_single, 1)
    return row


def worst_margin(rows: Sequence[Row]) -> float:
    """The smallest margin over every row and k (the check's figure)."""
    return min(row[f"margin {k}"] for row in rows for k in KS)


def run(data: Path, workdir: Path, cache: Path | None, quick: bool = False) -> dict[str, Any]:
    """Measure every formulation and mode; returns the rows, the worst margin and ``ok``."""
    workdir.mkdir(parents=True, exist_ok=True)
    embedder: Any = build_embedder(bench_settings("sqlite", workdir).embedding)
    if cache is not None:
        embedder = DiskCachedEmbedder(embedder, cache)
    try:
        rows = madial_rows(data, workdir, embedder, quick)
        rows += locomo_rows(data, workdir, embedder, quick)
    finally:
        if isinstance(embedder, DiskCachedEmbedder):
            embedder.save()
    worst = worst_margin(rows)
    return {"rows": rows, "worst_margin": worst, "tolerance": TOLERANCE, "ok": worst >= -TOLERANCE}


def _scores(
    evaluate_one: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, dict[str, float]]:
    out = {}
    for name, overrides in CONFIGS.items():
        res = evaluate_one(overrides)
        out[name] = {k: res[k] for k in KS}
    return out


def madial_rows(data: Path, workdir: Path, embedder: Any, quick: bool) -> list[Row]:
    """One row per MADial query formulation (its own SQLite store)."""
    settings = bench_settings("sqlite", workdir, es_index=f"{NAME}-madial")
    drop_store(settings)
    store = open_bench_store(settings)
    try:
        dialogues, memories = load_madial(data)
        if quick:
            dialogues = dialogues[:30]
        mapping = load_madial_store(
            Services(settings, store=store, embedder=embedder), memories, settings
        )
        now_by_user: dict[int, datetime] = {}
        for m in memories:
            day = madial_day(m.time, settings) + timedelta(days=1)
            now_by_user[m.user_id] = max(now_by_user.get(m.user_id, day), day)
        rows = []
        for name, make_query in MADIAL_QUERIES.items():
            scores = _scores(
                lambda o, q=make_query: eval_madial(
                    client_for(settings, o, store, embedder), dialogues, mapping, now_by_user, q
                )
            )
            rows.append(margin_row("MADial-Bench zh", name, scores))
            common.progress(f"never-hurts MADial '{name}': {rows[-1]}")
        return rows
    finally:
        store.close()
        drop_store(settings)


def locomo_rows(data: Path, workdir: Path, embedder: Any, quick: bool) -> list[Row]:
    """One row per LoCoMo memory mode (raw turns, observations, both), each its own store."""
    return [locomo_row(mode, data, workdir, embedder, quick) for mode in MODES]


def locomo_row(mode: str, data: Path, workdir: Path, embedder: Any, quick: bool) -> Row:
    """The row of one LoCoMo memory mode, on a store of its own (as recall_modes builds it)."""
    settings = bench_settings("sqlite", workdir, es_index=f"{NAME}-{mode.split()[0]}")
    drop_store(settings)
    store = open_bench_store(settings)
    services = Services(settings, store=store, embedder=embedder)
    try:
        samples = load_locomo(data, settings.tz)[: 2 if quick else None]
        if mode in ("raw turns", "both"):
            load_locomo_store(services, samples, settings)
        if mode in ("observations", "both"):
            import_observations(MemoryClient(settings, services), services, samples, data)
        scores = _scores(
            lambda o: evaluate(client_for(settings, o, store, embedder), samples)["overall"]
        )
        row = margin_row("LoCoMo", mode, scores)
        common.progress(f"never-hurts LoCoMo {mode}: {row}")
        return row
    finally:
        store.close()
        drop_store(settings)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.never_hurts",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--data", default=common.DEFAULT_DATA, help=common.DATA_HELP)
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--quick", action="store_true", help="2 LoCoMo conversations, 30 dialogues")
    p.add_argument("--no-embed-cache", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check, write ``benchmarks/results/never_hurts.json``; exit 1 if it fails."""
    args = parse_args(argv)
    started = time.monotonic()
    data = common.require_data(args.data, LOCOMO_FILE, MADIAL_DIALOGUE_FILE, MADIAL_MEMORY_FILE)
    cache = None if args.no_embed_cache else args.workdir / "cache" / "recall-vectors.json"
    results = run(data, args.workdir, cache, args.quick)
    params = {
        "data": args.data,
        "backend": "sqlite",
        "quick": args.quick,
        "embed_cache": cache is not None,
    }
    common.write_result(NAME, params, results, started)
    common.progress(f"never hurts: worst margin {results['worst_margin']} (ok: {results['ok']})")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
