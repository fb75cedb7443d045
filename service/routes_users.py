"""Routes over what ``MemoryClient`` did before the memory API: push, search, flush, forget."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from memlane.errors import InvalidInput
from service import fastpush
from service import schemas as s
from service import search as searching
from service.body import to_datetime
from service.context import Caller, Ctx
from service.specs import body_of

router = APIRouter(prefix="/v1/users/{user}", tags=["users"])
MAX_FLUSH_WAIT_S = 120.0


@router.post(
    "/turns",
    status_code=202,
    response_model=s.PushTurnsResponse,
    openapi_extra=body_of(s.PushTurnsRequest),
    summary="Push chat turns (MemoryClient.add_turns)",
)
async def push_turns(user: str, request: Request, ctx: Ctx, who: Caller) -> JSONResponse:
    """Validate and buffer turns; returns their ids at once (consolidation runs in workers).

    A turn whose ``turn_id`` was pushed before is a no-op. A bad turn refuses the whole call
    (422 naming the field) and nothing is written.
    """
    # service.fastlane.FastLane answers this request before FastAPI sees it; the route
    # documents the endpoint and runs the same steps should a request reach it.
    body = await ctx.json_body(request, fastpush.FIELDS, ("turns",))
    ids = await fastpush.push_turns(ctx, who, user, body)
    return JSONResponse({"turn_ids": ids}, 202)


@router.post(
    "/search",
    response_model=s.SearchResponse,
    openapi_extra=body_of(s.SearchRequest),
    summary="Search the user's memories (MemoryClient.retrieve)",
)
async def search(user: str, request: Request, ctx: Ctx, who: Caller) -> Response:
    """The user's memories most relevant to ``query``, best first, each with its explanation.

    The ``Server-Timing`` header gives the milliseconds spent in ``retrieve`` and in the whole
    handler (body, auth and serialisation included).
    """
    # service.fastlane.FastLane answers this request before FastAPI sees it; the route
    # documents the endpoint and runs the same steps should a request reach it.
    started = time.perf_counter()
    body = await ctx.json_body(request, searching.FIELDS, searching.REQUIRED)
    out, timing = await searching.search(ctx, who, user, body, started)
    return Response(out, media_type="application/json", headers={"Server-Timing": timing})


@router.post(
    "/flush",
    response_model=s.FlushResponse,
    openapi_extra=body_of(s.FlushRequest),
    summary="Consolidate the user's turns now (MemoryClient.flush)",
)
async def flush(user: str, request: Request, ctx: Ctx, who: Caller) -> dict[str, Any]:
    """Ask for consolidation now; with ``wait`` (default) wait until it is done or ``timeout``."""
    body = await ctx.json_body(request, ("wait", "timeout"))
    uid = ctx.inside(who, user)
    wait = body.get("wait", True)
    timeout = body.get("timeout", 30.0)
    if not isinstance(wait, bool):
        raise InvalidInput("wait", f"must be true or false, got {type(wait).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidInput("timeout", "must be a number of seconds")
    if not 0 <= timeout <= MAX_FLUSH_WAIT_S:
        raise InvalidInput("timeout", f"must be between 0 and {MAX_FLUSH_WAIT_S:.0f} seconds")
    done = await ctx.call(ctx.client.flush, uid, wait, float(timeout))
    return {"flushed": done}


@router.delete(
    "",
    response_model=s.ForgetResponse,
    summary="Forget the user: memories, buffered turns, everything (MemoryClient.forget_user)",
)
async def forget(user: str, ctx: Ctx, who: Caller) -> dict[str, Any]:
    """Delete everything about the user. Forget wins over any worker busy with the user."""
    uid = ctx.inside(who, user)
    return {"deleted": await ctx.call(ctx.client.forget_user, uid)}


@router.get(
    "/pending",
    response_model=s.PendingResponse,
    summary="Turns waiting for consolidation (MemoryClient.pending, .watermark)",
)
async def pending(user: str, ctx: Ctx, who: Caller) -> dict[str, Any]:
    """How many of the user's turns are buffered, and the last consolidated stream id."""
    uid = ctx.inside(who, user)

    def read() -> dict[str, Any]:
        return {
            "user_id": who.outside(uid),
            "pending": ctx.client.pending(uid),
            "watermark": ctx.client.watermark(uid),
        }

    return await ctx.call(read)


@router.post(
    "/memories",
    status_code=201,
    response_model=s.ImportMemoriesResponse,
    openapi_extra=body_of(s.ImportMemoriesRequest),
    summary="Import ready-made memories (MemoryClient.import_memories)",
)
async def import_memories(user: str, request: Request, ctx: Ctx, who: Caller) -> dict[str, Any]:
    """Validate every memory first (nothing written if one is bad), embed, upsert by id."""
    body = await ctx.json_body(request, ("memories", "now"), ("memories",))
    uid = ctx.inside(who, user)
    now = to_datetime(body.get("now"), "now")
    ids = await ctx.call(ctx.client.import_memories, uid, body["memories"], now)
    return {"ids": ids}
