"""Beat's outage log: the first failure, then one line a minute, then the recovery."""

from __future__ import annotations

from worker.lifecycle import OutageLog


def test_first_failure_is_logged_then_one_summary_per_interval() -> None:
    """120 failures in 60 s (one per 0.5 s) make two lines; the second counts the silent ones."""
    log = OutageLog(every_s=30.0)
    decisions = [log.failed(i * 0.5) for i in range(120)]
    logged = [(i, d) for i, d in enumerate(decisions) if d is not None]
    assert logged == [(0, 0), (60, 59)]


def test_recovery_reports_when_the_outage_began_and_resets() -> None:
    """A success after failures returns the outage's start once; the next failure logs again."""
    log = OutageLog(every_s=30.0)
    assert log.succeeded() is None
    assert log.failed(10.0) == 0
    assert log.failed(11.0) is None
    assert log.succeeded() == 10.0
    assert log.succeeded() is None
    assert log.failed(12.0) == 0
