"""What every route needs: settings, the client, the key store, and the caller's identity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
import redis.asyncio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from starlette.concurrency import run_in_threadpool

from memlane import MemoryClient, Settings
from memlane.buffer.connection import redis_password, redis_url
from memlane.llm.core_slots import host_cores
from memlane.redaction import Redactor
from service.apikeys import AsyncAuthenticator, KeyStore
from service.body import parse_object, read_bytes
from service.paths import user_segment
from service.tenancy import Principal

T = TypeVar("T")
bearer = HTTPBearer(auto_error=False, description="an API key from `memlane keys create`")


@dataclass
class ServiceContext:
    """The process-wide state of one service: built once by :func:`service.app.create_app`."""

    settings: Settings
    client: MemoryClient
    # Enqueues the replay of a dead-lettered batch (a Celery task). The service never imports
    # Celery (tests/unit/test_layering.py): ``memlane serve`` hands it in from ``worker``.
    replay: Callable[[str], None] | None = None

    @cached_property
    def auth(self) -> AsyncAuthenticator:
        """Key checks on the event loop (asyncio Redis client, made on first use)."""
        return AsyncAuthenticator(self._connect_async, self.settings.redis.key_prefix)

    async def _connect_async(self) -> redis.asyncio.Redis:
        # Resolving the URL may start the embedded Redis: blocking work, so in a thread.
        url = await run_in_threadpool(redis_url, self.settings)
        client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url,
            password=redis_password(self.settings),
            socket_timeout=10,
            socket_connect_timeout=5,
            # As memlane.buffer.connection: an outage surfaces within about a second.
            retry=AsyncRetry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            retry_on_timeout=True,
        )
        return client

    @cached_property
    def redactor(self) -> Redactor:
        """Masks the configured secrets in anything the service sends back."""
        return Redactor.from_settings(self.settings)

    @cached_property
    def keys(self) -> KeyStore:
        """The key store, on the client's Redis connection (made on first use)."""
        return KeyStore(self.client.services.redis, self.settings.redis.key_prefix)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking client call in the thread pool (the event loop never waits on I/O)."""
        return await run_in_threadpool(fn, *args, **kwargs)

    @cached_property
    def _searches(self) -> anyio.CapacityLimiter:
        return anyio.CapacityLimiter(search_slots(self.settings.service.search_concurrency))

    async def search(self, fn: Callable[[], T]) -> T:
        """Run a search in the thread pool, at most ``service.search_concurrency`` at once."""
        return await anyio.to_thread.run_sync(fn, limiter=self._searches)

    async def json_body(
        self, request: Request, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """The request's JSON object (413, 400 and unknown fields handled)."""
        raw = await read_bytes(request, self.settings.service.max_body_bytes)
        return parse_object(raw, allowed, required)

    def inside(self, who: Principal, user: str) -> str:
        """The inside id of a path's user segment (validated; tenant-namespaced)."""
        return who.inside(user_segment(user), self.settings.limits)


def search_slots(configured: int | None, cores: int | None = None) -> int:
    """Searches run at once: the configured number, else twice the cores this process may use.

    With exactly one per core, a core idles each time a finished search hands its answer back
    to the event loop and the next one is woken: at 32 clients on 2 cores that cost 5% of the
    throughput and put HTTP search p95 25-40 ms over in-process (docs/PERFORMANCE.md). One
    search waiting per core keeps the cores busy; more would only share them.
    """
    return configured or 2 * (cores or host_cores())


def context(request: Request) -> ServiceContext:
    """The service context of the app serving ``request``."""
    ctx: ServiceContext = request.app.state.ctx
    return ctx


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Authenticate the request's bearer key and take a token from its bucket (401, 429, 503)."""
    ctx = context(request)
    key = credentials.credentials if credentials is not None else None
    return await ctx.auth.authenticate(key)


Ctx = Annotated[ServiceContext, Depends(context)]
Caller = Annotated[Principal, Depends(caller)]
