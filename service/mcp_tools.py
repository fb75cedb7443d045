"""The MCP tools and their descriptions: written for a model that has only these to go on."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from memlane import format_context
from memlane.text.tokens import detect_language
from service.body import to_datetime
from service.mcp_server import McpScope
from service.tenancy import Principal

REMEMBER = """Store something said in the conversation so it can be recalled in later sessions.

Call it with each message worth keeping: facts the user states about themselves, their
preferences, plans, people and events ("I moved to Lyon last May", "我的爱好是吉他"). Pass the
text as said; memlane extracts and dates the facts in the background, so this returns at once.
role is "user" (default) for what the user said, "assistant" for your own replies.
Returns the turn ids; storing the same turn_id again changes nothing."""

RECALL = """Search the user's long-term memory; call it before answering anything that may
depend on what the user said in earlier conversations.

query is a question or keywords in any language. Time expressions in it are understood and
narrow the search: "yesterday", "last week", "in May 2023", "two days ago", 昨天, 上周, 去年五月.
Results come best first as lines "[when] memory", with ids and scores. include_pending (default
true) also finds what was said seconds ago and is not consolidated yet. now (ISO-8601, optional)
is the moment time expressions are relative to."""

LIST_MEMORIES = """List the user's stored memories, newest first, to show them what is
remembered or to find the id of one to forget.

kinds filters by kind (observation, insight, raw, custom); status is active (default),
superseded, deleted or all; since/until are ISO-8601 bounds. Pass the returned cursor back to
get the next page; limit is 1..500 (default 20)."""

FORGET_MEMORY = """Forget one memory by its id (from recall or list_memories), e.g. when the user
says it is wrong or asks you to forget it. By default it is marked deleted and never recalled
again but kept in the memory's history; hard=true erases it and every earlier version."""


def _line(result: Any, lang: str, scope: McpScope) -> str:
    line: str = format_context([result], lang, scope.settings.tz)[0]
    return line


def register_tools(server: MCPServer, scope: McpScope) -> None:
    """Add remember, recall, list_memories and forget_memory to ``server``."""

    @server.tool(description=REMEMBER)
    async def remember(
        content: str, ctx: Context, role: str = "user", turn_id: str | None = None
    ) -> dict[str, Any]:
        def call(_who: Principal, uid: str) -> dict[str, Any]:
            turn: dict[str, Any] = {"role": role, "content": content}
            if turn_id is not None:
                turn["turn_id"] = turn_id
            return {"turn_ids": scope.client.add_turns(uid, [turn])}

        return await scope.run(ctx, call)

    @server.tool(description=RECALL)
    async def recall(
        query: str,
        ctx: Context,
        top_k: int = 5,
        include_pending: bool = True,
        now: str | None = None,
    ) -> dict[str, Any]:
        def call(_who: Principal, uid: str) -> dict[str, Any]:
            results = scope.client.retrieve(
                uid,
                query,
                top_k=top_k,
                include_pending=include_pending,
                now=to_datetime(now, "now"),
            )
            lang = detect_language(query)
            return {
                "memories": [
                    {
                        "id": r.memory.id,
                        "line": _line(r, lang, scope),
                        "kind": r.memory.kind.value,
                        "score": round(r.score, 4),
                        "pending": r.pending,
                    }
                    for r in results
                ]
            }

        return await scope.run(ctx, call)


def register_memory_tools(server: MCPServer, scope: McpScope) -> None:
    """Add list_memories and forget_memory (the memory API) to ``server``."""

    @server.tool(description=LIST_MEMORIES)
    async def list_memories(
        ctx: Context,
        kinds: list[str] | None = None,
        status: str = "active",
        since: str | None = None,
        until: str | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        def call(_who: Principal, uid: str) -> dict[str, Any]:
            page = scope.client.list_memories(uid, kinds, status, since, until, cursor, limit)
            return {
                "memories": [
                    {
                        "id": m.id,
                        "line": format_context([m], m.language or "en", scope.settings.tz)[0],
                        "kind": m.kind.value,
                        "status": m.status.value,
                    }
                    for m in page.memories
                ],
                "cursor": page.cursor,
            }

        return await scope.run(ctx, call)

    @server.tool(description=FORGET_MEMORY)
    async def forget_memory(memory_id: str, ctx: Context, hard: bool = False) -> dict[str, Any]:
        def call(_who: Principal, uid: str) -> dict[str, Any]:
            return {"deleted": scope.client.delete_memory(uid, memory_id, hard)}

        return await scope.run(ctx, call)
