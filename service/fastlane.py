"""The two requests a bot makes on every chat turn, answered in plain ASGI before FastAPI.

``POST /v1/users/{user}/turns`` (:mod:`service.fastpush`) and ``POST /v1/users/{user}/search``
(:mod:`service.search`) are the service's hot paths. Through FastAPI each paid for dependency
solving, the router's walk over every route, request and response objects and four middleware
layers. With them, and the answer encoded on the loop, a search took about 4 ms of event-loop
CPU; here it takes about 1.5 (8 clients, 2-core AMD EPYC, per-thread CPU read by hand), and
every other request waits behind the loop. :class:`FastLane` answers both itself, in the order
of the FastAPI routes:

1. the bearer key, authenticated and rate-limited exactly as :data:`service.context.Caller`
   (a push whose key the process has seen does it in the push's own Lua call);
2. the body, read with the same size limit (413) and parsed by :func:`service.body.parse_object`
   (400, and 422 for an unknown or missing field);
3. the same function as the route (:func:`service.fastpush.push_turns`,
   :func:`service.search.search`), so validation, messages and results are the route's;
4. every error answered by :func:`service.errors.error_response`, as the route's would be.

The FastAPI routes stay: they document the endpoints in OpenAPI and run the same functions
should a request reach them. Anything else passes through to FastAPI untouched.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memlane.errors import MemlaneError, PayloadTooLarge
from service import fastpush, search
from service.body import parse_object
from service.context import ServiceContext
from service.errors import error_response

Headers = list[tuple[bytes, bytes]]
_JSON = (b"content-type", b"application/json")
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # built once


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


def fast_target(scope: Scope) -> tuple[str, str] | None:
    """``(user segment still escaped, "turns" or "search")`` of a request this layer answers."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    parts = scope["path"].split("/")
    if len(parts) != 5 or parts[:3] != ["", "v1", "users"] or not parts[3]:
        return None
    return (parts[3], parts[4]) if parts[4] in ("turns", "search") else None


class FastLane:
    """ASGI middleware: answer pushes and searches itself; pass the rest on."""

    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = fast_target(scope)
        if target is None:
            await self.app(scope, receive, send)
            return
        user, action = target
        started = time.perf_counter()
        key = bearer_key(scope)
        try:
            if action == "turns":
                answer = await self._push(scope, receive, key, user)
            else:
                answer = await self._search(scope, receive, key, user, started)
        except Exception as e:  # noqa: BLE001 - answered as FastAPI's handlers would (a 500 is logged)
            s = self.ctx.settings.service
            await error_response(e, self.ctx.redactor, s.retry_after_s)(scope, receive, send)
            return
        if answer is None:  # the client went away before sending its body
            return
        status, out, extra = answer
        headers = [_JSON, (b"content-length", str(len(out)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    async def _push(
        self, scope: Scope, receive: Receive, key: str | None, user: str
    ) -> tuple[int, bytes, Headers] | None:
        ctx = self.ctx
        known = ctx.auth.known(key)
        if known is None or key is None:
            # The order of the FastAPI route: the key first (401/429), then the body.
            who = await ctx.auth.authenticate(key)
            body = await self._body(scope, receive, fastpush.FIELDS, ("turns",))
            if body is None:
                return None
            ids = await fastpush.push_turns(ctx, who, user, body)
        else:
            try:
                body = await self._body(scope, receive, fastpush.FIELDS, ("turns",))
            except MemlaneError:
                await ctx.auth.authenticate(key)  # a bad key answers first, as above
                raise
            if body is None:
                return None
            ids = await fastpush.push_known(ctx, key, known, user, body)
        return 202, _COMPACT({"turn_ids": ids}).encode(), []

    async def _search(
        self, scope: Scope, receive: Receive, key: str | None, user: str, started: float
    ) -> tuple[int, bytes, Headers] | None:
        who = await self.ctx.auth.authenticate(key)
        body = await self._body(scope, receive, search.FIELDS, search.REQUIRED)
        if body is None:
            return None
        out, timing = await search.search(self.ctx, who, user, body, started)
        return 200, out, [(b"server-timing", timing.encode())]

    async def _body(
        self, scope: Scope, receive: Receive, allowed: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, Any] | None:
        raw = await read_body(scope, receive, self.ctx.settings.service.max_body_bytes)
        return None if raw is None else parse_object(raw, allowed, required)
