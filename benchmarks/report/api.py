"""The HTTP API section: push and search over HTTP next to the in-process client."""

from __future__ import annotations

from benchmarks.report.markdown import mark, provenance, table
from benchmarks.report.schema_api import ApiDoc, ApiLevel

HEADER = [
    "clients",
    "push p50 ms (in-process / HTTP)",
    "push p99 ms (in-process / HTTP)",
    "pushes/s HTTP (server CPU ms per push)",
    "search p50 ms (in-process / HTTP)",
    "search p95 ms (in-process / HTTP)",
    "search CPU ms per call (in-process / HTTP: server + client)",
    "errors",
]


def api_section(doc: ApiDoc) -> list[str]:
    """What HTTP costs on top of the in-process client, at 1, 8 and 32 concurrent clients."""
    res = doc["results"]
    out = ["## HTTP API", "", *provenance(doc), ""]
    out += [
        "`memlane serve` (uvicorn, one process) on the embedded default, one request per call "
        "from concurrent keep-alive clients in the benchmark process, next to the same calls "
        "made in-process by as many threads, the two alternating (in-process, HTTP, HTTP, "
        "in-process; half the calls per chunk) so drift in the machine's speed weighs on both. "
        "Clients wait for each answer (closed loop), so "
        "at N clients the latency includes queueing behind the other N - 1. Load average "
        f"{res['loadavg_at_start']} at the start and {res['loadavg_at_end']} at the end: "
        "figures from a busy machine are upper bounds.",
        "",
    ]
    out += table(HEADER, [level_row(lv) for lv in res["levels"]])
    b = res["batched_push"]
    out += [
        f"Batched push: {b['clients']} clients, {b['turns_per_request']} turns per request: "
        f"{b['turns_per_s']:,.0f} turns/s accepted ({b['turns']} turns in {b['seconds']} s, "
        f"{b['errors']} errors). Server RSS after the run: {res['server_rss_mib']} MiB.",
        "",
    ]
    return out


def level_row(lv: ApiLevel) -> list[object]:
    """One concurrency level."""
    p, h = lv["push_inproc"], lv["push_http"]
    s, q = lv["search_inproc"], lv["search_http"]
    return [
        lv["clients"],
        f"{p['p50_ms']} / {h['p50_ms']}",
        f"{p['p99_ms']} / {h['p99_ms']}",
        f"{h['per_s']} ({h['server_cpu_ms_per_call']})"
        if "server_cpu_ms_per_call" in h
        else h["per_s"],
        f"{s['p50_ms']} / {q['p50_ms']}",
        f"{s['p95_ms']} / {q['p95_ms']}",
        search_cpu(lv),
        lv["errors"],
    ]


def search_cpu(lv: ApiLevel) -> str:
    """CPU per search in-process, and over HTTP with the server's share apart."""
    s, q = lv["search_inproc"], lv["search_http"]
    if "cpu_ms_per_call" not in s or "cpu_ms_per_call" not in q:
        return "not measured"
    server = q.get("server_cpu_ms_per_call", 0.0)
    return (
        f"{s['cpu_ms_per_call']} / {q['cpu_ms_per_call']}: {server} + "
        f"{round(q['cpu_ms_per_call'] - server, 2)}"
    )


def search_gap_reason(lv: ApiLevel, cores: int, busy: str) -> str:
    """Why HTTP search is slower: its extra CPU per call, multiplied by the closed-loop queue."""
    s, q = lv["search_inproc"], lv["search_http"]
    if "cpu_ms_per_call" not in s or "cpu_ms_per_call" not in q:
        return f"query embedding in the server competes with the clients; {busy}"
    extra = round(q["cpu_ms_per_call"] - s["cpu_ms_per_call"], 2)
    queue = (
        f"with {lv['clients']} clients waiting on {cores} cores each call queues behind the "
        "others' extra too; "
        if lv["clients"] > 1
        else ""
    )
    return (
        f"a search costs {q['cpu_ms_per_call']} ms of CPU over HTTP against "
        f"{s['cpu_ms_per_call']} in-process ({extra:+} ms in all: HTTP parsing, auth, the thread "
        f"hop, JSON, the client, and the two processes' own states); {queue}{busy}"
    )


def push_miss_reason(lv: ApiLevel, busy: str) -> str:
    """Why HTTP push p99 is over its goal: the one event loop's CPU per push, and the queue."""
    h = lv["push_http"]
    cpu = h.get("server_cpu_ms_per_call")
    loop = (
        f"the server spent {cpu} ms of CPU per push, so its one event loop tops out near "
        f"{1000 / cpu:,.0f} pushes/s ({h['per_s']:,.0f} measured) and "
        if cpu
        else ""
    )
    return (
        f"{loop}{plural(lv['clients'], 'client')} waiting on each other queue behind it "
        f"(in-process, {lv['clients']} threads: {lv['push_inproc']['p99_ms']} ms); {busy}"
    )


def api_goal_rows(doc: ApiDoc) -> list[tuple[str, str, object, str, str]]:
    """(what, goal, measured, status, reason) for the goals table."""
    res = doc["results"]
    g = res["goals"]
    rows: list[tuple[str, str, object, str, str]] = []
    cores = doc["machine"]["cores"]
    busy = f"load average {res['loadavg_at_start'][0]} on {cores} cores during the run"
    at8 = next((lv for lv in res["levels"] if lv["clients"] == 8), None)
    if at8 is not None:
        p99 = at8["push_http"]["p99_ms"]
        met = p99 <= g["push_p99_ms_at_8"]
        rows.append(
            (
                "HTTP push p99, 8 clients",
                f"<= {g['push_p99_ms_at_8']} ms",
                p99,
                mark(met),
                "" if met else push_miss_reason(at8, busy),
            )
        )
    gaps = [
        (lv["search_http"]["p95_ms"] - lv["search_inproc"]["p95_ms"], lv) for lv in res["levels"]
    ]
    worst, at = max(gaps, key=lambda x: x[0], default=(0.0, None))
    met = worst <= g["search_p95_over_inproc_ms"]
    rows.append(
        (
            "HTTP search p95 over in-process p95 (worst level)",
            f"<= +{g['search_p95_over_inproc_ms']} ms",
            f"{worst:+.1f} ms" + (f" at {plural(at['clients'], 'client')}" if at else ""),
            mark(met),
            "" if met or at is None else search_gap_reason(at, cores, busy),
        )
    )
    tps = res["batched_push"]["turns_per_s"]
    met = tps >= g["batched_turns_per_s"]
    rows.append(
        (
            "turns/s accepted over HTTP, batched pushes",
            f">= {g['batched_turns_per_s']:,.0f}",
            f"{tps:,.0f}",
            mark(met),
            "" if met else busy,
        )
    )
    rows.append(("HTTP errors", "0", res["errors"], mark(res["errors"] == 0), ""))
    return rows


def plural(n: int, word: str) -> str:
    """``1 client``, ``8 clients``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
