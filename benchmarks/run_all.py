"""Run every benchmark and regenerate docs/PERFORMANCE.md (what ``make bench`` calls).

Starts a real Elasticsearch node with the project's launcher (its own state dir), runs the
benchmarks one after the other as subprocesses (each records its own exact command), stops
the node, and runs ``benchmarks.report``. ``--quick`` runs small versions of everything
(about 5 minutes); the full run stays under 20 minutes on 2 cores.

Expected times of the full run on the 2-core development machine (each piece timed on its
own; a machine loaded by other work is slower): Elasticsearch start ~0.5 min; recall_bench
with the sweep ~6 min (its last full run: 354 s); recall_modes (6 conversations, 3 modes)
~0.6 min with the vector cache of an earlier run, ~1.5 min without; never_hurts (6 MADial
formulations and 3 LoCoMo modes, 3 configurations each) ~2 min with the vector cache;
retrieval_bench's loaded case (200 queries next to two consolidating workers) ~1-2 min more;
store_bench (1k, 10k, 100k
on both backends) ~4.5 min (last full run: 269 s); retrieval_bench (100k, 500 queries, both
backends, store reused) ~2.5 min (1,000 queries took 272 s); ingest_bench (1, 2 and 4 worker
processes, 1,000 turns each) ~2 min; api_bench (HTTP vs in-process at 1, 8, 32 clients)
~3 min; the cost sweep (batch 5, 10, 20, 40 on 1 conversation,
first 8 sessions) ~1.5-2 min; report a few seconds. Total ~18-19 minutes; ``--quick`` takes
about 5.

Not included: the full cost replay (``python -m benchmarks.cost_bench``, all 6 conversations,
~13 minutes on its own; ``--with-full-cost`` adds it) and the regression guard
(``make bench-guard``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence

from benchmarks.common import ROOT, progress, require_data
from benchmarks.datasets import LOCOMO_FILE, MADIAL_DIALOGUE_FILE, MADIAL_MEMORY_FILE

ES = ["bash", "tools/es-node/es-node.sh"]
DEFAULT_STATE = "/tmp/esstate-bench"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run_all",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--quick", action="store_true", help="small versions of every benchmark")
    p.add_argument(
        "--data",
        default="../shared/bench",
        help="benchmark data directory "
        "(see python -m benchmarks.recall_bench --help for where to get it)",
    )
    p.add_argument(
        "--es-url", default=None, help="use this Elasticsearch instead of starting a node"
    )
    p.add_argument("--no-es", action="store_true", help="SQLite only")
    p.add_argument("--es-state", default=DEFAULT_STATE, help="es-node state dir (%(default)s)")
    p.add_argument(
        "--only",
        default=None,
        help="comma list of benchmarks to run "
        "(recall,modes,never_hurts,store,retrieval,ingest,api,cost)",
    )
    p.add_argument(
        "--with-full-cost",
        action="store_true",
        help="also replay all conversations in cost_bench (~13 minutes more)",
    )
    return p.parse_args(argv)


def start_es(state: str) -> str:
    env = {**os.environ, "ES_NODE_STATE": state}
    out = subprocess.run(
        [*ES, "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0:
        raise RuntimeError(f"es-node up failed: {out.stderr[-2000:]}")
    for line in out.stdout.splitlines():
        if line.startswith("ES_URL="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError(f"es-node up printed no ES_URL: {out.stdout!r}")


def stop_es(state: str) -> None:
    env = {**os.environ, "ES_NODE_STATE": state}
    subprocess.run([*ES, "down"], cwd=ROOT, env=env, capture_output=True, timeout=120)


def run(cmd: list[str]) -> bool:
    progress("$ " + " ".join(cmd))
    t0 = time.monotonic()
    code = subprocess.run([sys.executable, "-m", *cmd], cwd=ROOT).returncode
    progress(f"  exit {code} after {time.monotonic() - t0:.0f} s")
    return code == 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    only = (
        set(args.only.split(","))
        if args.only
        else {"recall", "modes", "never_hurts", "store", "retrieval", "ingest", "api", "cost"}
    )
    if only & {
        "recall",
        "modes",
        "never_hurts",
        "cost",
    }:  # fail in one line now, not after an hour of runs
        require_data(args.data, LOCOMO_FILE, MADIAL_DIALOGUE_FILE, MADIAL_MEMORY_FILE)
    es_url = args.es_url
    started_es = False
    failures = []
    try:
        if not es_url and not args.no_es and only & {"store", "retrieval"}:
            progress(f"starting Elasticsearch (state {args.es_state})")
            es_url = start_es(args.es_state)
            started_es = True
            progress(f"Elasticsearch at {es_url}")
        es = ["--es-url", es_url] if es_url else []
        quick = ["--quick"] if args.quick else []
        if "recall" in only:
            sweep = [] if args.quick else ["--sweep"]
            if not run(["benchmarks.recall_bench", "--data", args.data, *quick, *sweep]):
                failures.append("recall")
        if "modes" in only and not run(["benchmarks.recall_modes", "--data", args.data, *quick]):
            failures.append("modes")
        if "never_hurts" in only and not run(
            ["benchmarks.never_hurts", "--data", args.data, *quick]
        ):
            failures.append("never_hurts")
        if "store" in only:
            sizes = "1000,10000" if args.quick else "1000,10000,100000"
            cmd = [
                "benchmarks.store_bench",
                "--backend",
                "both" if es_url else "sqlite",
                "--sizes",
                sizes,
                "--keep",
                *quick,
                *es,
            ]
            if started_es:
                cmd += ["--es-state", args.es_state]
            if es_url:
                cmd += ["--es-variant-no-vectors"]
            if not run(cmd):
                failures.append("store")
        if "retrieval" in only:
            cmd = [
                "benchmarks.retrieval_bench",
                "--backend",
                "both" if es_url else "sqlite",
                "--reuse",
                "--queries",
                "500",
                *quick,
                *es,
            ]
            if not run(cmd):
                failures.append("retrieval")
        if "ingest" in only and not run(["benchmarks.ingest_bench", *quick]):
            failures.append("ingest")
        if "api" in only and not run(["benchmarks.api_bench", *quick]):
            failures.append("api")
        if "cost" in only:
            sessions = "4" if args.quick else "8"
            cmd = [
                "benchmarks.cost_bench",
                "--data",
                args.data,
                "--sweep",
                "5,10,20,40",
                "--sweep-samples",
                "1",
                "--sessions",
                sessions,
            ]
            if not run(cmd):
                failures.append("cost sweep")
            if args.with_full_cost and not run(["benchmarks.cost_bench", "--data", args.data]):
                failures.append("cost")
    finally:
        if started_es:
            progress("stopping Elasticsearch")
            stop_es(args.es_state)
    run(["benchmarks.report"])
    progress(
        f"run_all finished in {time.monotonic() - started:.0f} s"
        + (f"; failed: {', '.join(failures)}" if failures else "")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
