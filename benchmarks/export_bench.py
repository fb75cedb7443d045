"""Export and import of one large user: time, throughput and resident-memory growth.

Fills one user with ``--n`` memories (384-d random unit vectors, written a chunk at a time),
then times ``MemoryClient.export_user(include_embeddings=True)`` into a file and
``MemoryClient.import_user`` of that file into an empty store of the same backend. While each
runs, a thread samples this process's RSS every 10 ms; reported are the growth over the RSS
at its start and the peak. Held in memory at once, 100,000 such memories would take well over
1 GB; the export and import stream, so the growth stays flat whatever ``--n`` is.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.corpus import drop_store
from memlane.client import MemoryClient
from memlane.config import load_settings
from memlane.models import Memory, MemoryKind

NAME = "export_bench"
CHUNK = 1_000
T0 = datetime(2024, 10, 26, 13, 26, tzinfo=UTC)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.export_bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--backend", choices=["sqlite", "elasticsearch", "both"], default="sqlite")
    common.add_es_args(p)
    p.add_argument("--n", type=int, default=100_000, help="memories (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="10,000 memories")
    return p.parse_args(argv)


def _client(backend: str, workdir: Path, name: str, es_url: str) -> MemoryClient:
    store: dict[str, Any] = {"backend": backend}
    if backend == "elasticsearch":
        store |= {"es_url": es_url, "es_index": f"memlane-export-bench-{name}"}
    settings = load_settings(environ={}, data_dir=str(workdir / name), store=store)
    return MemoryClient(settings)


def _fill(client: MemoryClient, n: int) -> None:
    rng = np.random.default_rng(7)
    for start in range(0, n, CHUNK):
        vectors = rng.standard_normal((min(CHUNK, n - start), 384))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        client.services.store.upsert(
            [
                Memory(
                    id=f"m{start + i:07d}",
                    user_id="big",
                    kind=MemoryKind.OBSERVATION,
                    content=f"memory {start + i}: the user said something worth keeping",
                    recorded_at=T0 + timedelta(seconds=start + i),
                    embedding=[float(x) for x in vec],
                    source_turn_ids=[f"t{start + i}"],
                    metadata={"n": start + i},
                )
                for i, vec in enumerate(vectors)
            ]
        )


def _measured(action: Callable[[], int]) -> dict[str, float]:
    """Seconds, items and the RSS growth (MiB) of one run of ``action``."""
    started = time.monotonic()
    items, growth, peak = common.rss_while(action)
    elapsed = time.monotonic() - started
    return {
        "seconds": round(elapsed, 1),
        "items": items,
        "per_s": round(items / elapsed, 1),
        "rss_growth_mib": round(growth / 2**20, 1),
        "rss_peak_mib": round(peak / 2**20, 1),
    }


def run_backend(backend: str, n: int, es_url: str) -> dict[str, Any]:
    """Fill, export and import on one backend; the figures of each step."""
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        workdir = Path(tmp)
        source = _client(backend, workdir, "source", es_url)
        target = _client(backend, workdir, "target", es_url)
        path = workdir / "big.jsonl"
        try:
            for client in (source, target):
                client.services.store.delete_user("big")
            common.progress(f"{backend}: filling {n} memories")
            fill = _measured(lambda: (_fill(source, n), n)[1])

            def export() -> int:
                with path.open("w", encoding="utf-8") as out:
                    return sum(out.write(line) > 0 for line in source.export_user("big", True))

            def load() -> int:
                with path.open(encoding="utf-8") as lines:
                    return target.import_user("big", lines)

            common.progress(f"{backend}: exporting")
            exported = _measured(export)
            size_mib = round(path.stat().st_size / 2**20, 1)
            common.progress(f"{backend}: importing")
            imported = _measured(load)
            assert imported["items"] == n, imported
        finally:
            for client in (source, target):
                client.close()
                drop_store(client.settings)  # the indices too, on a shared node
    return {"fill": fill, "export": exported, "import": imported, "file_mib": size_mib}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    n = 10_000 if args.quick else args.n
    backends = ["sqlite", "elasticsearch"] if args.backend == "both" else [args.backend]
    results = {b: run_backend(b, n, args.es_url) for b in backends}
    for backend, figures in results.items():
        e, i = figures["export"], figures["import"]
        print(
            f"{backend}: {n} memories, {figures['file_mib']} MiB; export {e['seconds']} s "
            f"(RSS +{e['rss_growth_mib']} MiB, peak {e['rss_peak_mib']} MiB), import "
            f"{i['seconds']} s (RSS +{i['rss_growth_mib']} MiB, peak {i['rss_peak_mib']} MiB)"
        )
    common.write_result(NAME, {"n": n, "backends": backends}, results, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
