"""User ids in paths may contain ``/``: route on the raw path so ``a%2Fb`` stays one segment.

Starlette routes on the decoded path, where ``/v1/users/a%2Fb/turns`` has become
``/v1/users/a/b/turns`` and no longer matches. This middleware decodes each raw segment on its
own and re-escapes only ``%`` and ``/`` inside it; :func:`user_segment` undoes that for the
route. Every other character arrives decoded, as usual.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send


def _escape(segment: str) -> str:
    return segment.replace("%", "%25").replace("/", "%2F")


def user_segment(value: str) -> str:
    """A path parameter as the caller wrote it (``a%2Fb`` -> ``a/b``)."""
    return value.replace("%2F", "/").replace("%25", "%")


class EncodedSlashes:
    """ASGI middleware: keep ``%2F`` inside a path segment from splitting it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw:
            path = keep_segments(bytes(raw).split(b"?", 1)[0])
            if path != scope.get("path"):  # without a '%' the server decoded it the same way
                scope = {**scope, "path": path}
        await self.app(scope, receive, send)


def keep_segments(raw_path: bytes) -> str:
    """The decoded path with ``%`` and ``/`` inside each segment escaped again."""
    if b"%" not in raw_path:  # nothing escaped: each segment decodes to itself
        return raw_path.decode("utf-8", "surrogateescape")
    return "/".join(
        _escape(unquote_to_bytes(s).decode("utf-8", "surrogateescape"))
        for s in raw_path.split(b"/")
    )
