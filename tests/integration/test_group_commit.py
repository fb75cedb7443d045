"""service/groupcommit.py against a real Redis: calls made together share a pipeline, and each
caller still gets its own reply or its own error."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from service.apikeys import sha1_of
from service.groupcommit import MAX_BATCH, ScriptBatch

pytestmark = [pytest.mark.redis]

# Echoes its call; fails the one call whose first argument is "bad" (a script error).
ECHO = """
if ARGV[1] == 'bad' then return redis.error_reply('refused ' .. KEYS[1]) end
redis.call('RPUSH', KEYS[1], ARGV[1])
return {KEYS[1], ARGV[1]}
"""
ECHO_SHA = sha1_of(ECHO)


class Connector:
    """One asyncio client (named, so CLIENT LIST shows its connections), made on first use."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.client: redis.asyncio.Redis | None = None

    async def __call__(self) -> redis.asyncio.Redis:
        if self.client is None:
            self.client = redis.asyncio.Redis.from_url(
                self.url, client_name=self.name, socket_timeout=5
            )
        return self.client

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def batched(url: str, name: str) -> tuple[ScriptBatch, Connector]:
    """A batch of ECHO calls on its own client."""
    connect = Connector(url, name)
    return ScriptBatch(connect, ECHO, ECHO_SHA), connect


def run(main: Callable[[], Awaitable[Any]], connect: Connector) -> Any:
    """``main()`` on a fresh loop, closing the client before the loop closes."""

    async def wrapped() -> Any:
        try:
            return await main()
        finally:
            await connect.close()

    return asyncio.run(wrapped())


def connections(direct: redis.Redis, name: str) -> int:
    """How many connections named ``name`` Redis has open."""
    listed: list[dict[str, Any]] = direct.client_list()  # type: ignore[assignment]
    return sum(1 for c in listed if c.get("name") == name)


@pytest.fixture
def direct(redis_url: str) -> Any:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def test_calls_made_together_get_their_own_replies_over_at_most_two_connections(
    redis_url: str, direct: redis.Redis
) -> None:
    """100 calls at once (more than one pipeline holds): every caller gets the reply to its
    own call, every script ran once, and the pipelines used no more than two connections."""
    name = f"gc-{uuid.uuid4().hex[:8]}"
    key = f"{name}:list"
    batch, connect = batched(redis_url, name)
    calls = 100
    assert calls > MAX_BATCH

    async def main() -> tuple[list[Any], int]:
        replies = await asyncio.gather(*(batch.call([key], [f"v{i}"]) for i in range(calls)))
        return replies, connections(direct, name)

    replies, used = run(main, connect)
    assert [[r.decode() for r in reply] for reply in replies] == [
        [key, f"v{i}"] for i in range(calls)
    ]
    assert sorted(direct.lrange(key, 0, -1)) == sorted(f"v{i}" for i in range(calls))  # type: ignore[arg-type]
    assert 1 <= used <= 2
    direct.delete(key)


def test_one_call_s_error_reaches_that_caller_only(redis_url: str, direct: redis.Redis) -> None:
    """A script error in the middle of a batch fails its own call; the others ran."""
    name = f"gc-{uuid.uuid4().hex[:8]}"
    key = f"{name}:list"
    batch, connect = batched(redis_url, name)

    async def main() -> list[Any]:
        args = ["a", "bad", "c"]
        return await asyncio.gather(*(batch.call([key], [a]) for a in args), return_exceptions=True)

    first, bad, third = run(main, connect)
    assert [x.decode() for x in first] == [key, "a"]
    assert [x.decode() for x in third] == [key, "c"]
    assert isinstance(bad, redis.exceptions.ResponseError)
    assert f"refused {key}" in str(bad)
    assert direct.lrange(key, 0, -1) == ["a", "c"]
    direct.delete(key)


def test_a_script_redis_forgot_is_loaded_and_each_call_runs_once(
    redis_url: str, direct: redis.Redis
) -> None:
    """After SCRIPT FLUSH (a restarted Redis) every call of the batch gets NOSCRIPT: each is
    run by EVAL, once, with its own reply."""
    name = f"gc-{uuid.uuid4().hex[:8]}"
    key = f"{name}:list"
    batch, connect = batched(redis_url, name)
    direct.script_flush()

    async def main() -> list[Any]:
        return await asyncio.gather(*(batch.call([key], [f"w{i}"]) for i in range(5)))

    replies = run(main, connect)
    assert [r[1].decode() for r in replies] == [f"w{i}" for i in range(5)]
    assert sorted(direct.lrange(key, 0, -1)) == [f"w{i}" for i in range(5)]  # type: ignore[arg-type]
    assert direct.script_exists(ECHO_SHA) == [True]
    direct.delete(key)


def test_with_redis_down_every_caller_gets_the_error_promptly() -> None:
    """Nothing listens: each caller gets redis-py's ConnectionError, none hangs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"redis://127.0.0.1:{port}/0"
    batch, connect = batched(url, "gc-down")

    async def main() -> list[Any]:
        calls = (batch.call(["k"], [str(i)]) for i in range(10))
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)

    started = time.monotonic()
    outcomes = run(main, connect)
    assert all(isinstance(o, redis.exceptions.ConnectionError) for o in outcomes), outcomes
    assert time.monotonic() - started < 10


def test_a_caller_that_gives_up_does_not_disturb_the_others(
    redis_url: str, direct: redis.Redis
) -> None:
    """A caller cancelled while its batch is at Redis: the others get their replies, and the
    next batch goes out as usual."""
    name = f"gc-{uuid.uuid4().hex[:8]}"
    key = f"{name}:list"
    batch, connect = batched(redis_url, name)

    async def main() -> tuple[list[Any], Any]:
        tasks = [asyncio.ensure_future(batch.call([key], [f"x{i}"])) for i in range(4)]
        await asyncio.sleep(0)  # queued, not yet answered
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        later = await batch.call([key], ["after"])
        return done, later

    done, later = run(main, connect)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [d[1].decode() for i, d in enumerate(done) if i != 1] == ["x0", "x2", "x3"]
    assert later[1].decode() == "after"
    direct.delete(key)
