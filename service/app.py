"""The FastAPI application: one route per ``MemoryClient`` method under ``/v1``.

``create_app(settings)`` builds it without connecting to anything; connections are made on the
first request. ``memlane serve`` runs it under uvicorn (:mod:`service.server`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from memlane import MemoryClient, Settings
from memlane.redaction import Redactor
from service import routes_health, routes_memories, routes_users, routes_work
from service.context import ServiceContext
from service.docs_page import install_docs
from service.errors import install_error_handlers
from service.fastlane import FastLane
from service.paths import EncodedSlashes
from service.routes_metrics import install_metrics
from service.specs import ERRORS, build_openapi
from service.ui import install_ui

API_VERSION = "1.0.0"


def create_app(
    settings: Settings,
    client: MemoryClient | None = None,
    replay: Callable[[str], None] | None = None,
) -> FastAPI:
    """The HTTP service for ``settings`` (``client`` is closed with the app only if made here).

    ``replay(batch_id)`` enqueues a dead letter's replay; without it that route answers 500.
    """
    owned = client is None
    ctx = ServiceContext(settings, client or MemoryClient(settings), replay)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await ctx.auth.close()
        if owned:
            ctx.client.close()

    app = ServiceApp(
        title="memlane",
        version=API_VERSION,
        lifespan=lifespan,
        docs_url=None,  # served by service.docs_page, with local assets (no CDN)
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    install_error_handlers(app, Redactor.from_settings(settings), settings.service.retry_after_s)
    install_docs(app, "/openapi.json", "memlane API")
    install_ui(app)
    app.include_router(routes_health.router)
    install_metrics(app, ctx)
    for router in (routes_users.router, routes_memories.router, routes_work.router):
        app.include_router(router, responses=ERRORS)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.front = EncodedSlashes(FastLane(partial(FastAPI.__call__, app), ctx))
    return app


class ServiceApp(FastAPI):
    """FastAPI behind two plain ASGI layers that run before its middleware stack:
    :class:`~service.paths.EncodedSlashes`, then :class:`~service.fastlane.FastLane` (which
    answers pushes and searches itself, so they skip FastAPI's routing and middleware)."""

    front: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection through :attr:`front`."""
        await self.front(scope, receive, send)
