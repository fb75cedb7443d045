"""Consolidation load for latency benchmarks: worker processes doing raw-mode consolidation.

``python -m benchmarks.load --store PATH --seed N`` is one load process. It sets the OpenMP
environment a ``memlane worker`` sets (``embedding.worker_threads``, passive waiting) before
the model loads, then consolidates batches of 20 synthetic chat turns in a loop the way raw
mode does: raw memories, each turn embedded with the previous one in one batch call
(:func:`memlane.buffer.raw.raw_passages`), upserted into its own SQLite store. Redis and
Celery are left out: the load is the CPU work of consolidation (embedding and writing), which
is what competes with the bot's query embedding on the same host. It prints ``ready`` after
its first batch and runs until it is terminated.

:func:`consolidating_workers` starts ``n`` of them, waits until each is ready, and stops them
(SIGTERM, then SIGKILL) when the block ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import ROOT
from benchmarks.corpus import memory_texts

BATCH = 20
READY_TIMEOUT_S = 180.0


def run_load(store_path: Path, seed: int) -> None:
    """Consolidate synthetic batches forever (until terminated)."""
    from memlane.config import load_settings
    from memlane.llm.openmp import configure_openmp

    settings = load_settings(
        environ={}, data_dir=str(store_path.parent), store={"sqlite_path": str(store_path)}
    )
    configure_openmp(settings.embedding.worker_threads)  # as `memlane worker` does
    from memlane.buffer.raw import raw_memories, raw_passages
    from memlane.buffer.turns import BufferedTurn
    from memlane.llm.embeddings import build_embedder
    from memlane.models import Role, Turn
    from memlane.store import build_store

    store = build_store(settings)
    store.ensure_schema()
    embedder = build_embedder(settings.embedding)
    texts = memory_texts(2000, seed=seed)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    n = 0
    while True:
        entries = []
        for i in range(BATCH):
            ts = t0 + timedelta(seconds=n + i)
            # A counter in each text, so the embedder's cache never serves a batch.
            content = f"{texts[(n + i) % len(texts)]} ({seed}-{n + i})"
            role = Role.USER if i % 2 == 0 else Role.ASSISTANT
            turn = Turn("load-user", role, content, ts, f"t{seed}-{n + i}", "s1")
            entries.append(BufferedTurn(f"{n + i}-0", turn))
        memories = raw_memories("load-user", f"b{n}", entries, datetime.now(UTC))
        vectors = embedder.embed_passages(raw_passages(entries))
        for memory, vector in zip(memories, vectors, strict=True):
            memory.embedding = vector
        store.upsert(memories)
        if n == 0:
            print("ready", flush=True)
        n += BATCH


@contextlib.contextmanager
def consolidating_workers(n: int, workdir: Path) -> Iterator[list[int]]:
    """Run ``n`` load processes while the block runs; yields their pids."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    env["PYTHONPATH"] = str(ROOT)
    procs: list[subprocess.Popen[str]] = []
    try:
        for i in range(n):
            path = workdir / f"load-{i}.sqlite3"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.load",
                        "--store",
                        str(path),
                        "--seed",
                        str(i),
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until the first batch is written
            if line.strip() != "ready" or time.monotonic() > deadline:
                raise RuntimeError(f"load process {proc.pid} did not start (read {line!r})")
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        run_load(args.store, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
