"""An idle ``memlane up`` is quiet: a start-up summary, a few lines, then nothing per tick.

Issue 17: five idle minutes printed 495 lines in two formats, 436 of them the dispatch tick.
These tests run the real supervisor (Redis, the workers, beat, the HTTP API) on a fresh data
directory with dispatch every 0.5 s, let it idle through well over a hundred ticks, and count.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from memlane.client import MemoryClient
from tests.support.up_proc import Up, client_settings
from tests.support.worker_proc import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.celery]

# structlog's console renderer: ISO time, padded level, then the event.
CONSOLE_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z \[(debug|info|warning|error)\s*\] \S")
MAX_LINES = 20  # the bound for five idle minutes; these tests idle less than that


def _idle(up: Up, seconds: float) -> list[str]:
    """Wait for the summary and both workers, idle ``seconds``, and return the log's lines."""
    up.wait_ready()
    wait_until(lambda: re.search(r"control@\S+ ready\.", up.log()), 60, "the control worker")
    assert "memlane_up" in up.log()
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # idling is the point; the supervisor must stay up throughout
        assert up.proc is not None and up.proc.poll() is None, up.log_tail()
        time.sleep(1.0)
    return up.log().splitlines()


def _dispatch_still_runs(data: Path) -> None:
    """A turn pushed after the quiet period is consolidated: the ticks ran, just silently."""
    with MemoryClient(client_settings(data)) as client:
        client.add_turns("u-quiet", [{"role": "user", "content": "I keep bees on the roof."}])
        wait_until(lambda: client.services.store.count("u-quiet") == 1, 60, "the turn stored")


@pytest.mark.timeout(300)
def test_an_idle_up_prints_a_summary_and_under_twenty_lines_in_one_format(tmp_path: Path) -> None:
    """Ninety idle seconds (180 dispatch ticks) print fewer than 20 lines, all in structlog's
    console format, the first the start-up summary naming Redis, the store and the workers."""
    data = tmp_path / "data"
    up = Up(data, tmp_path / "up.log").start()
    try:
        lines = _idle(up, 90)
        assert len(lines) < MAX_LINES, "\n".join(lines)
        odd = [line for line in lines if not CONSOLE_LINE.match(line)]
        assert odd == [], "\n".join(odd)
        summary = next(line for line in lines if "memlane_up" in line)
        for field in ("redis=unix://", "store='sqlite ", "workers=", "control", "log='console"):
            assert field in summary, summary
        assert "=None" not in summary, summary  # what is not configured is left out
        assert not any("memlane.dispatch" in line for line in lines)
        _dispatch_still_runs(data)
    finally:
        up.cleanup()


@pytest.mark.timeout(240)
def test_an_idle_up_with_json_logs_prints_only_json_lines(tmp_path: Path) -> None:
    """With ``log.format: json`` every line, Celery's and uvicorn's included, is one JSON
    object with a timestamp, a level and an event, and the idle service stays as quiet."""
    data = tmp_path / "data"
    up = Up(data, tmp_path / "up.log", env_extra={"log__format": "json"}).start()
    try:
        lines = _idle(up, 30)
        assert len(lines) < MAX_LINES, "\n".join(lines)
        records = [json.loads(line) for line in lines]
        assert all({"timestamp", "level", "event"} <= set(r) for r in records), lines
        assert any(r.get("logger") == "celery.apps.worker" for r in records)  # Celery's, as JSON
        summary = next(r for r in records if r["event"] == "memlane_up")
        assert set(summary["workers"]) == {"worker", "control"}
        assert summary["log"] == "json INFO"
        _dispatch_still_runs(data)
    finally:
        up.cleanup()
