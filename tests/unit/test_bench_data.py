"""Benchmarks without their data say in one line where it goes, instead of a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import guard

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module", ["benchmarks.guard", "benchmarks.run_all", "benchmarks.recall_bench"]
)
def test_missing_benchmark_data_is_one_line_and_a_failure(module: str, tmp_path: Path) -> None:
    """`make bench-guard` / `make bench` on an empty data dir: exit 1, one line, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLANE_")}
    out = subprocess.run(
        [sys.executable, "-m", module, "--data", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert str(tmp_path / "locomo-dev.json") in lines[0]
    assert "../shared/bench/" in lines[0] and "--data" in lines[0]
    assert "snap-research/LoCoMo" in lines[0]


def test_each_cpu_model_after_the_first_gets_a_baseline_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard compares with this CPU model's baseline; a new model is compared with the first
    baseline until ``--update-baseline`` writes its own file (never over the first one)."""
    first, others = tmp_path / "baseline.json", tmp_path / "baselines"
    monkeypatch.setattr(guard, "BASELINE", first)
    monkeypatch.setattr(guard, "BASELINES", others)
    first.write_text(json.dumps({"machine": {"cpu": "Intel(R) Xeon(R) Processor"}}))
    assert guard.baseline_for("Intel(R) Xeon(R) Processor", update=True) == first
    assert guard.baseline_for("AMD EPYC", update=False) == first
    assert guard.baseline_for("AMD EPYC", update=True) == others / "amd-epyc.json"
    others.mkdir()
    (others / "amd-epyc.json").write_text("{}")
    assert guard.baseline_for("AMD EPYC", update=False) == others / "amd-epyc.json"
