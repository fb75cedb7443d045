"""``/healthz`` (the process answers) and ``/readyz`` (Redis and the store answer, bounded)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service import schemas as s
from service.context import Ctx, ServiceContext

router = APIRouter(tags=["health"])
PROBE_USER = "memlane-readyz-probe"


@router.get("/healthz", response_model=s.Health, summary="The process is alive")
async def healthz() -> dict[str, Any]:
    """Always 200 while the process serves requests; touches nothing else."""
    return {"status": "ok", "checks": {}}


@router.get(
    "/readyz",
    response_model=s.Health,
    responses={503: {"model": s.Health, "description": "Redis or the store does not answer"}},
    summary="Redis and the store answer",
)
async def readyz(ctx: Ctx) -> JSONResponse:
    """200 when Redis answers PING and the store answers a count, each within
    ``service.ready_timeout_s``; otherwise 503 naming what failed, with Retry-After."""
    checks = {
        "redis": await _probe(ctx, lambda: bool(ctx.client.services.redis.ping())),
        "store": await _probe(ctx, lambda: ctx.client.services.store.count(PROBE_USER) >= 0),
    }
    ok = all(v == "ok" for v in checks.values())
    headers = {} if ok else {"Retry-After": str(ctx.settings.service.retry_after_s)}
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    return JSONResponse(body, 200 if ok else 503, headers)


async def _probe(ctx: ServiceContext, check: Any) -> str:
    # The thread is abandoned on timeout (a probe only reads); the answer never waits longer.
    try:
        with anyio.fail_after(ctx.settings.service.ready_timeout_s):
            answered = await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
            return "ok" if answered else "failed"
    except TimeoutError:
        return f"no answer within {ctx.settings.service.ready_timeout_s:g} s"
    except Exception as e:  # noqa: BLE001 - a probe reports whatever failed, by name
        return ctx.redactor.text(f"{type(e).__name__}: {str(e)[:200]}")
