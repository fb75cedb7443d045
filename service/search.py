"""``POST /v1/users/{user}/search``: one function for the FastAPI route and the fast path.

:func:`search` takes the parsed body (``FIELDS`` only, ``query`` required), runs
``MemoryClient.retrieve`` for the caller's user in the bounded search pool and returns the
response body, already encoded, with its ``Server-Timing`` header: the milliseconds spent in
``retrieve`` and in the whole handler (body, auth and serialisation included).
"""

from __future__ import annotations

import json
import time
from typing import Any

from service.body import to_datetime, to_time_range
from service.context import ServiceContext
from service.serialize import result_json
from service.tenancy import Principal

FIELDS = ("query", "top_k", "kinds", "time_range", "now", "include_pending", "rerank")
REQUIRED = ("query",)


async def search(
    ctx: ServiceContext, who: Principal, user: str, body: dict[str, Any], started: float
) -> tuple[bytes, str]:
    """The caller's ``user``'s memories most relevant to ``body["query"]``, best first, each
    with its explanation, as JSON bytes; and the ``Server-Timing`` value (``started``: the
    handler's ``time.perf_counter()`` when the request arrived)."""
    uid = ctx.inside(who, user)
    time_range = to_time_range(body.get("time_range"))
    now = to_datetime(body.get("now"), "now")

    def retrieve() -> tuple[bytes, float]:
        t0 = time.perf_counter()
        found = ctx.client.retrieve(
            uid,
            body["query"],
            top_k=body.get("top_k"),
            kinds=body.get("kinds"),
            time_range=time_range,
            now=now,
            include_pending=body.get("include_pending", False),
            rerank=body.get("rerank"),
        )
        took = time.perf_counter() - t0
        # Encoded here, on the search's thread: the event loop serves other requests meanwhile.
        payload = {"results": [result_json(r, who) for r in found]}
        out = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return out.encode(), took

    out, took = await ctx.search(retrieve)
    total = time.perf_counter() - started
    return out, f"retrieve;dur={1000 * took:.1f}, handler;dur={1000 * total:.1f}"
