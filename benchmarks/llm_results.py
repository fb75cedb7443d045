"""The results document of the LLM quality bench: the figures, the baselines and the envelope.

The envelope is the one every benchmark writes (``benchmarks.common.write_result``: benchmark,
date, commit, command, machine, params, wall time, results); this bench writes it to a path of
its choice (``--out``) and rewrites it after every batch.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from benchmarks import common
from benchmarks.llm_calls import Vectors
from benchmarks.llm_casefile import Case
from benchmarks.llm_replies import echo_output
from benchmarks.llm_scoring import BatchScore, aggregate, score_batch
from memlane.config import Settings

NAME = "llm_bench"


def summarise(
    cases: Sequence[Case], scores: Sequence[BatchScore], fixed: dict[str, Any]
) -> dict[str, Any]:
    """The results document: overall, per language, per category, baselines and every batch."""
    return {
        "complete": len(scores) == len(cases),
        "overall": aggregate(scores),
        "by_language": {
            lang: aggregate([s for s in scores if s.language == lang])
            for lang in sorted({s.language for s in scores}, reverse=True)
        },
        "by_category": {
            cat: aggregate([s for s in scores if s.category == cat])
            for cat in dict.fromkeys(c.category for c in cases)
            if any(s.category == cat for s in scores)
        },
        **fixed,
        "batches": [asdict(s) for s in scores],
    }


def baselines(cases: Sequence[Case], vectors: Vectors, args: argparse.Namespace) -> dict[str, Any]:
    """The same scores for outputs that do not read: the user's turns echoed, as said or in the
    third person (我 -> 用户, I -> the user). The set is built so these score low."""
    out: dict[str, Any] = {}
    for name, rewrite in (("echo", False), ("echo_third_person", True)):
        echo = [
            score_batch(
                c,
                echo_output(c, rewrite),
                vectors.cosine,
                vectors.tz,
                args.threshold,
                args.copy_threshold,
            )
            for c in cases
        ]
        out[name] = {
            key: _headline(aggregate([e for e in echo if key in ("overall", e.language)]))
            for key in ("overall", *sorted({c.language for c in cases}, reverse=True))
        }
    return out


def _headline(figures: dict[str, Any]) -> dict[str, Any]:
    keys = ("precision", "recall", "f1", "strict_recall")
    out = {k: figures[k] for k in keys}
    out["event_time_recall"] = figures["event_time"]["recall"]
    out["supersede_accuracy"] = figures["supersede"]["accuracy"]
    return out


def public_url(url: str | None) -> str | None:
    """The endpoint URL without any user:password part."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def params_of(
    settings: Settings, args: argparse.Namespace, cases: Sequence[Case]
) -> dict[str, Any]:
    """What produced the figures: the model, the endpoint, the set and the matching rule."""
    llm = settings.llm
    return {
        "mode": "oracle (tests/support/llm_server.py answering with the expected observations)"
        if args.oracle
        else "endpoint",
        "model": llm.model,
        "base_url": "tests/support/llm_server.py" if args.oracle else public_url(llm.base_url),
        "json_mode": llm.json_mode,
        "temperature": llm.temperature,
        "timeout_s": llm.timeout_s,
        "cases": len(cases),
        "languages": dict(Counter(c.language for c in cases)),
        "only": args.only,
        "threshold": args.threshold,
        "copy_threshold": args.copy_threshold,
        "retries_on_transient_failure": args.retries,
        "attempts_on_bad_output": 1,
        "embeddings": f"{settings.embedding.model} (local, passage prefix on both sides)",
        "store": "sqlite (temporary)",
        "timezone": settings.timezone,
    }


def envelope() -> dict[str, Any]:
    """Date, commit, command and machine, taken once when the run starts (the code that runs)."""
    return {
        "benchmark": NAME,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": common.git_commit(),
        "command": common.command_line(),
        "machine": common.machine(),
    }


def write_doc(
    path: Path,
    head: dict[str, Any],
    params: dict[str, Any],
    results: dict[str, Any],
    started: float,
) -> None:
    """The results document, in the envelope every benchmark writes (``common.write_result``).

    ``head`` is the :func:`envelope` of the run; the load average at this write is added, since
    a long run on a shared machine is slowed by whatever else runs meanwhile.
    """
    machine = {**head["machine"], "loadavg_end": common.machine()["loadavg"]}
    doc = {
        **head,
        "machine": machine,
        "params": params,
        "wall_s": round(time.monotonic() - started, 1),
        "results": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
