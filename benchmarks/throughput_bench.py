"""Throughput: raw-mode turns per second with 1, 2 and 4 worker processes.

Embeddings come from an HTTP embedding server (:mod:`benchmarks.embed_server`: the bundled local
model in a process of its own, one inference at a time on ``--embed-threads`` cores), so the
workers are not the part being measured: they fetch batches, call the server, and write the
store. Each worker process is ``python -m worker.cli worker --concurrency 1`` (one task at a
time), plus one beat, with the tests' fast batching timers (dispatch every 0.5 s, idle 0.5 s).

Per run: a fresh Redis database and a fresh store, a warm-up turn, then ``--users`` users x
``--turns-per-user`` turns pushed at once; the clock runs from the first push until every turn
is stored and nothing is pending. Recorded next to turns/s: the CPU the embedder process used
(cores = CPU seconds / wall seconds), the CPU of the worker process groups, and the machine's
busy cores, which shows where the curve flattens and why.

The store is SQLite (the embedded default) unless ``--es-url`` names Elasticsearch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from benchmarks import common
from benchmarks.ingest_bench import SENTENCES
from memlane.client import MemoryClient
from memlane.config import Settings, load_settings
from memlane.store import build_store
from tests.support.services import start_redis
from tests.support.worker_proc import Cluster, fresh_db_url, wait_until, worker_settings_overrides

NAME = "throughput_bench"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput_bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--workers", default="1,2,4", help="worker process counts to measure")
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--turns-per-user", type=int, default=20)
    p.add_argument("--batch-max-turns", type=int, default=20)
    p.add_argument("--embed-threads", type=int, default=2, help="OpenMP threads of the server")
    p.add_argument("--timeout", type=float, default=600.0, help="per run")
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="passes over the worker counts, alternately forward and backward (1,2,4,4,2,1), "
        "so a neighbour's load that changes during the run does not favour one count",
    )
    p.add_argument("--quick", action="store_true", help="30 users x 20 turns, one round")
    common.add_es_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.users, args.rounds = 30, 1
    return args


def order(counts: Sequence[int], rounds: int) -> list[int]:
    """The worker counts of every round, odd rounds reversed: 1,2,4,4,2,1 for two rounds."""
    return [n for r in range(rounds) for n in (counts if r % 2 == 0 else counts[::-1])]


def combine(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One row per worker count: the mean of its rounds, and each round's turns/s."""
    out = dict(samples[0])
    for key in ("push_s", "drain_s", "embedder_cores", "workers_cores", "machine_cores_busy"):
        out[key] = round(sum(s[key] for s in samples) / len(samples), 2)
    out["turns_per_s"] = round(out["turns"] / out["drain_s"], 1)  # turns per round / mean drain
    out["rounds"] = [s["turns_per_s"] for s in samples]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_embedder(threads: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The embedding server on a free port; returns the process and its ``/v1`` base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.embed_server", "--port", str(port)]
    argv += ["--threads", str(threads)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=common.ROOT, stdout=out, stderr=subprocess.STDOUT)

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return True
        except OSError:
            return False

    wait_until(healthy, 120, "the embedding server")
    return proc, f"http://127.0.0.1:{port}/v1"


def settings_for(
    args: argparse.Namespace, data: Path, redis_url: str, embed_url: str, run: int
) -> Settings:
    store: dict[str, Any] = {}
    if args.es_url:
        store = {"backend": "elasticsearch", "es_url": args.es_url, "es_index": f"tp-{run}"}
    return load_settings(
        environ={},
        data_dir=str(data),
        redis={"url": redis_url, "key_prefix": "tp"},
        store=store,
        embedding={"base_url": embed_url},
        log={"level": "WARNING"},
        **worker_settings_overrides(batch_max_turns=args.batch_max_turns),
    )


def cpu_s(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the given processes (0 for any that are gone)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def stored(settings: Settings, users: Sequence[str]) -> int:
    store = build_store(settings)
    try:
        return sum(store.count(u) for u in users)
    finally:
        store.close()


def run(
    args: argparse.Namespace, workers: int, root: Path, redis: str, embed: Any, seq: int
) -> dict[str, Any]:
    """One measurement with ``workers`` worker processes."""
    proc, embed_url = embed
    data = root / f"run-{seq}-workers-{workers}"
    shutil.rmtree(data, ignore_errors=True)
    settings = settings_for(args, data, fresh_db_url(redis), embed_url, seq)
    with Cluster(settings, data / "procs") as cluster, MemoryClient(settings) as client:
        procs = [cluster.worker(f"w{i}", concurrency=1) for i in range(workers)]
        cluster.beat()
        client.add_turns("warmup", [{"role": "user", "content": "warm-up"}])
        wait_until(lambda: client.services.store.count("warmup") == 1, 180, "the warm-up turn")
        users = [f"u{seq}-{i:03d}" for i in range(args.users)]
        total = len(users) * args.turns_per_user
        worker_pids = [p for w in procs for p in w.group_pids()]
        cpu_w0, cpu_e0 = cpu_s(worker_pids), cpu_s([proc.pid])
        busy0 = psutil.cpu_times()
        t0 = time.monotonic()
        for u, user in enumerate(users):
            turns = [
                {"role": "user", "content": f"{SENTENCES[(u + i) % len(SENTENCES)]} ({user} #{i})"}
                for i in range(args.turns_per_user)
            ]
            client.add_turns(user, turns)
        push_s = time.monotonic() - t0
        wait_until(
            lambda: stored(settings, users) == total and not client.services.buffer.pending_users(),
            args.timeout,
            f"{total} turns with {workers} workers",
            0.2,
        )
        wall = time.monotonic() - t0
        cpu_w, cpu_e = cpu_s(worker_pids) - cpu_w0, cpu_s([proc.pid]) - cpu_e0
        busy1 = psutil.cpu_times()
    busy = sum(busy1) - sum(busy0) - (busy1.idle - busy0.idle) - (busy1.iowait - busy0.iowait)
    cores = os.cpu_count() or 1
    out = {
        "workers": workers,
        "turns": total,
        "users": len(users),
        "push_s": round(push_s, 2),
        "drain_s": round(wall, 2),
        "turns_per_s": round(total / wall, 1),
        "embedder_cores": round(cpu_e / wall, 2),
        "workers_cores": round(cpu_w / wall, 2),
        "machine_cores_busy": round(min(busy / wall, cores), 2),
        "cores": cores,
    }
    common.progress(f"run {seq}, {workers} worker(s): {out}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    counts = common.parse_csv_ints(args.workers)
    with tempfile.TemporaryDirectory(prefix="memlane-tp-") as tmp:
        root = Path(tmp)
        (root / "redis").mkdir()
        redis = start_redis(root / "redis")
        embedder = start_embedder(args.embed_threads, root / "embed_server.log")
        try:
            samples = [
                run(args, n, root, redis.url, embedder, seq)
                for seq, n in enumerate(order(counts, args.rounds))
            ]
            runs = [combine([s for s in samples if s["workers"] == n]) for n in counts]
        finally:
            embedder[0].terminate()
            embedder[0].wait(timeout=30)
            redis.stop()
    params = {
        "workers": counts,
        "users": args.users,
        "rounds": args.rounds,
        "turns_per_user": args.turns_per_user,
        "batch_max_turns": args.batch_max_turns,
        "embed_threads": args.embed_threads,
        "worker_concurrency": 1,
        "store": "elasticsearch" if args.es_url else "sqlite",
        "embedder": "benchmarks.embed_server (local multilingual-e5-small over HTTP)",
    }
    common.write_result(NAME, params, {"runs": runs}, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
