"""Retrieval quality: LoCoMo evidence recall (raw mode) and MADial-Bench zh memory recall.

What it measures is *retrieval*, not ingestion: memories are built the way raw mode builds them
(``memlane.buffer.raw.raw_memories`` on validated turns for LoCoMo, embedded as
``raw_passages``: each turn with the previous turn of its session; ``memlane.importer`` for the
MADial-Bench event memories), embedded in batches as passages, and upserted straight into the
store; Redis and Celery are not involved. Questions go through ``MemoryClient.retrieve``, the
same path a bot uses (time parsing, hybrid search, z-score fusion, boosts).

LoCoMo (dialog turns as units): one user per conversation, one memory per turn with content
``Speaker: text``, recorded at the session's date plus i seconds, source turn id = dia_id.
Each question of categories 1-4 retrieves top-25 with ``now`` = the last session's date.
Evidence recall@k = share of the question's (normalised) evidence ids among the source turns
of the top-k. Anchor: LoCoMo paper, DRAGON, R@5 56.7 / R@10 66.2 / R@25 76.7.

MADial-Bench zh: the memories are the user's events (recorded_at = event_time = the event's
date); the query is built from the dialogue before the test turn (several ways are compared);
recall@k = |top-k ∩ relevant-id| / |relevant-id| as in the benchmark's own scorer. Anchors
(recomputed from the benchmark's top-20 files): BGE-M3 58.6 / 71.4, OpenAI 69.4 / 82.4.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.ablation import locomo_parts, madial_parts
from benchmarks.corpus import (
    DEFAULT_WORKDIR,
    DiskCachedEmbedder,
    bench_settings,
    drop_store,
    open_store,
)
from benchmarks.datasets import (
    CATEGORIES,
    LOCOMO_FILE,
    MADIAL_DIALOGUE_FILE,
    MADIAL_MEMORY_FILE,
    LocomoSample,
    MadialDialogue,
    MadialMemory,
    load_locomo,
    load_madial,
    madial_utterances,
)
from memlane.buffer.raw import raw_memories, raw_passages
from memlane.buffer.turns import BufferedTurn
from memlane.client import MemoryClient
from memlane.config import Settings, load_settings
from memlane.importer import import_memories
from memlane.llm.embeddings import CachingEmbedder, build_embedder
from memlane.services import Services
from memlane.store.base import MemoryStore
from memlane.validation import validate_turns

NAME = "recall_bench"
LOCOMO_KS = (1, 5, 10, 25)
MADIAL_KS = (1, 5, 10, 20)
ANCHORS = {
    "locomo_dragon": {"r@5": 56.7, "r@10": 66.2, "r@25": 76.7},
    "madial_bge_m3": {"r@5": 58.6, "r@10": 71.4},
    "madial_openai": {"r@5": 69.4, "r@10": 82.4},
}
# Issue 14's goals (defaults, no per-dataset switches).
GOALS = {
    "locomo_r@10": 72.0,
    "locomo_multi_hop_r@10": 50.0,
    "locomo_both_r@10": 75.0,
    "madial_r@5": 70.0,
    "madial_r@10": 83.0,
}

# Ablation: component weights with the query time boost off, then the defaults (time boost on).
NO_TIME = {"time_match_boost": 0.0}
DEFAULTS_NAME = "fused + time parsing (defaults)"
ABLATION: list[tuple[str, dict[str, Any]]] = [
    ("dense only", {"bm25_weight": 0.0, **NO_TIME}),
    ("BM25 only", {"knn_weight": 0.0, **NO_TIME}),
    ("fused", {**NO_TIME}),
    ("fused + time parsing (defaults)", {}),
    ("defaults without the speaker boost", {"speaker_boost": 0.0}),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.recall_bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Measures retrieval only: memories are loaded directly into the store, not "
        "through Redis/Celery.",
    )
    p.add_argument("--data", default=common.DEFAULT_DATA, help=common.DATA_HELP)
    p.add_argument("--backend", choices=["sqlite", "elasticsearch"], default="sqlite")
    common.add_es_args(p)
    p.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="scratch directory for the SQLite file (default: %(default)s)",
    )
    p.add_argument("--top-k", type=int, default=25)
    p.add_argument(
        "--quick", action="store_true", help="2 LoCoMo conversations, 30 MADial dialogues, no sweep"
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="also sweep the BM25 weight and recency weight and report the best settings",
    )
    p.add_argument("--skip-locomo", action="store_true")
    p.add_argument("--skip-madial", action="store_true")
    p.add_argument(
        "--no-embed-cache",
        action="store_true",
        help="do not reuse vectors cached in --workdir from earlier runs (the local model's "
        "vectors are deterministic; the cache only saves time)",
    )
    p.add_argument(
        "--output-name",
        default=NAME,
        help="results file name under benchmarks/results (default: %(default)s)",
    )
    return p.parse_args(argv)


# -- loading --------------------------------------------------------------------------------


def load_locomo_store(
    services: Services, samples: Sequence[LocomoSample], settings: Settings
) -> dict[str, Any]:
    """Raw-mode memories for every turn, embedded as passages in batches, upserted."""
    stats = {"turns": 0, "skipped_blank": 0, "memories": 0, "embed_s": 0.0, "upsert_s": 0.0}
    for sample in samples:
        user = f"locomo-{sample.sample_id}"
        turns = []
        for t in sample.turns:
            if not t.text.strip():
                stats["skipped_blank"] += 1
                continue
            # Both speakers are people (neither is "the assistant"), so both get role user and
            # the same importance; the name goes first in the content, as raw mode stores it.
            turns.append(
                {
                    "role": "user",
                    "content": t.text,
                    "ts": t.ts,
                    "turn_id": t.dia_id,
                    "name": t.speaker,
                    "session_id": f"{sample.sample_id}-s{t.session}",
                }
            )
        valid = validate_turns(user, turns, None, settings.limits, settings.tz)
        entries = [BufferedTurn(f"{i}-0", turn) for i, turn in enumerate(valid)]
        memories = raw_memories(
            user, f"bench-{sample.sample_id}", entries, datetime.now(settings.tz)
        )
        t0 = time.perf_counter()
        # As raw mode embeds them: each turn with the previous turn of its session.
        vectors = services.embedder.embed_passages(raw_passages(entries))
        stats["embed_s"] += time.perf_counter() - t0
        for memory, vector in zip(memories, vectors, strict=True):
            memory.embedding = vector
        t0 = time.perf_counter()
        for i in range(0, len(memories), 500):
            services.store.upsert(memories[i : i + 500])
        stats["upsert_s"] += time.perf_counter() - t0
        stats["turns"] += len(sample.turns)
        stats["memories"] += len(memories)
    stats["embed_s"] = round(stats["embed_s"], 1)
    stats["upsert_s"] = round(stats["upsert_s"], 1)
    return stats


def madial_day(text: str, settings: Settings) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=settings.tz)


def load_madial_store(
    services: Services, memories: Sequence[MadialMemory], settings: Settings
) -> dict[str, str]:
    """Import every user's event memories; returns memory id -> MADial id."""
    by_user: dict[int, list[MadialMemory]] = defaultdict(list)
    for m in memories:
        by_user[m.user_id].append(m)
    mapping: dict[str, str] = {}
    for uid, items in by_user.items():
        payload = [
            {
                "content": m.event,
                "recorded_at": madial_day(m.time, settings),
                "event_time": madial_day(m.time, settings),
                "time_granularity": "day",
                "kind": "observation",
                "external_id": f"madial-{m.memory_id}",
            }
            for m in items
        ]
        ids = import_memories(services, f"madial-{uid}", payload)
        mapping.update({mid: m.memory_id for mid, m in zip(ids, items, strict=True)})
    return mapping


