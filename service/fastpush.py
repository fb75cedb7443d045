"""``POST /v1/users/{user}/turns`` on the event loop: the push hot path.

A push is the one request a bot makes on every chat turn, so its overhead is the service's
throughput. Through FastAPI it cost about 1 ms of server time, most of it outside memlane:
dependency solving, the router's walk over every route, a thread-pool hop for the blocking
``add_turns`` and its Redis round trip on a second client. :class:`service.fastlane.FastLane`
answers the same request as plain ASGI, with the functions of this module:

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

from typing import Any

import redis

from memlane import tracing
from memlane.buffer import lua
from memlane.buffer.turns import push_call
from memlane.errors import MemlaneError, RedisUnavailable
from memlane.models import Turn
from memlane.validation import validate_turns
from service.apikeys import sha1_of
from service.context import ServiceContext
from service.tenancy import Principal

PUSH_SHA = sha1_of(lua.PUSH)
FIELDS = ("turns", "session_id")


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
