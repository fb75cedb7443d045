"""``memlane mcp --transport http``: the MCP tools over streamable HTTP, behind API keys.

Every request must carry a live key (401 otherwise) and takes a token from its bucket (429),
exactly like the HTTP API; the tools then work in the key's tenant.
"""

from __future__ import annotations

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from memlane import Settings
from memlane.redaction import Redactor
from service.apikeys import KeyStore
from service.errors import error_response


class RequireKey:
    """ASGI middleware: authenticate the bearer key (and take a token) before MCP sees it."""

    def __init__(self, app: ASGIApp, keys: KeyStore, settings: Settings) -> None:
        self.app = app
        self.keys = keys
        self.redactor = Redactor.from_settings(settings)
        self.retry_after_s = settings.service.retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            auth = headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            try:
                await run_in_threadpool(self.keys.authenticate, key)
            except Exception as e:  # noqa: BLE001 - every failure answers through the one mapping
                await error_response(e, self.redactor, self.retry_after_s)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve_mcp_http(
    server: MCPServer, keys: KeyStore, settings: Settings, host: str, port: int
) -> int:
    """Serve ``server`` at ``http://host:port/mcp`` until SIGINT/SIGTERM."""
    app = RequireKey(server.streamable_http_app(host=host), keys, settings)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    uvicorn.Server(config).run()
    return 0
