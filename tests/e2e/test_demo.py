"""``memlane demo`` end to end: the seed scenario on the embedded default, as a newcomer runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_demo_recalls_the_guitar_and_leaves_no_process_behind() -> None:
    """The demo exits 0, prints the recalled line and timings, and stops every child."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLANE_")}
    before = {p.pid for p in psutil.process_iter()}
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "raw mode" in out.stdout
    assert "] 我的爱好是吉他。" in out.stdout
    assert "Timings:" in out.stdout and "retrieve:" in out.stdout
    # Only the demo's own processes: other test sessions on this machine run workers too.
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["pid", "cmdline", "environ"])
        if p.pid not in before and _is_demo_process(p.info["cmdline"], p.info["environ"])
    ]
    assert leftovers == []


def _is_demo_process(cmdline: list[str] | None, environ: dict[str, str] | None) -> bool:
    """A worker, beat or redis-server of a demo (its data dir is a ``memlane-demo-`` temp dir)."""
    cmd = " ".join(cmdline or [])
    if "redis-server" in cmd:
        return "memlane-demo-" in cmd
    return "worker.cli" in cmd and "memlane-demo-" in (environ or {}).get("MEMLANE_DATA_DIR", "")
