"""``memlane mcp``: memlane's memory as MCP tools, over stdio or streamable HTTP.

Four tools, each a thin translation of one ``MemoryClient`` method: ``remember`` (add_turns),
``recall`` (retrieve), ``list_memories`` and ``forget_memory`` (delete_memory). Every tool works
on one user, fixed outside the model's reach:

* **stdio**: ``--user`` when the server starts; a key in ``$MEMLANE_API_KEY`` (optional) puts
  that user in the key's tenant. The agent host that spawns the server owns the process.
* **streamable HTTP**: every request needs ``Authorization: Bearer <key>`` (401 otherwise; the
  key's rate limit applies); the user is ``X-Memlane-User`` or ``--user``, in the key's tenant.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import anyio.to_thread
import structlog
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from memlane import MemoryClient, Settings
from memlane.errors import InvalidInput, MemlaneError, NotFound, RequestRefused, Retryable
from service.apikeys import KeyStore
from service.tenancy import Principal

T = TypeVar("T")
USER_HEADER = "x-memlane-user"
INSTRUCTIONS = (
    "Long-term memory of one user. Call `recall` before answering anything that may depend on "
    "what the user told you earlier (preferences, facts about their life, plans, past events); "
    "call `remember` with what the user says that is worth keeping. `list_memories` and "
    "`forget_memory` let the user see and remove single memories."
)


@dataclass
class McpScope:
    """Which user (and tenant) a tool call works on."""

    settings: Settings
    client: MemoryClient
    fixed: tuple[Principal, str] | None = None  # stdio: (caller, inside user id)
    default_user: str | None = None  # HTTP: when the request names none

    @cached_property
    def keys(self) -> KeyStore:
        """The key store (HTTP mode)."""
        return KeyStore(self.client.services.redis, self.settings.redis.key_prefix)

    def resolve(self, headers: Any) -> tuple[Principal, str]:
        """The caller and the inside user id of one tool call."""
        if self.fixed is not None:
            return self.fixed
        headers = headers or {}
        auth = str(headers.get("authorization") or "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        who = self.keys.identify(key)
        user = headers.get(USER_HEADER) or self.default_user
        if not user:
            raise InvalidInput("user", f"send the {USER_HEADER} header (or start with --user)")
        return who, who.inside(user, self.settings.limits)

    async def run(self, ctx: Context, fn: Callable[[Principal, str], T]) -> T:
        """Resolve the scope and run ``fn`` in a thread; memlane errors become tool errors."""
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*self.resolve(ctx.headers)))
        except InvalidInput as e:
            raise ToolError(f"invalid {e.field}: {e.reason}") from e
        except NotFound as e:
            raise ToolError(f"{e}; list_memories shows this user's memory ids") from e
        except Retryable as e:
            raise ToolError("memory is temporarily unavailable; try again in a few seconds") from e
        except RequestRefused as e:
            raise ToolError(e.message) from e
        except MemlaneError as e:
            raise ToolError(f"{type(e).__name__}: {e}") from e


def build_mcp(scope: McpScope) -> MCPServer:
    """The MCP server with memlane's tools (see :mod:`service.mcp_tools`)."""
    from service.mcp_tools import register_memory_tools, register_tools

    server = MCPServer(name="memlane", instructions=INSTRUCTIONS, version="1.0.0")
    register_tools(server, scope)
    register_memory_tools(server, scope)
    return server


def _stdio_scope(
    settings: Settings, client: MemoryClient, user: str | None, key: str | None
) -> McpScope:
    if not user:
        raise InvalidInput("user", "memlane mcp over stdio needs --user")
    scope = McpScope(settings, client)
    who = scope.keys.identify(key) if key else Principal("local", None)
    scope.fixed = (who, who.inside(user, settings.limits))
    return scope


def run_mcp(
    settings: Settings,
    transport: str,
    user: str | None,
    key: str | None,
    host: str = "127.0.0.1",
    port: int = 8766,
) -> int:
    """Serve the tools until the client disconnects (stdio) or a signal (HTTP)."""
    # stdout is the protocol channel on stdio: every log line goes to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    with MemoryClient(settings) as client:
        if transport == "stdio":
            build_mcp(_stdio_scope(settings, client, user, key)).run("stdio")
            return 0
        from service.mcp_http import serve_mcp_http

        scope = McpScope(settings, client, None, user)
        return serve_mcp_http(build_mcp(scope), scope.keys, settings, host, port)
