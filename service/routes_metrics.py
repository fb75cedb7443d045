"""``/metrics``: Prometheus' text format (see :mod:`memlane.metrics` for what it holds).

Open like ``/healthz`` by default: the page holds counts and model names, never a user id or
any content (labels come from fixed sets). ``metrics.require_key`` asks for an admin key (a
tenant's key never sees the whole service); ``metrics.enabled`` false removes the route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from memlane.errors import Unauthorized
from memlane.exporter import build_registry, render
from service.context import ServiceContext, bearer, context


def install_metrics(app: FastAPI, ctx: ServiceContext) -> None:
    """Add ``GET /metrics`` to ``app`` when ``metrics.enabled``."""
    cfg = ctx.settings.metrics
    if not cfg.enabled:
        return
    registry = build_registry(ctx.client.services)
    router = APIRouter(tags=["health"])

    @router.get("/metrics", response_class=Response, include_in_schema=False)
    async def metrics_page(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Response:
        """The service's counters and histograms and the buffer read from Redis now."""
        if cfg.require_key:
            key = credentials.credentials if credentials is not None else None
            who = await context(request).auth.authenticate(key)
            if not who.admin:
                raise Unauthorized("/metrics needs an admin key")
        body, content_type = await ctx.call(render, registry)
        return Response(body, media_type=content_type)

    app.include_router(router)
