"""LoCoMo evidence recall in three memory modes: raw turns, the dataset's observations, both.

* **raw turns**: one memory per dialog turn, built as raw mode builds them
  (:func:`benchmarks.recall_bench.load_locomo_store`), source turn id = the turn's dia_id;
* **observations**: LoCoMo's own per-session observations (``observation`` field of each
  sample: ``session_N_observation`` -> speaker -> ``[text, evidence dia_id(s)]``), imported
  through the public ``import_memories`` API (``MemoryClient.import_memories`` when it
  exists, else :func:`memlane.importer.import_memories`) with ``kind`` observation,
  ``recorded_at`` = the session's date and ``source_turn_ids`` = the normalised evidence ids;
* **both**: the two sets in the same user's memory.

Every question of categories 1-4 with evidence retrieves top-25 through
``MemoryClient.retrieve`` (default settings, ``now`` = the last session's date). Evidence
recall@k = share of the question's evidence ids found among the source turns of the top-k
memories (an observation with several evidence ids contributes all of them). Anchors: LoCoMo
paper (Maharana et al. 2024, DRAGON retriever): dialog turns R@5 56.7 / R@10 66.2 / R@25 76.7,
observations R@5 56.2 / R@10 61.3 / R@25 67.5. Vectors are cached on disk in ``--workdir``
(shared with :mod:`benchmarks.recall_bench`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import common
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
    LocomoSample,
    load_locomo,
    normalise_evidence,
    parse_locomo_date,
)
from benchmarks.recall_bench import (
    load_locomo_store,
    recall,
    summarise_recall,
)
from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.llm.embeddings import build_embedder
from memlane.services import Services

NAME = "recall_modes"
KS = (1, 5, 10, 25)
MODES = ("raw turns", "observations", "both")
ANCHORS = {
    "raw turns": {"r@5": 56.7, "r@10": 66.2, "r@25": 76.7},
    "observations": {"r@5": 56.2, "r@10": 61.3, "r@25": 67.5},
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.recall_modes",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--data", default=common.DEFAULT_DATA, help=common.DATA_HELP)
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--quick", action="store_true", help="the first 2 conversations only")
    p.add_argument("--no-embed-cache", action="store_true")
    return p.parse_args(argv)


def observation_items(raw: dict[str, Any], sample: LocomoSample, settings: Settings) -> list[dict]:
    """The import payload of one sample's observations (empty evidence is kept, as no source)."""
    conv = raw["conversation"]
    items = []
    for key, per_speaker in sorted(raw.get("observation", {}).items()):
        number = int(key.split("_")[1])
        date_key = f"session_{number}_date_time"
        if date_key not in conv or not isinstance(conv.get(f"session_{number}"), list):
            continue
        recorded = parse_locomo_date(conv[date_key], settings.tz)
        for speaker, facts in per_speaker.items():
            for i, fact in enumerate(facts):
                text, evidence = (fact[0], fact[1]) if len(fact) > 1 else (fact[0], [])
                if not str(text).strip():
                    continue
                items.append(
                    {
                        "content": str(text),
                        "kind": "observation",
                        "recorded_at": recorded,
                        "source_turn_ids": normalise_evidence(evidence),
                        "session_id": f"{sample.sample_id}-s{number}",
                        "external_id": f"locomo-obs-{sample.sample_id}-{number}-{speaker}-{i}",
                        "subject": None,
                    }
                )
    return items


def import_observations(
    client: MemoryClient, services: Services, samples: Sequence[LocomoSample], data: Path
) -> dict[str, Any]:
    """Import every sample's observations for user ``locomo-<id>``; returns counts."""
    raw = {
        str(item["sample_id"]): item
        for item in json.loads((data / LOCOMO_FILE).read_text(encoding="utf-8"))
    }
    count = no_evidence = 0
    api = "MemoryClient.import_memories"
    t0 = time.perf_counter()
    for sample in samples:
        items = observation_items(raw[sample.sample_id], sample, services.settings)
        for item in items:
            if not item["source_turn_ids"]:
                no_evidence += 1
            item.pop("subject")
        user = f"locomo-{sample.sample_id}"
        if hasattr(client, "import_memories"):
            client.import_memories(user, items)
        else:  # until the client method lands
            from memlane.importer import import_memories

            api = "memlane.importer.import_memories"
            import_memories(services, user, items)
        count += len(items)
    return {
        "observations": count,
        "without_evidence": no_evidence,
        "api": api,
        "import_s": round(time.perf_counter() - t0, 1),
    }


def evaluate(client: MemoryClient, samples: Sequence[LocomoSample]) -> dict[str, Any]:
    """Evidence recall@k per category and overall (categories 1-4)."""
    per_cat: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    lat = []
    for sample in samples:
        user = f"locomo-{sample.sample_id}"
        for qa in sample.qa:
            if qa.category not in CATEGORIES or not qa.evidence:
                continue
            t0 = time.perf_counter()
            results = client.retrieve(user, qa.question, top_k=max(KS), now=sample.last_date)
            lat.append(time.perf_counter() - t0)
            for k in KS:
                found: list[str] = []
                for r in results[:k]:
                    found.extend(r.memory.source_turn_ids)
                per_cat[qa.category][k].append(recall(found, qa.evidence, len(found)))
    return summarise_recall(per_cat, KS, lat)


def run_mode(
    mode: str, args: argparse.Namespace, data: Path, samples: Sequence[LocomoSample], emb: Any
) -> dict[str, Any]:
    index = f"memlane-bench-modes-{mode.split()[0]}-{int(time.time())}"
    settings = bench_settings("sqlite", args.workdir, es_index=index)
    drop_store(settings)
    store = open_store(settings)
    services = Services(settings, store=store, embedder=emb)
    client = MemoryClient(settings, services)
    out: dict[str, Any] = {"mode": mode}
    try:
        if mode in ("raw turns", "both"):
            out["raw_load"] = load_locomo_store(services, samples, settings)
        if mode in ("observations", "both"):
            out["observation_import"] = import_observations(client, services, samples, data)
        out["defaults"] = evaluate(client, samples)
        common.progress(f"{mode}: {out['defaults']['overall']}")
    finally:
        store.close()
        drop_store(settings)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    data = common.require_data(args.data, LOCOMO_FILE)
    args.workdir.mkdir(parents=True, exist_ok=True)
    settings = bench_settings("sqlite", args.workdir, es_index="memlane-bench-modes")
    emb: Any = build_embedder(settings.embedding)
    if not args.no_embed_cache:
        emb = DiskCachedEmbedder(emb, args.workdir / "cache" / "recall-vectors.json")
    samples = load_locomo(data, settings.tz)
    if args.quick:
        samples = samples[:2]
    results: dict[str, Any] = {
        "conversations": [s.sample_id for s in samples],
        "anchors": ANCHORS,
        "anchor_source": "LoCoMo paper (Maharana et al., ACL 2024), DRAGON retriever",
        "modes": [],
    }
    try:
        for mode in MODES:
            results["modes"].append(run_mode(mode, args, data, samples, emb))
    finally:
        if isinstance(emb, DiskCachedEmbedder):
            emb.save()
    params = {
        "data": args.data,
        "backend": "sqlite",
        "quick": args.quick,
        "top_k": max(KS),
        "retrieval": "defaults",
        "embed_cache": not args.no_embed_cache,
    }
    common.write_result(NAME, params, results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
