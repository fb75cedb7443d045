"""Group commit: the script calls of requests that arrive together go to Redis in one round trip.

Under load the push hot path's largest cost on the event loop was redis-py itself: taking a
connection from the pool, checking it, sending, waiting and parsing, once per request. A
:class:`ScriptBatch` collects the calls made in one turn of the event loop and sends them as one
non-transactional pipeline on one connection; each caller gets its own reply, or its own error.
Redis still runs every script on its own and atomically, in the order the calls were made, so
each call means exactly what it meant alone: one request's error never touches another's.

A batch leaves on the next turn of the loop, after the other requests that were ready on this
one, unless :data:`IN_FLIGHT` batches are already at Redis: then the calls queue until one of
them is answered, and leave together. A lone call on a quiet server waits for nothing.

What it saves grows with the load: at 4 concurrent pushers per server the event loop spent
about 5% less CPU per push, at 16 about 22% (server CPU per push 0.61 against 0.46 ms; two
servers, old and new code, sharing one load on a 2-core AMD EPYC, measured by hand).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio

MAX_BATCH = 64  # calls in one pipeline; a longer queue is sent in several
IN_FLIGHT = 2  # pipelines at Redis at once: the next batch forms while one is answered
Call = tuple[list[Any], list[Any], "asyncio.Future[Any]"]  # keys, args, the caller's reply


class ScriptBatch:
    """EVALSHA calls of one Lua script, sent together per turn of the event loop.

    ``call`` raises what ``redis.asyncio.Redis.evalsha`` would raise for that call alone
    (``redis.RedisError`` and its subclasses); a script Redis does not hold yet is loaded by
    ``EVAL`` and the call runs once.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[redis.asyncio.Redis]],
        script: str,
        sha: str,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self._connect = connect
        self._script = script
        self._sha = sha
        self._queue: list[Call] = []
        self._sending: set[asyncio.Task[None]] = set()  # the batches at Redis now
        self._scheduled = False
        self.in_flight = in_flight

    async def call(self, keys: list[Any], args: list[Any]) -> Any:
        """The script's reply for ``keys`` and ``args``."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if self._queue and not self._scheduled and len(self._sending) < self.in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._send_queued)

    def _send_queued(self) -> None:
        self._scheduled = False
        if not self._queue or len(self._sending) >= self.in_flight:
            return
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sent)
        self._schedule()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._schedule()

    async def _send(self, batch: list[Call]) -> None:
        try:
            client = await self._connect()
            async with client.pipeline(transaction=False) as pipe:
                for keys, args, _ in batch:
                    pipe.evalsha(self._sha, len(keys), *keys, *args)
                replies = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:  # the loop is closing: so are the callers
            for _, _, future in batch:
                future.cancel()
            raise
        except Exception as e:  # noqa: BLE001 - every caller of the batch gets the error
            for _, _, future in batch:
                _settle(future, error=e)
            return
        for (keys, args, future), reply in zip(batch, replies, strict=True):
            if isinstance(reply, redis.exceptions.NoScriptError):
                try:
                    reply = await client.eval(self._script, len(keys), *keys, *args)  # type: ignore[misc]
                except Exception as e:  # noqa: BLE001 - handed to the caller
                    reply = e
            if isinstance(reply, Exception):
                _settle(future, error=reply)
            else:
                _settle(future, reply=reply)


def _settle(future: asyncio.Future[Any], reply: Any = None, error: Exception | None = None) -> None:
    if future.done():  # the caller was cancelled: nobody waits for this reply
        return
    if error is None:
        future.set_result(reply)
    else:
        future.set_exception(error)