# -- evaluation -----------------------------------------------------------------------------


def client_for(
    base: Settings, overrides: dict[str, Any], store: MemoryStore, embedder: CachingEmbedder
) -> MemoryClient:
    """A MemoryClient on the shared store and embedder with retrieval settings overridden."""
    retrieval = {**base.retrieval.model_dump(), **overrides}
    settings = base.model_copy(update={"retrieval": type(base.retrieval)(**retrieval)})
    return MemoryClient(settings, Services(settings, store=store, embedder=embedder))


def recall(found: Sequence[str], wanted: Sequence[str], k: int) -> float:
    """Share of ``wanted`` among the first ``k`` of ``found``."""
    if not wanted:
        return 0.0
    top = set(found[:k])
    return sum(1 for w in set(wanted) if w in top) / len(set(wanted))


def eval_locomo(
    client: MemoryClient, samples: Sequence[LocomoSample], top_k: int
) -> dict[str, Any]:
    """Evidence recall@k per category and overall (categories 1-4)."""
    per_cat: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    latencies: list[float] = []
    no_evidence = 0
    for sample in samples:
        user = f"locomo-{sample.sample_id}"
        for qa in sample.qa:
            if qa.category not in CATEGORIES:
                continue
            if not qa.evidence:
                no_evidence += 1
                continue
            t0 = time.perf_counter()
            results = client.retrieve(user, qa.question, top_k=top_k, now=sample.last_date)
            latencies.append(time.perf_counter() - t0)
            found = [r.memory.source_turn_ids[0] for r in results if r.memory.source_turn_ids]
            for k in LOCOMO_KS:
                per_cat[qa.category][k].append(recall(found, qa.evidence, k))
    out = summarise_recall(per_cat, LOCOMO_KS, latencies)
    out["no_evidence_skipped"] = no_evidence
    return out


