"""``POST /v1/users/{user}/turns`` without FastAPI's per-request machinery: the push hot path.

A push is the one request a bot makes on every chat turn, so its overhead is the service's
throughput. Through FastAPI it cost about 1 ms of server time, most of it outside memlane:
dependency solving, the router's walk over every route, a thread-pool hop for the blocking
``add_turns`` and its Redis round trip on a second client. :class:`FastPush` answers the same
request as plain ASGI, on the event loop:

1. the bearer key, authenticated and rate-limited exactly as :data:`service.context.Caller`
   (one Lua call on the asyncio Redis client: revocation and the bucket take effect at once);
2. the body, read with the same size limit and parsed by :func:`service.body.parse_object`;
3. the user segment and the turns, validated by the same functions ``add_turns`` uses, with the
   same ``InvalidInput`` messages;
4. the turns pushed by the same ``PUSH`` script with the same keys and arguments
   (:func:`memlane.buffer.turns.push_call`) on the asyncio client;
5. every error answered by :func:`service.errors.error_response`, as the FastAPI route would.

The FastAPI route stays: it documents the endpoint in OpenAPI and serves the same function
(:func:`push_turns`) should a request reach it.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memlane import tracing
from memlane.buffer import lua
from memlane.buffer.turns import push_call
from memlane.errors import MemlaneError, PayloadTooLarge, RedisUnavailable
from memlane.models import Turn
from memlane.validation import validate_turns
from service.apikeys import sha1_of
from service.body import parse_object
from service.context import ServiceContext
from service.errors import error_response
from service.tenancy import Principal

PUSH_SHA = sha1_of(lua.PUSH)
FIELDS = ("turns", "session_id")
_JSON_HEADERS = [(b"content-type", b"application/json")]


def prepare(ctx: ServiceContext, who: Principal, user: str, body: dict[str, Any]) -> list[Turn]:
    """The caller's turns for the path's ``user``, validated as ``add_turns`` validates them
    (``InvalidInput`` naming the field)."""
    uid = ctx.inside(who, user)
    s = ctx.settings
    return validate_turns(uid, body["turns"], body.get("session_id"), s.limits, s.tz)


async def push_turns(
    ctx: ServiceContext, who: Principal, user: str, body: dict[str, Any]
) -> list[str]:
    """``MemoryClient.add_turns`` for the caller's ``user`` on the asyncio client: the same
    validation (422 naming the field, nothing written) and the same atomic ``PUSH`` script."""
    valid = prepare(ctx, who, user, body)
    with tracing.span("memlane.add_turns", turns=len(valid)):
        keys, args = push_call(
            ctx.client.services.keys, valid[0].user_id, valid, tracing.current_traceparent()
        )
        try:
            client = await ctx.auth.redis()
            try:
                await client.evalsha(PUSH_SHA, len(keys), *keys, *args)  # type: ignore[misc]
            except redis.exceptions.NoScriptError:
                await client.eval(lua.PUSH, len(keys), *keys, *args)  # type: ignore[misc]
        except redis.RedisError as e:
            raise RedisUnavailable(f"push failed: {e}") from e
    return [t.turn_id for t in valid]


async def push_known(
    ctx: ServiceContext, key: str, known: Principal, user: str, body: dict[str, Any]
) -> list[str]:
    """:func:`push_turns` for a key whose tenant Redis told us before: the key's check, its
    token and the push in one round trip (:meth:`AsyncAuthenticator.authenticate_push`)."""
    try:
        valid = prepare(ctx, known, user, body)
    except MemlaneError:
        await ctx.auth.authenticate(key)  # a bad key answers first, as on the FastAPI route
        raise
    with tracing.span("memlane.add_turns", turns=len(valid)):
        keys, args = push_call(
            ctx.client.services.keys, valid[0].user_id, valid, tracing.current_traceparent()
        )
        who = await ctx.auth.authenticate_push(key, known, keys, args)
    if who is None:  # the key's tenant changed under us: a token was taken, nothing pushed
        fresh = ctx.auth.known(key)
        assert fresh is not None
        return await push_turns(ctx, fresh, user, body)
    return [t.turn_id for t in valid]


def bearer_key(scope: Scope) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (None otherwise), as
    :data:`service.context.bearer` reads it."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, param = value.decode("latin-1").partition(" ")
            key = param.strip()
            return key if scheme.lower() == "bearer" and key else None
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body (413 past ``limit``, as :func:`service.body.read_bytes`); None when the
    client went away before sending it."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise PayloadTooLarge(
                f"request body of {value.decode()} bytes is over the limit of {limit}"
            )
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class FastPush:
    """ASGI middleware: answer ``POST /v1/users/{user}/turns`` itself; pass the rest on."""

    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = _push_target(scope)
        if user is None:
            await self.app(scope, receive, send)
            return
        ctx = self.ctx
        key = bearer_key(scope)
        try:
            known = ctx.auth.known(key)
            if known is None or key is None:
                # The order of the FastAPI route: the key first (401/429), then the body.
                who = await ctx.auth.authenticate(key)
                body = await self._body(scope, receive)
                if body is None:
                    return
                ids = await push_turns(ctx, who, user, body)
            else:
                try:
                    body = await self._body(scope, receive)
                except MemlaneError:
                    await ctx.auth.authenticate(key)  # a bad key answers first, as above
                    raise
                if body is None:
                    return
                ids = await push_known(ctx, key, known, user, body)
        except Exception as e:  # noqa: BLE001 - answered as FastAPI's handlers would (a 500 is logged)
            s = ctx.settings.service
            await error_response(e, ctx.redactor, s.retry_after_s)(scope, receive, send)
            return
        out = json.dumps({"turn_ids": ids}, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [*_JSON_HEADERS, (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    async def _body(self, scope: Scope, receive: Receive) -> dict[str, Any] | None:
        raw = await read_body(scope, receive, self.ctx.settings.service.max_body_bytes)
        return None if raw is None else parse_object(raw, FIELDS, ("turns",))


def _push_target(scope: Scope) -> str | None:
    """The user segment of a push request, still escaped (as the route's ``user`` parameter)."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    parts = path.split("/")
    if len(parts) != 5 or parts[:3] != ["", "v1", "users"] or parts[4] != "turns" or not parts[3]:
        return None
    return parts[3]
