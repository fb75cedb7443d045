"""Export and import keep memory flat: 20,000 memories with vectors, on both backends.

Held in memory at once, 20,000 memories with 384-float vectors take over 250 MB as Python
objects, and their export text over 150 MB. Streaming must stay far below that: the growth of
the process's resident memory (sampled every 10 ms by psutil, a thread of its own) while
exporting every line to a file, and while importing that file into an empty store, stays
under ``GROWTH_BOUND``. (tracemalloc would count exactly, but it slowed the JSON work of the
test five-fold.) ``benchmarks/export_bench.py`` measures the same at 100,000.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import rss_while
from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.models import MemoryFilter
from tests.contract.factories import BASE_TIME, make_memory

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(1200)]

N = int(os.environ.get("MEMLANE_EXPORT_SCALE_N", "20000"))
CHUNK = 1_000
GROWTH_BOUND = 80 * 1024 * 1024


def fill(client: MemoryClient, user_id: str, n: int) -> None:
    """``n`` memories with random unit vectors, written a chunk at a time."""
    rng = np.random.default_rng(7)
    for start in range(0, n, CHUNK):
        vectors = rng.standard_normal((min(CHUNK, n - start), 384))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        client.services.store.upsert(
            [
                make_memory(
                    f"memory number {start + i}: the user said something worth keeping",
                    user_id=user_id,
                    mem_id=f"m{start + i:06d}",
                    seed=None,
                    recorded_at=BASE_TIME + timedelta(seconds=start + i),
                    source_turn_ids=[f"t{start + i}"],
                    metadata={"n": start + i},
                ).replace(embedding=[float(x) for x in vec])
                for i, vec in enumerate(vectors)
            ]
        )


def peak_while(action: Callable[[], object]) -> tuple[object, int]:
    """What ``action`` returned and how far the resident memory rose above its start."""
    result, growth, _ = rss_while(action)
    return result, growth


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def clients(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], redis_client: object
) -> Iterator[tuple[MemoryClient, MemoryClient]]:
    """A source and an empty target client on the backend."""
    built = []
    for name in ("source", "target"):
        if request.param == "sqlite":
            settings = make_settings(data_dir=str(Path(make_settings().data_dir) / name))
        else:
            index = f"{request.getfixturevalue('es_index')}-{name}"
            es_url = request.getfixturevalue("es_url")
            settings = make_settings(
                store={
                    "backend": "elasticsearch",
                    "es_url": es_url,
                    "es_index": index,
                }
            )
        built.append(MemoryClient(settings))
    yield built[0], built[1]
    for client in built:
        client.close()


def test_export_and_import_of_many_memories_stay_flat(
    clients: tuple[MemoryClient, MemoryClient], tmp_path: Path
) -> None:
    """Every memory exported (vectors included) and imported back, each under the peak bound."""
    source, target = clients
    fill(source, "big", N)
    path = tmp_path / "big.jsonl"

    def export() -> int:
        lines = 0
        with path.open("w", encoding="utf-8") as out:
            for line in source.export_user("big", include_embeddings=True):
                out.write(line)
                lines += 1
        return lines

    lines, export_peak = peak_while(export)
    assert lines == N + 1
    assert path.stat().st_size > 100 * N  # the vectors really were written

    def load() -> int:
        with path.open(encoding="utf-8") as lines_in:
            return target.import_user("big", lines_in)

    imported, import_peak = peak_while(load)
    assert imported == N
    every = MemoryFilter(include_superseded=True)
    assert target.services.store.count("big", every) == N
    first, last = target.services.store.get("big", ["m000000", f"m{N - 1:06d}"])
    assert first.metadata == {"n": 0} and last.source_turn_ids == [f"t{N - 1}"]
    assert first.embedding is not None and len(first.embedding) == 384
    mib = f"export +{export_peak >> 20} MiB, import +{import_peak >> 20} MiB"
    print(f"\n{N} memories: resident memory grew {mib}")
    assert export_peak < GROWTH_BOUND, export_peak
    assert import_peak < GROWTH_BOUND, import_peak