def summarise_recall(
    per_cat: dict[int, dict[int, list[float]]], ks: Sequence[int], latencies: list[float]
) -> dict[str, Any]:
    """Recall@k per LoCoMo category and overall (in percent), plus the query latencies."""
    out: dict[str, Any] = {"per_category": {}}
    allk: dict[int, list[float]] = defaultdict(list)
    for cat in sorted(per_cat):
        out["per_category"][CATEGORIES[cat]] = {
            "n": len(per_cat[cat][ks[0]]),
            **{f"r@{k}": round(100 * common.mean(per_cat[cat][k]), 1) for k in ks},
        }
        for k in ks:
            allk[k].extend(per_cat[cat][k])
    out["overall"] = {
        "n": len(allk[ks[0]]),
        **{f"r@{k}": round(100 * common.mean(allk[k]), 1) for k in ks},
    }
    out["latency"] = common.latency_stats(latencies)
    return out


def _last_user(d: MadialDialogue) -> str:
    utts = madial_utterances(d.lines[: d.test_turn])
    users = [t for s, t in utts if s.lower() != "assistant"]
    return users[-1] if users else (utts[-1][1] if utts else "")


def _last_n(d: MadialDialogue, n: int) -> str:
    utts = madial_utterances(d.lines[: d.test_turn])
    return "\n".join(t for _, t in utts[-n:])


def _user_lines(d: MadialDialogue) -> str:
    utts = madial_utterances(d.lines[: d.test_turn])
    return "\n".join(t for s, t in utts if s.lower() != "assistant")


def _clean_full(d: MadialDialogue) -> str:
    return "\n".join(t for _, t in madial_utterances(d.lines[: d.test_turn]))


MADIAL_QUERIES: dict[str, Callable[[MadialDialogue], str]] = {
    "full dialogue, raw lines (as the benchmark's scorer)": lambda d: "".join(
        d.lines[: d.test_turn]
    ),
    "full dialogue, cleaned": _clean_full,
    "user lines only": _user_lines,
    "last 3 lines": lambda d: _last_n(d, 3),
    "last 2 lines": lambda d: _last_n(d, 2),
    "last user utterance": _last_user,
}


def eval_madial(
    client: MemoryClient,
    dialogues: Sequence[MadialDialogue],
    mapping: dict[str, str],
    now_by_user: dict[int, datetime],
    make_query: Callable[[MadialDialogue], str],
) -> dict[str, Any]:
    scores: dict[int, list[float]] = defaultdict(list)
    latencies = []
    for d in dialogues:
        query = make_query(d)
        t0 = time.perf_counter()
        results = client.retrieve(
            f"madial-{d.user_id}", query, top_k=max(MADIAL_KS), now=now_by_user[d.user_id]
        )
        latencies.append(time.perf_counter() - t0)
        found = [mapping.get(r.memory.id, "") for r in results]
        for k in MADIAL_KS:
            scores[k].append(recall(found, d.relevant, k))
    return {
        "n": len(dialogues),
        **{f"r@{k}": round(100 * common.mean(scores[k]), 1) for k in MADIAL_KS},
        "latency": common.latency_stats(latencies),
    }


SWEEP_GRID = {
    "bm25_weight": [0.3, 0.6, 1.0],
    "recency_weight": [0.0, 0.05],
}


def sweep(run: Callable[[dict[str, Any]], dict[str, Any]], key: str) -> list[dict[str, Any]]:
    rows = []
    names = list(SWEEP_GRID)
    for values in itertools.product(*(SWEEP_GRID[n] for n in names)):
        overrides = dict(zip(names, values, strict=True))
        res = run(overrides)
        rows.append({"settings": overrides, **{k: v for k, v in res.items() if k.startswith("r@")}})
    rows.sort(key=lambda r: -r[key])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    data = common.require_data(args.data, LOCOMO_FILE, MADIAL_DIALOGUE_FILE, MADIAL_MEMORY_FILE)
    args.workdir.mkdir(parents=True, exist_ok=True)
    index = f"memlane-bench-recall-{int(time.time())}"
    settings = bench_settings(args.backend, args.workdir, args.es_url, es_index=index)
    drop_store(settings)
    store = open_store(settings)
    embedder: Any = build_embedder(settings.embedding)
    if not args.no_embed_cache:
        embedder = DiskCachedEmbedder(embedder, args.workdir / "cache" / "recall-vectors.json")
    services = Services(settings, store=store, embedder=embedder)
    results: dict[str, Any] = {"backend": args.backend, "anchors": ANCHORS, "goals": GOALS}
    try:
        if not args.skip_locomo:
            results["locomo"] = run_locomo(args, data, settings, services, store, embedder)
        if not args.skip_madial:
            results["madial"] = run_madial(args, data, settings, services, store, embedder)
    finally:
        store.close()
        drop_store(settings)
        if isinstance(embedder, DiskCachedEmbedder):
            embedder.save()
    params = {
        "backend": args.backend,
        "data": args.data,
        "top_k": args.top_k,
        "quick": args.quick,
        "sweep": args.sweep,
        "embed_cache": not args.no_embed_cache,
        "defaults": load_settings(environ={}).retrieval.model_dump(),
    }
    common.write_result(args.output_name, params, results, started)
    return 0


