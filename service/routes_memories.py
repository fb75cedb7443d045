"""Routes of the memory API: list, get, edit, delete, history, export, import, list users."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from memlane.errors import BadRequest
from service import schemas as s
from service.body import read_bytes
from service.context import Caller, Ctx
from service.serialize import memory_json, plain, user_json
from service.specs import body_of, raw_body
from service.tenancy import Principal
from service.users_page import users_page

router = APIRouter(prefix="/v1/users", tags=["memories"])
JSONL = "application/x-ndjson"


@router.get(
    "/{user}/memories",
    response_model=s.MemoryPageOut,
    summary="List the user's memories, newest first (MemoryClient.list_memories)",
)
async def list_memories(
    user: str,
    ctx: Ctx,
    who: Caller,
    kinds: Annotated[list[str] | None, Query(description="repeat for several")] = None,
    status: str = "active",
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """One page; pass ``cursor`` back (with the same filters) for the next one."""
    uid = ctx.inside(who, user)
    page = await ctx.call(ctx.client.list_memories, uid, kinds, status, since, until, cursor, limit)
    return {"memories": [memory_json(m, who) for m in page.memories], "cursor": page.cursor}


@router.get(
    "/{user}/memories/{memory_id}",
    response_model=s.MemoryOut,
    summary="One memory, whatever its status (MemoryClient.get_memory)",
)
async def get_memory(user: str, memory_id: str, ctx: Ctx, who: Caller) -> dict[str, Any]:
    """404 when the user has no such memory; another user's or tenant's memory alike."""
    uid = ctx.inside(who, user)
    return memory_json(await ctx.call(ctx.client.get_memory, uid, memory_id), who)


@router.patch(
    "/{user}/memories/{memory_id}",
    response_model=s.MemoryOut,
    openapi_extra=body_of(s.UpdateMemoryRequest),
    summary="Edit a memory: a new version supersedes it (MemoryClient.update_memory)",
)
async def update_memory(
    user: str, memory_id: str, request: Request, ctx: Ctx, who: Caller
) -> dict[str, Any]:
    """Writes a new version (new id, re-embedded); the old one is superseded, reason edited."""
    body = await ctx.json_body(request, ("content", "metadata", "event_time"))
    uid = ctx.inside(who, user)
    new = await ctx.call(
        ctx.client.update_memory,
        uid,
        memory_id,
        body.get("content"),
        body.get("metadata"),
        body.get("event_time"),
    )
    return memory_json(new, who)


@router.delete(
    "/{user}/memories/{memory_id}",
    response_model=s.DeleteMemoryResponse,
    summary="Delete one memory, soft by default (MemoryClient.delete_memory)",
)
async def delete_memory(
    user: str, memory_id: str, ctx: Ctx, who: Caller, hard: bool = False
) -> dict[str, Any]:
    """Soft: status deleted, never retrieved, kept in history. ``hard``: every version gone."""
    uid = ctx.inside(who, user)
    return {"deleted": await ctx.call(ctx.client.delete_memory, uid, memory_id, hard)}


@router.get(
    "/{user}/memories/{memory_id}/history",
    response_model=s.HistoryOut,
    summary="Every version of a memory, both directions (MemoryClient.memory_history)",
)
async def memory_history(user: str, memory_id: str, ctx: Ctx, who: Caller) -> dict[str, Any]:
    """Oldest first, with status, reason, validity, provenance and merges."""
    uid = ctx.inside(who, user)
    versions = await ctx.call(ctx.client.memory_history, uid, memory_id)
    return {"versions": [plain(v) for v in versions]}


@router.get(
    "/{user}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {JSONL: {}}, "description": "a header line, then memories"}},
    summary="Export the user's memories as JSON lines (MemoryClient.export_user)",
)
async def export_user(
    user: str, ctx: Ctx, who: Caller, include_embeddings: bool = False
) -> StreamingResponse:
    """Streamed, in the versioned format of docs/export-format.md; user ids are yours."""
    uid = ctx.inside(who, user)
    lines = await ctx.call(ctx.client.export_user, uid, include_embeddings)
    # The header is read before the answer starts, so an outage is still a 503, not a cut body.
    first = await ctx.call(next, lines, None)
    return StreamingResponse(_outside_lines(first, lines, who), media_type=JSONL)


def _outside_lines(first: str | None, rest: Iterator[str], who: Principal) -> Iterator[str]:
    if first is not None:
        yield _rewrite(first, who)
        for line in rest:
            yield _rewrite(line, who)


def _rewrite(line: str, who: Principal) -> str:
    if who.admin:
        return line
    obj = json.loads(line)
    if isinstance(obj.get("user_id"), str):
        obj["user_id"] = who.outside(obj["user_id"])
    return json.dumps(obj, ensure_ascii=False) + "\n"


@router.post(
    "/{user}/import",
    status_code=201,
    response_model=s.ImportResponse,
    openapi_extra=raw_body(JSONL, "an export (any user's), as GET .../export gives it"),
    summary="Import an export as the user's memories (MemoryClient.import_user)",
)
async def import_user(user: str, request: Request, ctx: Ctx, who: Caller) -> dict[str, Any]:
    """Every line is validated first (422 names ``lines[i].field``); importing twice is a no-op."""
    raw = await read_bytes(request, ctx.settings.service.max_import_bytes)
    uid = ctx.inside(who, user)
    lines = _jsonl(raw)
    return {"imported": await ctx.call(ctx.client.import_user, uid, lines)}


def _jsonl(raw: bytes) -> list[str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"request body is not UTF-8 (byte {e.start + 1}: {e.reason})") from e
    return [line for line in text.split("\n") if line.strip()]


@router.get(
    "",
    response_model=s.UserPageOut,
    summary="Users with memory counts, pending turns, dead letters, last activity "
    "(MemoryClient.list_users)",
)
async def list_users(
    ctx: Ctx, who: Caller, cursor: str | None = None, limit: int = 100, prefix: str | None = None
) -> dict[str, Any]:
    """An admin key sees every user; a tenant key only its own (by the ids it uses).
    ``prefix`` keeps the ids (as the caller knows them) that start with it."""
    users, next_cursor = await ctx.call(users_page, ctx.client, who, cursor, limit, prefix)
    return {"users": [user_json(u, who) for u in users], "cursor": next_cursor}
