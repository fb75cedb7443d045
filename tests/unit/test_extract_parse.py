"""Validation of the extraction JSON into drafts, and drafts into memories (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from memlane.buffer.turns import BufferedTurn
from memlane.errors import LLMBadOutput
from memlane.ids import observation_id
from memlane.models import MemoryKind, Role, TimeGranularity, Turn
from pipelines.extraction.rules import (
    ObservationDraft,
    clamp_importance,
    coarser,
    draft_memory,
    extraction_to_json,
    parse_event_time,
    parse_extraction,
)

SH = ZoneInfo("Asia/Shanghai")


def obs(**fields: Any) -> dict[str, Any]:
    """A valid observation with some fields overridden."""
    return {"content": "用户爱好是吉他。", "source_turns": [1], **fields}


def parse(raw: Any, turns: int = 3, ids: tuple[str, ...] = ("o-known",)) -> Any:
    """parse_extraction with defaults."""
    return parse_extraction(raw, turns, ids, SH, {"user_id": "u", "batch_id": "b"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "expected a JSON object"),
        ({}, "observations: missing"),
        ({"memories": []}, "observations: missing"),
        ({"observations": "用户爱好是吉他"}, "observations: missing or not a list"),
        ({"observations": ["text"]}, r"observations\[0\]: expected an object"),
        ({"observations": [{"text": "x"}]}, r"observations\[0\].content: missing"),
        ({"observations": [obs(content="  ")]}, r"observations\[0\].content: missing"),
        ({"observations": [obs(keywords={"a": 1})]}, r"keywords: expected a list"),
        ({"observations": [], "links": {"a": 1}}, "links: expected a list"),
        ({"observations": [obs()], "links": ["x"]}, r"links\[0\]: expected an object"),
        ({"observations": [obs()] * 51}, "more than 50"),
    ],
)
def test_structural_faults_name_the_path(raw: Any, message: str) -> None:
    """Wrong shapes raise LLMBadOutput naming where the fault is."""
    with pytest.raises(LLMBadOutput, match=message):
        parse(raw)


def test_a_full_observation_is_read() -> None:
    """Every field is read and normalised."""
    raw = {
        "observations": [
            obs(
                content="  用户的妹妹\n计划去东京读研。 ",
                event_time="2025-09",
                time_granularity="month",
                keywords=["妹妹", "东京", "妹妹", ""],
                importance=0.6,
                source_turns=[2, "3", 9, 0],
                about="妹妹",
                subject="Family",
            )
        ],
        "links": [],
    }
    [draft] = parse(raw).observations
    assert draft == ObservationDraft(
        content="用户的妹妹 计划去东京读研。",
        event_time=datetime(2025, 9, 1, tzinfo=SH),
        time_granularity=TimeGranularity.MONTH,
        keywords=("妹妹", "东京"),
        importance=0.6,
        source_turns=(2, 3),
        about="妹妹",
        subject="family",
    )


@pytest.mark.parametrize(
    ("text", "expected", "granularity"),
    [
        ("2024", datetime(2024, 1, 1, tzinfo=SH), "year"),
        ("2024-10", datetime(2024, 10, 1, tzinfo=SH), "month"),
        ("2024-10-26", datetime(2024, 10, 26, tzinfo=SH), "day"),
        ("2024/10/26", datetime(2024, 10, 26, tzinfo=SH), "day"),
        ("2024-10-26T21:26", datetime(2024, 10, 26, 21, 26, tzinfo=SH), "minute"),
        ("2024-10-26 21:26:00+00:00", datetime(2024, 10, 26, 21, 26, tzinfo=UTC), "minute"),
        ("2024-10-26T13:26:00Z", datetime(2024, 10, 26, 13, 26, tzinfo=UTC), "minute"),
    ],
)
def test_event_times_are_tolerant_of_date_only_strings(
    text: str, expected: datetime, granularity: str
) -> None:
    """Dates of any precision parse; naive ones take the configured timezone."""
    assert parse_event_time(text, SH) == (expected, TimeGranularity(granularity))


@pytest.mark.parametrize("text", [None, "", "null", "last week", "2024-13-01", "0999", True, 3.5])
def test_unreadable_event_times_become_none(text: Any) -> None:
    """What cannot be read is no event time, not a failed batch."""
    assert parse_event_time(text, SH) == (None, None)


def test_granularity_is_the_coarser_of_text_and_declaration() -> None:
    """A declared granularity finer than the text is not believed; coarser is kept."""
    assert coarser(TimeGranularity.MONTH, "day") is TimeGranularity.MONTH
    assert coarser(TimeGranularity.DAY, "month") is TimeGranularity.MONTH
    assert coarser(TimeGranularity.DAY, "fortnight") is TimeGranularity.DAY
    assert coarser(TimeGranularity.MINUTE, None) is TimeGranularity.MINUTE
    [draft] = parse({"observations": [obs(event_time=None, time_granularity="day")]}).observations
    assert draft.time_granularity is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.7, 0.7), (7, 1.0), (-1, 0.0), ("0.3", 0.3), ("high", 0.5), (None, 0.5), (True, 0.5)],
)
def test_importance_is_clamped(value: Any, expected: float) -> None:
    """Importance always ends in [0, 1]."""
    assert clamp_importance(value) == expected
    assert clamp_importance(float("nan")) == 0.5


def test_links_to_candidates_are_kept_and_foreign_ids_refused() -> None:
    """Only ids that were offered survive; others are logged as refused."""
    raw = {
        "observations": [obs(), obs(content="用户住在上海。")],
        "links": [
            {"observation": 1, "memory_id": "o-known", "relation": "contradiction"},
            {"observation": 0, "memory_id": "o-someone-else", "relation": "duplicate"},
            {"observation": 0, "memory_id": None, "relation": "duplicate"},
            {"observation": 5, "memory_id": "o-known", "relation": "duplicate"},
            {"observation": 0, "memory_id": "o-known", "relation": "delete"},
        ],
    }
    with capture_logs() as logs:
        links = parse(raw).links
    assert [(k.observation, k.memory_id, k.relation) for k in links] == [
        (1, "o-known", "contradiction")
    ]
    refused = [e for e in logs if e["event"] == "foreign_memory_id_refused"]
    assert [e["memory_id"] for e in refused] == ["o-someone-else", "None"]
    assert refused[0]["user_id"] == "u" and refused[0]["batch_id"] == "b"


def test_the_cached_form_reads_back_identically() -> None:
    """extraction_to_json -> parse_extraction is the identity."""
    raw = {
        "observations": [obs(event_time="2024-10-21", keywords=["吉他"], subject="hobby")],
        "links": [{"observation": 0, "memory_id": "o-known", "relation": "duplicate"}],
    }
    first = parse(raw)
    assert parse(extraction_to_json(first)) == first


def _entries() -> list[BufferedTurn]:
    base = datetime(2024, 10, 26, 21, 26, tzinfo=SH)
    return [
        BufferedTurn(
            f"1-{i}",
            Turn("u", Role.USER, f"t{i}", base.replace(minute=20 + i), f"t{i}", session_id="s"),
        )
        for i in range(3)
    ]


def test_a_draft_becomes_an_observation_memory() -> None:
    """Id from (user, batch, content); recorded_at from the latest source turn."""
    draft = ObservationDraft("用户爱好是吉他。", source_turns=(1, 3), subject="hobby", about="user")
    now = datetime(2025, 1, 1, tzinfo=UTC)
    memory = draft_memory("u", "b-1", _entries(), draft, {"prompt_version": "extract.zh@1"}, now)
    assert memory.id == observation_id("u", "b-1", "用户爱好是吉他。")
    assert memory.kind is MemoryKind.OBSERVATION
    assert memory.source_turn_ids == ["t0", "t2"]
    assert memory.recorded_at == datetime(2024, 10, 26, 21, 22, tzinfo=SH)
    assert memory.session_id == "s" and memory.batch_id == "b-1"
    assert memory.language == "zh" and memory.metadata == {"prompt_version": "extract.zh@1"}


def test_a_draft_without_sources_cites_the_whole_batch_and_keeps_who_it_is_about() -> None:
    """No valid source turn: provenance is the batch; 'about' someone else goes to metadata."""
    draft = ObservationDraft("The user's sister studies in Tokyo.", about="sister")
    memory = draft_memory("u", "b-1", _entries(), draft, {}, datetime(2025, 1, 1, tzinfo=UTC))
    assert memory.source_turn_ids == ["t0", "t1", "t2"]
    assert memory.metadata == {"about": "sister"} and memory.language == "en"