def run_locomo(
    args: argparse.Namespace,
    data: Path,
    settings: Settings,
    services: Services,
    store: MemoryStore,
    embedder: CachingEmbedder,
) -> dict[str, Any]:
    samples = load_locomo(data, settings.tz)
    if args.quick:
        samples = samples[:2]
    common.progress(f"LoCoMo: loading {sum(len(s.turns) for s in samples)} turns")
    load = load_locomo_store(services, samples, settings)
    common.progress(f"LoCoMo: loaded {load}")
    out: dict[str, Any] = {
        "conversations": [s.sample_id for s in samples],
        "load": load,
        "mode": "raw (dialog turns as units)",
        "ablation": [],
    }
    for name, overrides in ABLATION:
        res = eval_locomo(client_for(settings, overrides, store, embedder), samples, args.top_k)
        common.progress(f"LoCoMo {name}: {res['overall']}")
        out["ablation"].append({"name": name, "overrides": overrides, **res})
    if args.sweep and not args.quick:
        out["sweep"] = sweep(
            lambda o: eval_locomo(client_for(settings, o, store, embedder), samples, args.top_k)[
                "overall"
            ],
            "r@10",
        )
        common.progress(f"LoCoMo sweep best: {out['sweep'][:3]}")
    out["parts"] = locomo_parts(
        settings,
        store,
        embedder,
        samples,
        lambda client: eval_locomo(client, samples, args.top_k),
        lambda overrides: client_for(settings, overrides, store, embedder),
    )
    for row in out["parts"]:
        common.progress(f"LoCoMo {row['name']}: {row['overall']}")
    return out


def run_madial(
    args: argparse.Namespace,
    data: Path,
    settings: Settings,
    services: Services,
    store: MemoryStore,
    embedder: CachingEmbedder,
) -> dict[str, Any]:
    dialogues, memories = load_madial(data)
    if args.quick:
        dialogues = dialogues[:30]
    common.progress(f"MADial: importing {len(memories)} memories")
    mapping = load_madial_store(services, memories, settings)
    # "now" for time expressions: the day after the user's latest event.
    now_by_user: dict[int, datetime] = {}
    for m in memories:
        day = madial_day(m.time, settings) + timedelta(days=1)
        now_by_user[m.user_id] = max(now_by_user.get(m.user_id, day), day)
    out: dict[str, Any] = {
        "dialogues": len(dialogues),
        "memories": len(memories),
        "query_variants": [],
        "ablation": [],
    }
    default = client_for(settings, {}, store, embedder)
    for name, fn in MADIAL_QUERIES.items():
        res = eval_madial(default, dialogues, mapping, now_by_user, fn)
        common.progress(f"MADial query '{name}': r@5 {res['r@5']} r@10 {res['r@10']}")
        out["query_variants"].append({"name": name, **res})
    best = max(out["query_variants"], key=lambda r: (r["r@10"], r["r@5"]))
    out["chosen_query"] = best["name"]
    fn = MADIAL_QUERIES[best["name"]]
    for name, overrides in ABLATION:
        res = eval_madial(
            client_for(settings, overrides, store, embedder), dialogues, mapping, now_by_user, fn
        )
        common.progress(f"MADial {name}: r@5 {res['r@5']} r@10 {res['r@10']}")
        out["ablation"].append({"name": name, "overrides": overrides, **res})
    if args.sweep and not args.quick:
        out["sweep"] = sweep(
            lambda o: eval_madial(
                client_for(settings, o, store, embedder), dialogues, mapping, now_by_user, fn
            ),
            "r@10",
        )
        common.progress(f"MADial sweep best: {out['sweep'][:3]}")
    out["parts"] = madial_parts(
        settings,
        store,
        embedder,
        lambda client: eval_madial(client, dialogues, mapping, now_by_user, fn),
        lambda overrides: client_for(settings, overrides, store, embedder),
    )
    for row in out["parts"]:
        common.progress(f"MADial {row['name']}: r@5 {row['r@5']} r@10 {row['r@10']}")
    return out


if __name__ == "__main__":
    sys.exit(main())
