"""The MCP server over stdio, driven by the official SDK's own client (a real subprocess).

The server runs ``python -m worker.cli mcp --user ...`` on the test's Redis and SQLite store;
``MEMLANE_API_KEY`` puts the user in a tenant. Consolidation is not needed: ``recall`` finds
pending turns, and memories are imported straight into the store where a test needs them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from memlane import MemoryClient, Settings
from tests.support.api_proc import create_key, free_port
from tests.support.worker_proc import ROOT, child_env, wait_until

pytestmark = [pytest.mark.redis]
Session = Callable[[ClientSession], Awaitable[Any]]


def run_session(settings: Settings, user: str, body: Session, key: str | None = None) -> Any:
    """Start the stdio server, initialise a session, run ``body`` on it, stop the server."""
    env = child_env(settings)
    if key is not None:
        env["MEMLANE_API_KEY"] = key
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "worker.cli", "mcp", "--user", user],
        env=env,
        cwd=str(ROOT),
    )

    async def main() -> Any:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await body(session)

    return anyio.run(main)


def structured(result: Any) -> dict[str, Any]:
    """The structured result of a successful tool call."""
    assert not result.is_error, result.content
    out: dict[str, Any] = result.structured_content
    return out


def test_the_tools_are_listed_with_descriptions_an_agent_can_act_on(
    make_settings: Callable[..., Settings],
) -> None:
    """remember, recall (and the memory tools) are listed, each explaining when to call it."""

    async def body(session: ClientSession) -> Any:
        return (await session.list_tools()).tools

    tools = {t.name: t for t in run_session(make_settings(), "alice", body)}
    assert set(tools) == {"remember", "recall", "list_memories", "forget_memory"}
    assert "id" in (tools["forget_memory"].description or "")
    assert "yesterday" in (tools["recall"].description or "")
    assert "query" in tools["recall"].input_schema["properties"]
    assert "content" in tools["remember"].input_schema["properties"]


def test_remember_then_recall_in_the_tenant_of_the_key(
    make_settings: Callable[..., Settings],
) -> None:
    """remember buffers the turn for the tenant's user; recall finds it at once (pending)."""
    settings = make_settings()
    key = create_key(settings, "acme")

    async def body(session: ClientSession) -> Any:
        pushed = structured(
            await session.call_tool("remember", {"content": "I play the cello on Sundays"})
        )
        found = structured(await session.call_tool("recall", {"query": "cello"}))
        return pushed, found

    pushed, found = run_session(settings, "alice", body, key)
    assert len(pushed["turn_ids"]) == 1
    (hit,) = found["memories"]
    assert hit["pending"] is True and "cello" in hit["line"]
    with MemoryClient(settings) as local:
        assert local.pending("@acme/alice") == 1
        assert local.pending("alice") == 0


def test_recall_understands_time_expressions_relative_to_now(
    make_settings: Callable[..., Settings],
) -> None:
    """ "yesterday" relative to the given now picks the memory of that day first."""
    settings = make_settings()
    with MemoryClient(settings) as local:
        local.import_memories(
            "bob",
            [
                {"content": "Bob went hiking", "event_time": "2024-10-25T10:00:00+08:00"},
                {"content": "Bob went swimming", "event_time": "2024-10-01T10:00:00+08:00"},
            ],
        )

    async def body(session: ClientSession) -> Any:
        args = {"query": "what did I do yesterday", "now": "2024-10-26T12:00:00+08:00"}
        return structured(await session.call_tool("recall", args))

    found = run_session(settings, "bob", body)
    assert found["memories"][0]["line"].startswith("[2024-10-25")
    assert "hiking" in found["memories"][0]["line"]


def test_list_memories_then_forget_one(make_settings: Callable[..., Settings]) -> None:
    """list_memories shows the tenant user's memories with ids; forget_memory deletes one (soft:
    it is then listed only with status deleted); an unknown id is a tool error saying so."""
    settings = make_settings()
    key = create_key(settings, "acme")
    with MemoryClient(settings) as local:
        ids = local.import_memories(
            "@acme/erin", [{"content": "Erin likes tea"}, {"content": "Erin has a dog"}]
        )

    async def body(session: ClientSession) -> Any:
        listed = structured(await session.call_tool("list_memories", {}))
        gone = structured(await session.call_tool("forget_memory", {"memory_id": ids[0]}))
        after = structured(await session.call_tool("list_memories", {}))
        deleted = structured(await session.call_tool("list_memories", {"status": "deleted"}))
        missing = await session.call_tool("forget_memory", {"memory_id": "m-nope"})
        return listed, gone, after, deleted, missing

    listed, gone, after, deleted, missing = run_session(settings, "erin", body, key)
    assert sorted(m["id"] for m in listed["memories"]) == sorted(ids)
    assert gone == {"deleted": 1}
    assert [m["id"] for m in after["memories"]] == [ids[1]]
    assert [(m["id"], m["status"]) for m in deleted["memories"]] == [(ids[0], "deleted")]
    assert missing.is_error and "list_memories" in missing.content[0].text


def test_bad_arguments_come_back_as_tool_errors_naming_the_field(
    make_settings: Callable[..., Settings],
) -> None:
    """An empty turn is a tool error the model can read (invalid turns[0].content)."""

    async def body(session: ClientSession) -> Any:
        return await session.call_tool("remember", {"content": "   "})

    result = run_session(make_settings(), "carol", body)
    assert result.is_error
    assert "turns[0].content" in result.content[0].text


@pytest.mark.timeout(120)
def test_streamable_http_needs_a_key_and_works_in_its_tenant(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Over streamable HTTP: no key is 401 before MCP sees the request; with a tenant key and
    X-Memlane-User, remember lands in that tenant's user."""
    settings = make_settings()
    key = create_key(settings, "acme")
    port = free_port()
    argv = [sys.executable, "-m", "worker.cli", "mcp", "--transport", "http", "--port", str(port)]
    log = (tmp_path / "mcp.log").open("wb")
    proc = subprocess.Popen(argv, env=child_env(settings), cwd=ROOT, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        refused = wait_until(lambda: _post_or_none(url), 60, "the MCP HTTP server")
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "Unauthorized"

        async def main() -> Any:
            headers = {"Authorization": f"Bearer {key}", "X-Memlane-User": "dora"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=60) as http,
                streamable_http_client(url, http_client=http) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return structured(await session.call_tool("remember", {"content": "I knit"}))

        assert len(anyio.run(main)["turn_ids"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    with MemoryClient(settings) as local:
        assert local.pending("@acme/dora") == 1


def _post_or_none(url: str) -> httpx.Response | None:
    """A POST to the server, or None while it does not listen yet."""
    try:
        return httpx.post(url, json={}, timeout=2)
    except httpx.HTTPError:
        return None
