"""Fusion never hurts (issue 14): on every recall-bench formulation the defaults are within
1 point of the better of dense-only and BM25-only, at R@5 and R@10.

Runs :func:`benchmarks.never_hurts.run` over the development slices, read in place from
``MEMLANE_BENCH_DATA`` (default: ``../shared/bench`` from the repository root). The local
model's vectors are cached by text in ``MEMLANE_BENCH_WORKDIR`` (default: the benches'
``/tmp/memlane-bench``), shared with ``make bench``: a first run embeds the slices (several
minutes on 2 cores), later runs take about 2-3 minutes. Skipped, saying so, where the slices
are not present.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.common import DEFAULT_DATA, data_dir
from benchmarks.corpus import DEFAULT_WORKDIR
from benchmarks.datasets import LOCOMO_FILE, MADIAL_DIALOGUE_FILE, MADIAL_MEMORY_FILE
from benchmarks.never_hurts import TOLERANCE, run

pytestmark = pytest.mark.slow

DATA = data_dir(os.environ.get("MEMLANE_BENCH_DATA", DEFAULT_DATA))
FILES = (LOCOMO_FILE, MADIAL_DIALOGUE_FILE, MADIAL_MEMORY_FILE)


@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    not all((DATA / f).exists() for f in FILES), reason=f"bench slices not found in {DATA}"
)
def test_defaults_never_lose_more_than_a_point_to_either_component(tmp_path: Path) -> None:
    """defaults >= max(dense only, BM25 only) - 1 at R@5 and R@10, every formulation and mode."""
    workdir = Path(os.environ.get("MEMLANE_BENCH_WORKDIR", str(DEFAULT_WORKDIR)))
    result = run(DATA, tmp_path, workdir / "cache" / "recall-vectors.json")
    assert len(result["rows"]) == 9  # 6 MADial formulations, 3 LoCoMo modes
    losing = [
        (r["dataset"], r["formulation"], r["margin r@5"], r["margin r@10"])
        for r in result["rows"]
        if min(r["margin r@5"], r["margin r@10"]) < -TOLERANCE
    ]
    assert not losing, losing
