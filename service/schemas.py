"""Request and response shapes, for the OpenAPI document and response serialisation.

Request bodies are *documented* with these models but parsed by :mod:`service.body` and
validated by ``MemoryClient`` itself, so an HTTP caller gets exactly the errors (field path and
message) a Python caller gets.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TurnIn(_Doc):
    """One chat turn, as ``MemoryClient.add_turns`` takes it."""

    role: str = Field(description="user, assistant or system")
    content: str = Field(description="the text; non-blank, at most limits.max_content_chars")
    ts: str | float | None = Field(
        None, description="ISO-8601 (naive = the configured timezone) or epoch seconds; default now"
    )
    turn_id: str | None = Field(None, description="your idempotency key; a re-push is a no-op")
    name: str | None = Field(None, description="the speaker's name")
    session_id: str | None = None
    metadata: dict[str, str | int | float | bool | None] | None = Field(
        None, description="a small flat object"
    )


class PushTurnsRequest(_Doc):
    """Body of ``POST /v1/users/{user}/turns``."""

    turns: list[TurnIn]
    session_id: str | None = Field(None, description="default session of every turn")


class PushTurnsResponse(BaseModel):
    """The ids of the accepted turns, in order (202: consolidation happens in the workers)."""

    turn_ids: list[str]


class SearchRequest(_Doc):
    """Body of ``POST /v1/users/{user}/search``: every parameter of ``MemoryClient.retrieve``."""

    query: str = Field(description="time expressions (yesterday, 上周, in May 2023) are understood")
    top_k: int | None = Field(None, description="1..1000; default retrieval.top_k")
    kinds: list[str] | str | None = Field(None, description="observation, insight, raw, custom")
    time_range: list[str | None] | None = Field(
        None, description="[start, end] ISO-8601, either may be null; a hard filter on event time"
    )
    now: str | None = Field(None, description="ISO-8601; what 'yesterday' is relative to")
    include_pending: bool = Field(False, description="also search turns not yet consolidated")
    rerank: bool | None = Field(None, description="use the configured reranker (default: config)")


class MemoryOut(BaseModel):
    """A stored memory (every field but the embedding)."""

    model_config = ConfigDict(extra="allow")

    id: str
    user_id: str
    kind: str
    content: str
    recorded_at: str
    keywords: list[str] = []
    subject: str | None = None
    event_time: str | None = None
    time_granularity: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    status: str = "active"
    superseded_by: str | None = None
    valid_to: str | None = None
    reason: str | None = Field(None, description="why it stopped being active: edited, ...")
    valid_from: str | None = None
    merges: list[dict[str, Any]] = Field([], description="provenance absorbed from duplicates")
    source_turn_ids: list[str] = []
    session_id: str | None = None
    batch_id: str | None = None
    importance: float = 0.5
    language: str | None = None
    metadata: dict[str, Any] = {}


class ExplanationOut(BaseModel):
    """Why a result ranked where it did."""

    knn_rank: int | None = Field(None, description="rank in the vector search (1 = best)")
    bm25_rank: int | None = Field(None, description="rank in the keyword search")
    fused: float = Field(description="normalised reciprocal-rank fusion score")
    boosts: dict[str, float] = Field(description="insight, importance, recency, time")
    rerank_score: float | None = None


class SearchResult(BaseModel):
    """One search result."""

    memory: MemoryOut
    score: float
    pending: bool = Field(description="a turn still waiting for consolidation")
    explanation: ExplanationOut


class SearchResponse(BaseModel):
    """Best first."""

    results: list[SearchResult]


class FlushRequest(_Doc):
    """Body of ``POST /v1/users/{user}/flush`` (may be empty)."""

    wait: bool = Field(True, description="wait until the user's turns are stored")
    timeout: float = Field(30.0, description="seconds to wait, 0..120")


class FlushResponse(BaseModel):
    """True only when none of the user's turns is buffered or dead-lettered."""

    flushed: bool


class ForgetResponse(BaseModel):
    """How many memories were deleted (buffered turns are gone too)."""

    deleted: int


class PendingResponse(BaseModel):
    """Turns still waiting for consolidation, and the last consolidated stream id."""

    user_id: str
    pending: int
    watermark: str | None


