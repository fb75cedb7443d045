"""Shared helpers of the benchmarks: machine facts, result files, percentiles, timing.

Every benchmark writes ``benchmarks/results/<name>.json`` through :func:`write_result`, which
records the machine (CPU model, cores, RAM), the date, the git commit, the exact command and
the parameters next to the figures, so ``benchmarks.report`` can regenerate
``docs/PERFORMANCE.md`` without any hand-written number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psutil

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DATA = "../shared/bench"
DATA_HELP = (
    "directory holding the benchmark data (default: %(default)s, relative to the repository "
    "root). Public sources: LoCoMo from the snap-research/LoCoMo repository's "
    "data/locomo10.json (this suite uses locomo-dev.json, a slice of it in the same format); "
    "MADial-Bench from the hejunqing/MADial-Bench repository's data/ch/ (converted to "
    "madial-zh-dialogue-dev.jsonl and madial-zh-memory.jsonl, one JSON object per line)."
)


def data_dir(value: str) -> Path:
    """The data directory, relative paths taken from the repository root."""
    path = Path(value)
    return path if path.is_absolute() else (ROOT / path).resolve()


def require_data(value: str, *files: str) -> Path:
    """The data directory; exits with one line (no traceback) if a file in ``files`` is missing.

    Checked before any measurement starts, so a missing dataset costs no benchmark time.
    """
    path = data_dir(value)
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        raise SystemExit(
            f"benchmark data missing: {path / missing[0]} not found. The benchmarks read "
            f"{', '.join(files)} from {DEFAULT_DATA}/ (relative to the repository root) or "
            "--data DIR; get them from the LoCoMo (snap-research/LoCoMo, data/locomo10.json) "
            "and MADial-Bench (hejunqing/MADial-Bench, data/ch/) repositories, as "
            "`python -m benchmarks.recall_bench --help` describes."
        )
    return path


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    """Total RAM in GiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": ram_gib(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "blas_env": {
            k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS") if k in os.environ
        },
    }


def git_commit() -> str:
    """The checked-out commit (read-only git calls), with ``-dirty`` for local changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    """The command as a user would type it from the repository root."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    prog = f"python -m {spec.name}" if spec is not None else f"python {sys.argv[0]}"
    return " ".join([prog, *(shlex.quote(a) for a in sys.argv[1:])])


def write_result(
    name: str, params: dict[str, Any], results: dict[str, Any], started: float
) -> Path:
    """Write ``benchmarks/results/<name>.json`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "command": command_line(),
        "machine": machine(),
        "params": params,
        "wall_s": round(time.monotonic() - started, 1),
        "results": results,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return path


def latency_stats(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max in milliseconds of samples given in seconds."""
    arr = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if arr.size == 0:
        return {"n": 0}
    return {
        "n": int(arr.size),
        "p50_ms": round(float(np.percentile(arr, 50)), 3),
        "p95_ms": round(float(np.percentile(arr, 95)), 3),
        "p99_ms": round(float(np.percentile(arr, 99)), 3),
        "mean_ms": round(float(arr.mean()), 3),
        "max_ms": round(float(arr.max()), 3),
    }


def rss_mib() -> float:
    """This process's current resident set size in MiB (peak when /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def pid_rss_mib(pid: int) -> float | None:
    """Resident set size of another process in MiB, None if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def parse_csv_ints(value: str) -> list[int]:
    """``1000,10000`` -> ``[1000, 10000]``."""
    return [int(v) for v in value.split(",") if v.strip()]


def add_es_args(p: argparse.ArgumentParser) -> None:
    """The options every benchmark that can use Elasticsearch shares."""
    p.add_argument(
        "--es-url",
        default=os.environ.get("MEMLANE_BENCH_ES_URL"),
        help="Elasticsearch URL (default: $MEMLANE_BENCH_ES_URL); start one with "
        "`ES_NODE_STATE=/tmp/esstate-bench bash tools/es-node/es-node.sh up`",
    )


def progress(msg: str) -> None:
    """One progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def mean(values: Iterable[float]) -> float:
    """The mean of values (0 for none)."""
    vals = list(values)
    return sum(vals) / len(vals) if vals else 0.0


def rss_while(action: Callable[[], T]) -> tuple[T, int, int]:
    """What ``action`` returned, how far this process's resident memory rose above its start
    and its peak (bytes), sampled every 10 ms by a thread of its own (tracemalloc would count
    exactly, but it slows JSON work five-fold)."""
    process = psutil.Process()
    start = process.memory_info().rss
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    top = max(peak[0], process.memory_info().rss)
    return result, top - start, top
