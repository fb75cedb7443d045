"""The metrics' pure parts: the buffer summary, the worker's sample directory, the counters."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from memlane.buffer.gauges import summarise
from memlane.buffer.turns import PendingUser
from memlane.config import Settings
from memlane.metrics import (
    Stage,
    count_batch,
    count_embedding,
    count_llm_call,
    count_llm_error,
    metrics,
    stage,
)
from worker.metrics import empty_dir, metrics_dir


def test_summary_totals_turns_and_takes_the_oldest_arrival() -> None:
    """Turns are summed, users counted, and the age is that of the oldest arrival."""
    users = [PendingUser("a", 1_000, 2_000, 3), PendingUser("b", 4_000, 4_000, 2)]
    got = summarise(users, [1_000, 4_000], now_ms=11_000)
    assert (got.turns, got.users, got.oldest_age_s) == (5, 2, 10.0)


def test_empty_buffer_has_age_zero() -> None:
    """No pending user: nothing waits, so the age is 0 (not the time since the epoch)."""
    got = summarise([], [], now_ms=1_700_000_000_000)
    assert (got.turns, got.users, got.oldest_age_s) == (0, 0, 0.0)


def test_worker_dir_defaults_under_the_data_dir_by_port(tmp_path: Path) -> None:
    """Without a configured directory, each worker port gets its own under the data dir."""
    settings = Settings(data_dir=str(tmp_path))
    assert metrics_dir(settings, 9500) == tmp_path / "metrics" / "worker-9500"
    chosen = Settings(data_dir=str(tmp_path), metrics={"multiproc_dir": str(tmp_path / "m")})
    assert metrics_dir(chosen, 9500) == tmp_path / "m"


def test_empty_dir_removes_only_old_sample_files(tmp_path: Path) -> None:
    """A restart removes the previous run's ``*.db`` files and leaves anything else."""
    (tmp_path / "counter_12.db").write_bytes(b"x")
    (tmp_path / "histogram_13.db").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("keep")
    assert empty_dir(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert empty_dir(tmp_path / "new") == 0 and (tmp_path / "new").is_dir()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_recording_functions_move_their_series() -> None:
    """Each call moves exactly its series: a batch, a stage, an LLM call and error, an embed."""
    metrics()
    before = {
        "batches": _sample("memlane_batches_consolidated_total"),
        "turns": _sample("memlane_turns_consolidated_total"),
        "store": _sample("memlane_batch_stage_seconds_count", stage="store"),
        "calls": _sample("memlane_llm_calls_total", model="m-unit", purpose="extract"),
        "prompt": _sample("memlane_llm_tokens_total", model="m-unit", kind="prompt"),
        "errors": _sample("memlane_llm_errors_total", model="m-unit", error="ValueError"),
        "texts": _sample("memlane_embedding_texts_total", kind="passage"),
    }
    count_batch(4, 0.2)
    with stage(Stage.STORE):
        pass
    count_llm_call("m-unit", "extract", 120, 30, 0.5)
    count_llm_error("m-unit", ValueError("boom"))
    count_embedding("passage", 7)
    assert _sample("memlane_batches_consolidated_total") == before["batches"] + 1
    assert _sample("memlane_turns_consolidated_total") == before["turns"] + 4
    assert _sample("memlane_batch_stage_seconds_count", stage="store") == before["store"] + 1
    assert _sample("memlane_llm_calls_total", model="m-unit", purpose="extract") == (
        before["calls"] + 1
    )
    assert _sample("memlane_llm_tokens_total", model="m-unit", kind="prompt") == (
        before["prompt"] + 120
    )
    assert _sample("memlane_llm_errors_total", model="m-unit", error="ValueError") == (
        before["errors"] + 1
    )
    assert _sample("memlane_embedding_texts_total", kind="passage") == before["texts"] + 7


def test_a_failed_stage_is_not_observed() -> None:
    """A stage that raises is not timed (its batch was not done)."""
    metrics()
    before = _sample("memlane_batch_stage_seconds_count", stage="extract")
    try:
        with stage(Stage.EXTRACT):
            raise RuntimeError("model down")
    except RuntimeError:
        pass
    assert _sample("memlane_batch_stage_seconds_count", stage="extract") == before


def test_no_metric_has_a_user_or_content_label() -> None:
    """Labels come from fixed sets and model names: never a user, a tenant or a text."""
    forbidden = {"user", "user_id", "tenant", "content", "query", "session", "batch_id"}
    for family in REGISTRY.collect():
        if family.name.startswith("memlane_"):
            for s in family.samples:
                assert not forbidden & set(s.labels), (family.name, s.labels)
