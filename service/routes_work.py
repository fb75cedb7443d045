"""Routes over a user's work still in Redis: buffered turns, dead letters (and their replay),
LLM usage per day. What the memory inspector's "pending and failed work" panel reads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from memlane.buffer.turns import BufferedTurn
from memlane.errors import ConfigError
from service import schemas as s
from service.context import Caller, Ctx
from service.serialize import plain

router = APIRouter(prefix="/v1/users/{user}", tags=["work"])


def turn_json(entry: BufferedTurn) -> dict[str, Any]:
    """A buffered turn as the API shows it (its stream entry id, the turn's own fields)."""
    t = entry.turn
    return {
        "entry_id": entry.entry_id,
        "turn_id": t.turn_id,
        "role": t.role.value,
        "content": t.content,
        "ts": t.ts.isoformat(),
        "session_id": t.session_id,
        "name": t.name,
    }


@router.get(
    "/turns",
    response_model=s.BufferedTurnsOut,
    summary="The user's buffered turns, oldest first (MemoryClient.buffered_turns)",
)
async def buffered_turns(user: str, ctx: Ctx, who: Caller, limit: int = 100) -> dict[str, Any]:
    """Turns pushed but not consolidated yet: at most ``limit`` (1..1000); ``total`` counts all."""
    uid = ctx.inside(who, user)

    def read() -> dict[str, Any]:
        turns = ctx.client.buffered_turns(uid, limit)
        return {
            "user_id": who.outside(uid),
            "turns": [turn_json(t) for t in turns],
            "total": ctx.client.pending(uid),
        }

    return await ctx.call(read)


@router.get(
    "/dead-letters",
    response_model=s.DeadLettersOut,
    summary="The user's dead-lettered batches with reasons and turns (MemoryClient.dead_letters)",
)
async def dead_letters(user: str, ctx: Ctx, who: Caller) -> dict[str, Any]:
    """Batches that failed for good, oldest first; reasons have secrets masked."""
    uid = ctx.inside(who, user)
    letters = await ctx.call(ctx.client.dead_letters, uid)
    return {
        "user_id": who.outside(uid),
        "dead_letters": [
            {
                "batch_id": d.batch_id,
                "reason": d.reason,  # redacted by the client
                "at": plain(d.at),
                "turns": [turn_json(t) for t in d.turns],
            }
            for d in letters
        ],
    }


@router.post(
    "/dead-letters/{batch_id}/replay",
    status_code=202,
    response_model=s.ReplayOut,
    summary="Queue the replay of one of the user's dead letters (as memlane replay)",
)
async def replay(user: str, batch_id: str, ctx: Ctx, who: Caller) -> JSONResponse:
    """404 unless the batch is one of this user's dead letters; a worker runs the replay."""
    uid = ctx.inside(who, user)
    letter = await ctx.call(ctx.client.dead_letter, uid, batch_id)
    if ctx.replay is None:
        raise ConfigError("this service was started without a task sender: use memlane serve")
    await ctx.call(ctx.replay, letter.batch_id)
    return JSONResponse({"batch_id": letter.batch_id, "queued": True}, 202)


@router.get(
    "/usage",
    response_model=s.UsageOut,
    summary="The user's LLM calls and tokens per UTC day (MemoryClient.usage_by_day)",
)
async def usage(user: str, ctx: Ctx, who: Caller, days: int = 30) -> dict[str, Any]:
    """The last ``days`` (1..90) UTC days up to today, oldest first; quiet days are zeros."""
    uid = ctx.inside(who, user)
    by_day = await ctx.call(ctx.client.usage_by_day, uid, days)
    return {"user_id": who.outside(uid), "days": [plain(d) for d in by_day]}
