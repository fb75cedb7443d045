"""Per-user drain: how fast one user's imported backlog is consolidated, raw mode, embedded default.

* **Drain** with real processes: ``worker.supervisor.Supervisor`` (what ``memlane up`` runs:
  embedded Redis, the consolidation worker, the control worker, beat) on a fresh data
  directory. One user's backlog of ``--turns`` turns (an imported history: sessions of 50
  turns, 30 s apart, pushed in chunks of 100) is pushed first; the clock starts when the push
  ends and stops when every turn's raw memory is in the store. Measured for each worker shape
  of ``--shapes``: ``PxT`` is P processes embedding with T OpenMP threads each, borrowing
  idle cores up to the default ``embedding.worker_max_threads``; ``PxT/M`` borrows up to M
  threads (``/T`` turns borrowing off: the shape before it existed). One user is one lease,
  so only one process works on it at a time, and only its threads count.
* **Where the time goes**: the same consolidation run in-process (``consolidate_user``, one
  lease, the default batch size, one task holding its core and borrowing the idle ones as a
  worker does) with the embedder's time measured apart from the rest (the buffer reads and
  commits, the SQLite writes, the lease checks).

Each run records the machine's busy cores and load average next to its figures: the embedder
is CPU-bound, so a figure taken next to other busy processes is lower than on an idle host.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.corpus import DEFAULT_WORKDIR
from benchmarks.ingest_bench import SENTENCES, machine_busy, tree_cpu_s, wait_stored
from memlane.buffer.connection import embedded_redis_url, shutdown_embedded
from memlane.client import MemoryClient
from memlane.config import Settings, load_settings

NAME = "drain_bench"
USER = "drain-user"
CHUNK = 100  # turns per add_turns call while importing
SESSION = 50  # turns per session of the imported history


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.drain_bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--turns", type=int, default=2000, help="the user's backlog")
    p.add_argument(
        "--shapes",
        default="2x1,2x1/1",
        help="worker shapes, processes x threads[/most threads] (2x1 is memlane up's default)",
    )
    p.add_argument("--profile-turns", type=int, default=400, help="turns of the in-process run")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--timeout", type=float, default=1200.0, help="per drain")
    p.add_argument("--quick", action="store_true", help="400 turns, 100 profiled, shape 2x1")
    return p.parse_args(argv)


def settings_for(
    data_dir: Path, redis_url: str | None, threads: int = 1, most: int | None = None
) -> Settings:
    embedding: dict[str, int] = {"worker_threads": threads}
    if most is not None:
        embedding["worker_max_threads"] = most
    return load_settings(
        environ={},
        data_dir=str(data_dir),
        redis={"url": redis_url},
        embedding=embedding,
        log={"level": "WARNING"},
    )


def parse_shape(shape: str) -> tuple[int, int, int | None]:
    """``PxT`` or ``PxT/M``: processes, threads, most threads (None: the default)."""
    head, _, most = shape.partition("/")
    procs, threads = (int(v) for v in head.split("x"))
    return procs, threads, int(most) if most else None


def history(n: int) -> list[dict[str, Any]]:
    """An imported history: alternating speakers, sessions of 50 turns, 30 s apart, 3 days ago."""
    start = datetime.now(UTC) - timedelta(days=3)
    return [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"{SENTENCES[i % len(SENTENCES)]} (#{i})",
            "ts": start + timedelta(seconds=30 * i),
            "turn_id": f"{USER}-t{i}",
            "session_id": f"s{i // SESSION}",
        }
        for i in range(n)
    ]


def push(client: MemoryClient, turns: list[dict[str, Any]]) -> None:
    for i in range(0, len(turns), CHUNK):
        client.add_turns(USER, turns[i : i + CHUNK])


def drain_run(args: argparse.Namespace, root: Path, shape: str) -> dict[str, Any]:
    """One drain with ``shape`` (processes x threads) under a real supervisor."""
    from worker.supervisor import Supervisor

    procs, threads, most = parse_shape(shape)
    data = root / f"drain-{shape.replace('/', '-')}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    env = {
        "MEMLANE_LOG__LEVEL": "WARNING",
        "MEMLANE_EMBEDDING__WORKER_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),  # not this process's (the profile run set its own)
    }
    settings = settings_for(data, None, threads, most)
    if most is not None:
        env["MEMLANE_EMBEDDING__WORKER_MAX_THREADS"] = str(most)
    sup = Supervisor(settings, concurrency=procs, extra_env=env)
    sup.start()
    out: dict[str, Any] = {
        "shape": shape,
        "processes": procs,
        "threads": threads,
        "max_threads": settings.embedding.worker_max_threads,
    }
    try:
        settings = settings_for(data, sup.redis_url, threads, most)
        with MemoryClient(settings) as client:
            client.add_turns("warmup", [{"role": "user", "content": "warm up", "turn_id": "w0"}])
            out["warmup_s"] = round(wait_stored(settings, {"warmup": ["w0"]}, 180), 1)
            turns = history(args.turns)
            worker = sup.pids().get("worker")
            t0 = time.monotonic()
            push(client, turns)
            out["push_s"] = round(time.monotonic() - t0, 2)
            cpu0, (busy0, total0) = tree_cpu_s(worker), machine_busy()
            load0 = os.getloadavg()[0]
            t1 = time.monotonic()
            done = wait_stored(settings, {USER: [t["turn_id"] for t in turns]}, args.timeout)
            elapsed = time.monotonic() - t1
            cpu1, (busy1, total1) = tree_cpu_s(worker), machine_busy()
            cores = os.cpu_count() or 1
            out.update(
                turns=len(turns),
                drain_s=round(elapsed, 1) if done != float("inf") else None,
                turns_per_s=round(len(turns) / elapsed, 1) if done != float("inf") else None,
                worker_cpu_s=round(cpu1 - cpu0, 1),
                # CPU per turn does not depend on what else runs: 1000 / it is the rate one
                # busy core would give this shape's draining process on an idle host.
                worker_cpu_ms_per_turn=round(1000 * (cpu1 - cpu0) / len(turns), 1),
                worker_cores_used=round((cpu1 - cpu0) / elapsed, 2) if elapsed else None,
                machine_cores_busy=round(cores * (busy1 - busy0) / (total1 - total0), 2)
                if total1 > total0
                else None,
                load_average_at_start=round(load0, 1),
                load_average_at_end=round(os.getloadavg()[0], 1),
            )
            common.progress(f"drain {shape}: {out}")
    finally:
        sup.stop()
    return out


class TimedEmbedder:
    """Wraps an embedder and adds up the seconds spent in it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0

    def embed_passages(self, texts: Sequence[str]) -> list[list[float]]:
        t = time.perf_counter()
        try:
            return list(self.inner.embed_passages(texts))
        finally:
            self.seconds += time.perf_counter() - t
            self.calls += 1

    def embed_query(self, text: str) -> list[float]:
        return list(self.inner.embed_query(text))


