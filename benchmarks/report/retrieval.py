"""The end-to-end retrieve latency section."""

from __future__ import annotations

from benchmarks.report.markdown import provenance, table
from benchmarks.report.schema import Latency
from benchmarks.report.schema_system import RetrievalBackend, RetrievalDoc, RetrievalResults


def retrieval_section(doc: RetrievalDoc) -> list[str]:
    """``retrieve`` split into its store and embedding parts, cold and cached, per backend."""
    res = doc["results"]
    out = ["## End-to-end retrieve latency", "", *provenance(doc), ""]
    out += [
        "`MemoryClient.retrieve` (query embedding with the local model, time parsing, "
        "hybrid search, boosts, ranking, top 10) on the corpus above. Cold = distinct query "
        "texts, so the query-vector LRU never hits; cached = the same calls again. "
        "Store-only = `MemoryStore.search` as `retrieve` calls it, vector given. Loaded = "
        "cold again (other texts) while two worker processes consolidate on the same host "
        "(`benchmarks/load.py`: raw-mode batches of 20 turns embedded and upserted in a loop, "
        "with the worker's OpenMP settings), started and stopped by the benchmark; the client "
        "embeds with the defaults (`embedding.threads` 2, passive OpenMP waiting).",
        "",
    ]
    rows: list[list[object]] = []
    for name, b in res["backends"].items():
        for label, s in latency_parts(b):
            rows.append([name, f"{b['n']:,}", label, s["p50_ms"], s["p95_ms"], s["p99_ms"]])
    rows += anchor_rows(res)
    out += table(["backend", "memories", "what", "p50 ms", "p95 ms", "p99 ms"], rows)
    return out


def latency_parts(b: RetrievalBackend) -> list[tuple[str, Latency]]:
    """The measured latencies of one backend, labelled, in table order."""
    parts = [
        ("store only", b["store_only"]),
        ("query embedding only", b["embed_query_only"]),
        ("retrieve, cold LRU", b["end_to_end_cold"]),
        ("retrieve, cached vector", b["end_to_end_cached"]),
    ]
    if "end_to_end_loaded" in b:
        load = "-".join(str(x) for x in b.get("loadavg_1m") or [])
        label = (
            f"retrieve, cold LRU, {b.get('load_workers', 2)} consolidating workers running "
            f"(load average {load}): {b.get('loaded_over_idle_p95')}x the idle p95"
        )
        parts.append((label, b["end_to_end_loaded"]))
    return parts


def anchor_rows(res: RetrievalResults) -> list[list[object]]:
    """Other systems' published latencies."""
    an = res["anchors"]
    return [
        ["mem0 (anchor)", "", "search", an["mem0"]["p50_ms"], an["mem0"]["p95_ms"], ""],
        [
            "MemoryScope (anchor)",
            "",
            "retrieve (claim)",
            f"~{an['memoryscope']['approx_ms']}",
            "",
            "",
        ],
    ]
