"""memlane's result objects as JSON, with user ids turned back into the caller's own ids."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import Any

from memlane import Memory, RetrievedMemory
from service.tenancy import Principal

_SCALARS = frozenset((str, int, float, bool))
# Fields that hold a user id: rewritten for the caller by Principal.outside.
USER_FIELDS = ("user_id",)


def plain(value: Any) -> Any:
    """Datetimes as ISO-8601, enums as their values, dataclasses and containers recursively."""
    if value is None or type(value) in _SCALARS:  # most fields: answered before the checks
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def memory_json(memory: Memory, who: Principal, embedding: bool = False) -> dict[str, Any]:
    """Every field of a memory (the embedding only on request), user id as the caller knows it."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(memory):
        if f.name == "embedding" and not embedding:
            continue
        out[f.name] = plain(getattr(memory, f.name))
    for name in USER_FIELDS:
        if isinstance(out.get(name), str):
            out[name] = who.outside(out[name])
    return out


def user_json(user: Any, who: Principal) -> dict[str, Any]:
    """One ``UserSummary`` with the user id as the caller knows it."""
    out: dict[str, Any] = plain(user)
    out["user_id"] = who.outside(out["user_id"])
    return out


def result_json(result: RetrievedMemory, who: Principal) -> dict[str, Any]:
    """One search result with its explanation: component ranks, fused score, boosts, pending."""
    e = result.explanation
    return {
        "memory": memory_json(result.memory, who),
        "score": result.score,
        "pending": result.pending,
        "explanation": {
            "knn_rank": e.knn_rank,
            "bm25_rank": e.bm25_rank,
            "fused": e.fused,
            "boosts": dict(e.boosts),
            "rerank_score": e.rerank_score,
        },
    }
