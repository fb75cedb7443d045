"""Run a snippet of Python in a fresh interpreter with a clean OpenMP environment.

libgomp reads its settings once per process, so tests of the local model's threads run it in
a process of its own. The snippet prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_probe(code: str, *args: str, **env: str) -> dict[str, Any]:
    """The JSON object ``code`` printed last, run with ``args`` and ``env`` (no OMP_*/GOMP_*)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
