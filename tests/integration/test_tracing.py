"""OpenTelemetry tracing follows one push through a real prefork worker: add_turns -> dispatch ->
consolidate -> store, the context carried in Redis (with the turns) and in Celery's headers.

Spans are written as JSON lines by the SDK's console exporter (``tracing.console_path``): one
file for this process's client, one for the worker's pool processes. Real Redis and SQLite; raw
mode with the local embedding model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memlane import tracing
from memlane.client import MemoryClient
from memlane.config import Settings
from tests.support.worker_proc import (
    Cluster,
    flush_db,
    fresh_db_url,
    merge,
    wait_until,
    worker_settings_overrides,
)

pytestmark = [pytest.mark.slow, pytest.mark.celery, pytest.mark.redis]

USER = "trace-user-q4"


def spans(path: Path) -> list[dict[str, Any]]:
    """Every span the exporter wrote to ``path`` so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def named(found: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The spans called ``name``."""
    return [s for s in found if s["name"] == name]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str) -> Iterator[Settings]:
    """A Redis database of the test's own, fast batching; this process traces to a file."""
    url = fresh_db_url(redis_url)
    built = make_settings(**merge({"redis": {"url": url}}, worker_settings_overrides()))
    yield built
    tracing.shutdown()  # the rest of the session does not trace
    flush_db(url)


@pytest.mark.timeout(240)
def test_one_push_is_traced_from_add_turns_to_the_store(settings: Settings, tmp_path: Path) -> None:
    """The batch's span links to the add_turns span that pushed its turns; it runs under the
    consolidate task's span, which continues the dispatch span sent in the Celery headers; the
    store write is its child; no span names the user."""
    client_file, worker_file = tmp_path / "client.jsonl", tmp_path / "worker.jsonl"
    tree = {**settings.model_dump(), "tracing": {"enabled": True, "console_path": str(client_file)}}
    traced = Settings.model_validate(tree)
    worker_env = {"tracing__enabled": "true", "tracing__console_path": str(worker_file)}
    with Cluster(settings, tmp_path / "procs") as cluster, MemoryClient(traced) as client:
        turns = [{"role": "user", "content": f"I water the ferns on day {i}"} for i in range(3)]
        client.add_turns(USER, turns)
        [push] = named(spans(client_file), "memlane.add_turns")
        cluster.worker(concurrency=2, **worker_env)
        cluster.beat()
        assert client.flush(USER, wait=True, timeout=120), cluster.tails()
        found = wait_until(
            lambda: (s := spans(worker_file)) and named(s, "memlane.store") and s,
            30,
            "the store span",
        )

    by_id = {s["context"]["span_id"]: s for s in found}
    [batch] = named(found, "memlane.consolidate_batch")
    assert batch["attributes"]["turns"] == 3
    assert [link["context"] for link in batch["links"]] == [
        {k: push["context"][k] for k in ("trace_id", "span_id", "trace_state")}
    ]
    task = by_id[batch["parent_id"]]
    assert task["name"] == "memlane.consolidate"
    dispatch = by_id[task["parent_id"]]
    assert dispatch["name"] == "memlane.dispatch"
    assert dispatch["context"]["trace_id"] == task["context"]["trace_id"]
    [store] = named(found, "memlane.store")
    assert store["parent_id"] == batch["context"]["span_id"]
    for path in (client_file, worker_file):
        assert USER not in path.read_text(encoding="utf-8")


def test_tracing_is_off_unless_configured(settings: Settings) -> None:
    """With the defaults nothing traces: no context to store with a turn, no headers to send."""
    tracing.shutdown()
    assert not settings.tracing.enabled
    with MemoryClient(settings):
        assert not tracing.enabled()
        with tracing.span("memlane.add_turns"):
            assert tracing.current_traceparent() is None and tracing.headers() == {}
