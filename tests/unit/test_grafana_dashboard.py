"""docs/grafana-memlane.json queries only metrics memlane exports, with labels they carry."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from memlane.metrics import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "docs" / "grafana-memlane.json").read_text(encoding="utf-8"))
# Read from Redis at scrape time (memlane.buffer.gauges), with their label names.
SCRAPED = {
    "memlane_buffered_turns": set(),
    "memlane_buffered_users": set(),
    "memlane_oldest_pending_age_seconds": set(),
    "memlane_dead_letters_parked": set(),
    "memlane_redis_up": set(),
    "memlane_llm_checks_total": {"model", "check"},
}
NAME = re.compile(r"\bmemlane_[a-z_]+")
BY = re.compile(r"by \(([a-z_, ]+)\)")


def exported() -> dict[str, set[str]]:
    """Every series name memlane exports, with its label names."""
    names = dict(SCRAPED)
    for field in dataclasses.fields(metrics()):
        obj = getattr(metrics(), field.name)
        # prometheus_client keeps a metric's label names only in private attributes.
        labels, base = set(obj._labelnames), obj._name
        if obj._type == "counter":
            names[f"{base}_total"] = labels
        else:
            for suffix in ("_bucket", "_count", "_sum"):
                names[base + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def expressions() -> list[str]:
    """Every query of every panel."""
    return [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]


def test_every_query_names_an_exported_metric_and_its_labels() -> None:
    """A renamed metric or label breaks this test, not a panel nobody looks at."""
    names = exported()
    for expr in expressions():
        used = NAME.findall(expr)
        assert used, expr
        for name in used:
            assert name in names, (name, expr)
            for group in BY.findall(expr):
                labels = {g.strip() for g in group.split(",")}
                assert labels <= names[name], (labels, name, expr)


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    """Queue depth, lag, stage latency, LLM calls/tokens/errors, dead letters, retrieve latency."""
    joined = "\n".join(expressions())
    for name in (
        "memlane_buffered_turns",
        "memlane_oldest_pending_age_seconds",
        "memlane_batch_stage_seconds_bucket",
        "memlane_llm_calls_total",
        "memlane_llm_tokens_total",
        "memlane_llm_errors_total",
        "memlane_dead_letters_total",
        "memlane_retrieve_seconds_bucket",
    ):
        assert name in joined, name
    assert "histogram_quantile(0.95, sum by (le, stage)" in joined
