"""The store section: bulk load rate and search latency against corpus size."""

from __future__ import annotations

from benchmarks.report.markdown import provenance, table
from benchmarks.report.schema_system import StoreDoc, StoreResults, StoreStep

STORE_HEADER = [
    "backend",
    "memories",
    "users",
    "load /s",
    "search p50 ms",
    "p95 ms",
    "p99 ms",
    "bench RSS MiB",
    "ES JVM RSS / SQLite file MiB",
]


def store_section(doc: StoreDoc) -> list[str]:
    """A row per backend and corpus size, and the no-vectors variant where measured."""
    res = doc["results"]
    out = ["## Store: bulk load and search latency", "", *provenance(doc), ""]
    out += [
        "Synthetic zh+en memories (templates; vectors from ~2,000 real local-model "
        "embeddings plus noise), loaded with `MemoryStore.upsert` in chunks of "
        f"{doc['params']['chunk']}; then {doc['params']['queries']} hybrid searches "
        "(kNN + BM25 fused by z-scores, 50 candidates each) over random users, query vector "
        "given. The corpus grows in users (~100 memories each).",
        "",
    ]
    rows = [step_row(name, s) for name, b in res["backends"].items() for s in b["steps"]]
    out += table(STORE_HEADER, rows)
    out += variant_lines(res)
    out += ["![latency vs corpus size](img/store_latency.png)", ""]
    return out


def step_row(name: str, s: StoreStep) -> list[object]:
    """One corpus size of one backend."""
    return [
        name,
        f"{s['size']:,}",
        s["users"],
        s["load_rate_per_s"],
        s["search"]["p50_ms"],
        s["search"]["p95_ms"],
        s["search"]["p99_ms"],
        s["bench_rss_mib"],
        s.get("es_jvm_rss_mib", s.get("sqlite_file_mib")),
    ]


def variant_lines(res: StoreResults) -> list[str]:
    """The search measured again without embeddings in ``_source``, where it was."""
    out: list[str] = []
    for name, b in res["backends"].items():
        v = b.get("variant_no_vectors_in_source")
        if v:
            out += [
                f"Proposed change, measured on the same {name} index: leaving `embedding` "
                f"out of `_source` in the kNN and BM25 requests gives p50 {v['p50_ms']} ms, "
                f"p95 {v['p95_ms']} ms (vs {b['final']['search']['p50_ms']} / "
                f"{b['final']['search']['p95_ms']} ms).",
                "",
            ]
    return out


def store_bend(name: str, steps: list[StoreStep]) -> str:
    """Whether search latency follows the user's memories or the whole corpus."""
    if len(steps) < 2:
        return ""
    a, b = steps[-2], steps[-1]
    size_x = b["size"] / a["size"]
    lat_x = b["search"]["p50_ms"] / max(a["search"]["p50_ms"], 1e-9)
    if lat_x < 1.5:
        return (
            f"Nearly flat from {a['size']:,} to {b['size']:,} ({lat_x:.1f}x for {size_x:.0f}x "
            "the memories): each user keeps ~100 memories and the search is scoped to the user, "
            "so the cost follows the user's memories, not the corpus."
        )
    return (
        f"p50 grows {lat_x:.1f}x for {size_x:.0f}x the memories between {a['size']:,} and "
        f"{b['size']:,}: part of the search still touches the whole corpus"
        + (" (the JVM heap and segment merges at this size)" if name == "elasticsearch" else "")
        + "."
    )