class ImportMemoriesRequest(_Doc):
    """Body of ``POST /v1/users/{user}/memories``: ready-made memories."""

    memories: list[dict[str, Any]]
    now: str | None = None


class ImportMemoriesResponse(BaseModel):
    """The memory ids (deterministic: importing twice changes nothing)."""

    ids: list[str]


class ErrorDetail(BaseModel):
    """What went wrong."""

    type: str = Field(description="InvalidInput, NotFound, Unauthorized, RateLimited, ...")
    message: str
    field: str | None = Field(None, description="InvalidInput only: the field path")
    detail: str | None = Field(None, description="InvalidInput only: 'field: message'")


class ErrorResponse(BaseModel):
    """Every error response has this shape."""

    error: ErrorDetail


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    checks: dict[str, str] = {}


class MemoryPageOut(BaseModel):
    """One page of memories, newest first; pass ``cursor`` back for the next (null: done)."""

    memories: list[MemoryOut]
    cursor: str | None


class UpdateMemoryRequest(_Doc):
    """Body of ``PATCH /v1/users/{user}/memories/{id}``: what changes (null keeps it)."""

    content: str | None = None
    metadata: dict[str, str | int | float | bool | None] | None = Field(
        None, description="replaces the old metadata"
    )
    event_time: str | None = Field(None, description="ISO-8601")


class DeleteMemoryResponse(BaseModel):
    """How many memories changed (0: it was already deleted)."""

    deleted: int


class VersionOut(BaseModel):
    """One version of a memory."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    content: str
    status: str
    reason: str | None
    valid_from: str | None
    valid_to: str | None
    superseded_by: str | None
    supersedes: list[str]
    source_turn_ids: list[str]
    batch_id: str | None
    merges: list[dict[str, Any]]


class HistoryOut(BaseModel):
    """Every version linked to the memory, oldest first."""

    versions: list[VersionOut]


class ImportResponse(BaseModel):
    """How many memories were imported."""

    imported: int


class UserOut(BaseModel):
    """What an operator (or a tenant, of its own users) sees of one user."""

    user_id: str
    memories: int = Field(description="active memories")
    stored: int = Field(description="every stored version")
    pending: int = Field(description="turns waiting for consolidation")
    last_activity: str | None
    dead_letters: int = Field(0, description="parked batches (GET .../dead-letters)")


class UserPageOut(BaseModel):
    """One page of users in id order; pass ``cursor`` back for the next."""

    users: list[UserOut]
    cursor: str | None


class BufferedTurnOut(BaseModel):
    """A turn as it waits in the buffer (or in a dead letter)."""

    entry_id: str = Field(description="its Redis stream entry id")
    turn_id: str
    role: str
    content: str
    ts: str = Field(description="ISO-8601")
    session_id: str | None
    name: str | None


class BufferedTurnsOut(BaseModel):
    """The user's buffered turns, oldest first (at most ``limit``), and how many there are."""

    user_id: str
    turns: list[BufferedTurnOut]
    total: int


class DeadLetterOut(BaseModel):
    """A parked batch: why it failed (secrets masked), when, and its turns."""

    batch_id: str
    reason: str
    at: str = Field(description="ISO-8601, UTC")
    turns: list[BufferedTurnOut]


class DeadLettersOut(BaseModel):
    """The user's dead letters, oldest first."""

    user_id: str
    dead_letters: list[DeadLetterOut]


class ReplayOut(BaseModel):
    """The replay is queued; a worker runs it (the dead letter goes once its turns are stored)."""

    batch_id: str
    queued: bool


class ModelUsageOut(BaseModel):
    """One model's LLM calls and tokens in one day."""

    calls: int
    prompt_tokens: int
    completion_tokens: int


class DayUsageOut(BaseModel):
    """One UTC day of the user's LLM usage (zeros on a day without calls)."""

    day: str = Field(description="YYYY-MM-DD, UTC")
    calls: int
    prompt_tokens: int
    completion_tokens: int
    by_model: dict[str, ModelUsageOut]


class UsageOut(BaseModel):
    """The user's LLM usage per UTC day, oldest first, every day of the span included."""

    user_id: str
    days: list[DayUsageOut]
