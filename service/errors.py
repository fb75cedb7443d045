"""The one place where memlane's errors become HTTP responses.

::

    InvalidInput                       422  {"error": {"type", "field", "message", "detail"}}
    NotFound                           404  (a user or memory of another tenant, too)
    RequestRefused (memlane/errors.py)
    ├── BadRequest                     400  malformed JSON, bad encoding, not an object
    ├── Unauthorized                   401  missing, unknown or revoked API key
    ├── PayloadTooLarge                413  body over service.max_body_bytes
    └── RateLimited                    429  the key's token bucket is empty; Retry-After
    Retryable (RedisUnavailable,       503  Redis, the store or the embedder is unreachable,
      StoreUnavailable, UserBusy, ...)      or a worker holds the user too long for an edit;
                                            Retry-After: service.retry_after_s
    redis.RedisError (not wrapped)     503  the same, for a Redis call outside the buffer
    any other MemlaneError             500  type and message (secrets redacted)

Every route raises; none builds an error response itself.
"""

from __future__ import annotations

from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from memlane.errors import (
    BadRequest,
    InvalidInput,
    MemlaneError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestRefused,
    Retryable,
    Unauthorized,
)
from memlane.logging import get_logger
from memlane.redaction import Redactor

log = get_logger(__name__)


# The status of each refusal of the HTTP layer (the classes are in memlane/errors.py).
STATUS: dict[type[RequestRefused], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    PayloadTooLarge: 413,
    RateLimited: 429,
}


def _refusal_headers(exc: RequestRefused) -> dict[str, str]:
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": 'Bearer realm="memlane"'}
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    return {}


def _body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, **extra}}


def error_response(exc: BaseException, redactor: Redactor, retry_after_s: int) -> JSONResponse:
    """The response for any exception a route raised (the whole mapping)."""
    if isinstance(exc, InvalidInput):
        body = _body("InvalidInput", exc.reason, field=exc.field, detail=str(exc))
        return JSONResponse(body, 422)
    if isinstance(exc, NotFound):
        return JSONResponse(_body("NotFound", exc.args[0], field=exc.field), 404)
    if isinstance(exc, RequestRefused):
        status = STATUS.get(type(exc), 400)
        return JSONResponse(_body(type(exc).__name__, exc.message), status, _refusal_headers(exc))
    if isinstance(exc, Retryable | redis.RedisError):
        kind = type(exc).__name__ if isinstance(exc, Retryable) else "RedisUnavailable"
        log.warning("service_unavailable", error_type=type(exc).__name__, error=str(exc)[:300])
        message = redactor.text(str(exc)) or "a backing service is unavailable"
        headers = {"Retry-After": str(retry_after_s)}
        return JSONResponse(_body(kind, message), 503, headers)
    if isinstance(exc, MemlaneError):
        log.error("request_failed", error_type=type(exc).__name__, error=str(exc)[:300])
        return JSONResponse(_body(type(exc).__name__, redactor.text(str(exc))), 500)
    log.exception("request_crashed", error_type=type(exc).__name__)
    return JSONResponse(_body("InternalError", "internal error"), 500)


def install_error_handlers(app: FastAPI, redactor: Redactor, retry_after_s: int) -> None:
    """Route every error a request can end in through :func:`error_response`."""

    async def on_error(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc, redactor, retry_after_s)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's own checks (query and path parameters): the same 422 shape as InvalidInput.
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        loc = [str(p) for p in first["loc"] if p not in ("query", "path", "header", "body")]
        message = str(first["msg"])
        return error_response(InvalidInput(".".join(loc) or "request", message), redactor, 0)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = "NotFound" if exc.status_code == 404 else "HTTPError"
        return JSONResponse(_body(kind, str(exc.detail)), exc.status_code, exc.headers)

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # MemlaneError and RedisError are answered where the route raised them; Exception goes to
    # Starlette's outermost handler (which answers, then re-raises so the server logs it).
    app.add_exception_handler(MemlaneError, on_error)
    app.add_exception_handler(redis.RedisError, on_error)
    app.add_exception_handler(Exception, on_error)
