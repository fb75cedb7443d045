"""The LLM section says whether the local model's before and after runs scored the same batches."""

from __future__ import annotations

from typing import Any, cast

from benchmarks.report.llm_bench import same_batches
from benchmarks.report.schema_llm import LlmDoc


def _doc(*ids: str) -> LlmDoc:
    return cast(LlmDoc, {"results": {"batches": [{"id": i} for i in ids]}})


def _runs(before: LlmDoc | None, after: LlmDoc | None) -> list[tuple[str, str, Any]]:
    return [
        ("llm_bench", "test server", _doc("a")),
        ("llm_bench_local_before", "before", before),
        ("llm_bench_local_after", "after", after),
    ]


def test_the_same_batches_are_named_as_a_like_for_like_comparison() -> None:
    """Equal batch sets (in any order) are listed, sorted, with their count."""
    text = " ".join(same_batches(_runs(_doc("zh-2", "en-1"), _doc("en-1", "zh-2"))))
    assert "same 2 batches (en-1, zh-2)" in text


def test_different_batches_are_flagged_with_the_overlap() -> None:
    """Different sets get a warning that counts each side and the shared batches."""
    text = " ".join(same_batches(_runs(_doc("a", "b", "c"), _doc("b", "c"))))
    assert "different batches (3 before, 2 after, 2 shared)" in text


def test_nothing_is_said_without_both_local_runs() -> None:
    """With one local run missing there is nothing to compare."""
    assert same_batches(_runs(_doc("a"), None)) == []