def profile_run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The consolidation of ``--profile-turns`` turns in-process: embedding vs everything else."""
    from memlane.llm.core_slots import borrow_idle_cores
    from memlane.llm.openmp import configure_openmp
    from pipelines.consolidation.run import consolidate_user
    from pipelines.wiring import Wiring

    data = root / "profile"
    data.mkdir(parents=True)
    url = embedded_redis_url(settings_for(data, None))
    settings = settings_for(data, url)
    emb = settings.embedding
    configure_openmp(emb.worker_threads)  # as in a worker process
    policy = borrow_idle_cores(emb.worker_threads, emb.worker_max_threads)
    with MemoryClient(settings) as client:
        push(client, history(args.profile_turns))
    with Wiring(settings) as wiring:
        ports = wiring.consolidation_ports()
        timed = TimedEmbedder(ports.embedder)
        ports.embedder = timed  # type: ignore[assignment]
        timed.embed_passages(["warm up"])
        timed.seconds, timed.calls = 0.0, 0
        token = wiring.services.leases.acquire(USER)
        assert token is not None
        batch = settings.batching.batch_max_turns
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        with policy.task() if policy else nullcontext():
            result = consolidate_user(ports, USER, token, batch, 5, max_batches=10_000)
        total = time.perf_counter() - t0
    shutdown_embedded()
    out = {
        "turns": result.turns,
        "batches": result.batches,
        "batch_max_turns": batch,
        "total_s": round(total, 2),
        "turns_per_s": round(result.turns / total, 1),
        "embed_s": round(timed.seconds, 2),
        "embed_calls": timed.calls,
        "embed_share": round(timed.seconds / total, 3),
        "embed_ms_per_turn": round(1000 * timed.seconds / max(result.turns, 1), 1),
        "other_ms_per_turn": round(1000 * (total - timed.seconds) / max(result.turns, 1), 2),
        "load_average_at_start": round(load0, 1),
        "threads": emb.worker_threads,
        "max_threads": policy.most if policy else emb.worker_threads,
    }
    common.progress(f"profile: {out}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if args.quick:
        args.turns, args.profile_turns, args.shapes = min(args.turns, 400), 100, "2x1"
    root = args.workdir / f"drain-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    results: dict[str, Any] = {}
    try:
        results["where_the_time_goes"] = profile_run(args, root)
        results["drain"] = [drain_run(args, root, s) for s in args.shapes.split(",")]
    finally:
        shutdown_embedded()
        shutil.rmtree(root, ignore_errors=True)
    params = {
        "turns": args.turns,
        "shapes": args.shapes,
        "profile_turns": args.profile_turns,
        "quick": args.quick,
        "batching": load_settings(environ={}).batching.model_dump(),
    }
    common.write_result(NAME, params, results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
