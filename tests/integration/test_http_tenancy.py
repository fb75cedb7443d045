"""Tenants over HTTP: two tenants' ``alice`` never meet, and no key reaches another tenant's data.

A real ``memlane serve`` on real Redis, with SQLite and then Elasticsearch. Tenant ``b`` owns
data under user ids chosen to collide with tenant ``a``'s view of the world (``alice``,
``@b/alice``, ``a/../b``), and memory ids ``a`` may name. A hypothesis property drives every
endpoint with ``a``'s key, arbitrary user ids and ``b``'s memory ids (and ``b``'s own export,
ids and all, as an import), and checks that no response mentions ``b``'s data and that ``b``'s
turns and memories are untouched.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlane import MemoryClient, Settings
from memlane.buffer.usage import UsageRecorder
from memlane.ids import batch_id
from memlane.llm.chat import Usage
from tests.support.api_proc import ApiServer, backend_settings, create_key
from tests.support.services import RedisService

pytestmark = [pytest.mark.redis]
B_USERS = ["alice", "bob", "@b/alice", "@a/alice", "a/../b", "Ünï/çødé"]
SECRET = "zebrafish-of-b"  # appears in every piece of b's data, nowhere else


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_service: RedisService,
) -> Iterator[dict[str, Any]]:
    """A server on each backend; keys of tenants a and b and an admin key; b's turns and
    memories in place."""
    tmp = tmp_path_factory.mktemp("tenancy")
    with backend_settings(request, tmp, redis_service.url) as settings:
        yield from _world(settings, tmp)


def _world(settings: Settings, tmp: Path) -> Iterator[dict[str, Any]]:
    keys = {t: create_key(settings, t, rate=10_000, burst=10_000) for t in ("a", "b")}
    keys["admin"] = create_key(settings, None, rate=10_000, burst=10_000)
    b_ids: list[str] = []
    with ApiServer(settings, tmp / "serve.log") as server, server.client(keys["b"]) as b:
        for user in B_USERS:
            path = f"/v1/users/{quote(user, safe='')}"
            turns = [{"role": "user", "content": f"{SECRET} turn of {user}"}]
            assert b.post(f"{path}/turns", json={"turns": turns}).status_code == 202
            mems = [{"content": f"{SECRET} memory of {user}"}]
            r = b.post(f"{path}/memories", json={"memories": mems})
            assert r.status_code == 201
            b_ids += r.json()["ids"]
        # b's own export: the lines a would send if it got hold of them (same memory ids).
        stolen = b.get(f"/v1/users/{quote(B_USERS[0], safe='')}/export").content
        stolen = stolen.replace(SECRET.encode(), b"overwritten by a")
        with MemoryClient(settings) as local:
            yield {
                "server": server,
                "keys": keys,
                "settings": settings,
                "local": local,
                "b_ids": b_ids,
                "stolen_export": stolen,
                "b_batch": _b_work(b, local),
            }


def _b_work(b: httpx.Client, local: MemoryClient) -> str:
    """b's work in Redis: a dead letter of user ``carl`` and LLM usage of every b user under a
    model named after the secret. Returns the dead letter's batch id."""
    turns = [{"role": "user", "content": f"{SECRET} parked turn"}]
    assert b.post("/v1/users/carl/turns", json={"turns": turns}).status_code == 202
    svc = local.services
    token = svc.leases.acquire("@b/carl")
    assert token is not None
    entries = svc.buffer.read("@b/carl", 10)
    batch = batch_id("@b/carl", entries[0].entry_id, entries[-1].entry_id)
    svc.buffer.dead_letter("@b/carl", token, batch, entries, f"LLMError: {SECRET}")
    svc.leases.release("@b/carl", token)
    for u in [*B_USERS, "carl"]:
        UsageRecorder(svc.redis, svc.keys).record(f"@b/{u}", Usage(f"{SECRET}-model", 1, 1))
    return batch


def b_state(local: MemoryClient) -> dict[str, Any]:
    """Per b user: buffered turns, and every stored memory with its status and content; and
    b's dead letters."""
    state: dict[str, Any] = {}
    for u in B_USERS:
        page = local.list_memories(f"@b/{u}", status="all", limit=500)
        mems = sorted((m.id, m.status.value, m.content) for m in page.memories)
        state[u] = (local.pending(f"@b/{u}"), mems)
    state["dead_letters"] = [(d.batch_id, len(d.turns)) for d in local.dead_letters("@b/carl")]
    return state


def test_two_tenants_each_have_their_own_alice(world: dict[str, Any]) -> None:
    """a's alice and b's alice are different users: each sees only its own memories."""
    server: ApiServer = world["server"]
    with server.client(world["keys"]["a"]) as a, server.client(world["keys"]["b"]) as b:
        mems = [{"content": "a's alice collects stamps"}]
        assert a.post("/v1/users/alice/memories", json={"memories": mems}).status_code == 201
        seen_by_a = a.post("/v1/users/alice/search", json={"query": "stamps zebrafish"}).json()
        seen_by_b = b.post("/v1/users/alice/search", json={"query": "stamps zebrafish"}).json()
    assert [r["memory"]["content"] for r in seen_by_a["results"]] == [mems[0]["content"]]
    assert [r["memory"]["content"] for r in seen_by_b["results"]] == [f"{SECRET} memory of alice"]
    assert {r["memory"]["user_id"] for r in seen_by_a["results"] + seen_by_b["results"]} == {
        "alice"
    }


def test_an_admin_key_sees_tenants_users_by_their_inside_ids(world: dict[str, Any]) -> None:
    """An admin addresses b's alice as ``@b/alice`` (the id the store and workers know)."""
    server: ApiServer = world["server"]
    with server.client(world["keys"]["admin"]) as admin:
        r = admin.post(f"/v1/users/{quote('@b/alice', safe='')}/search", json={"query": "turn"})
        found = admin.get(f"/v1/users/{quote('@b/bob', safe='')}/pending").json()
    assert [h["memory"]["user_id"] for h in r.json()["results"]] == ["@b/alice"]
    assert found["pending"] == 1


USER_IDS = st.one_of(
    st.sampled_from(
        [*B_USERS, "@b", "b", "../b/alice", "@b%2Falice", "%40b%2Falice", " alice", "@b/carl"]
    ),
    st.text(min_size=1, max_size=24),
)


Op = tuple[str, str, dict[str, Any] | None, bytes | None]


def _ops(user: str, mid: str, world: dict[str, Any]) -> list[Op]:
    """Every endpoint, with tenant a naming ``user`` and (where it takes one) b's memory ``mid``."""
    path = f"/v1/users/{quote(user, safe='')}"
    mem = f"{path}/memories/{quote(mid, safe='')}"
    forged = base64.urlsafe_b64encode(json.dumps({"after": "@b/"}).encode()).decode()
    return [
        ("POST", f"{path}/turns", {"turns": [{"role": "user", "content": "a's words"}]}, None),
        ("POST", f"{path}/search", {"query": f"{SECRET} {user}", "include_pending": True}, None),
        ("GET", f"{path}/pending", None, None),
        ("POST", f"{path}/flush", {"wait": False}, None),
        ("DELETE", path, None, None),
        ("POST", f"{path}/memories", {"memories": [{"content": "a's memory"}]}, None),
        ("GET", f"{path}/memories?status=all", None, None),
        ("GET", mem, None, None),
        ("PATCH", mem, {"content": "edited by a"}, None),
        ("DELETE", mem, None, None),
        ("DELETE", f"{mem}?hard=true", None, None),
        ("GET", f"{mem}/history", None, None),
        ("GET", f"{path}/export", None, None),
        ("POST", f"{path}/import", None, world["stolen_export"]),
        ("GET", "/v1/users?limit=1000", None, None),
        ("GET", f"/v1/users?cursor={forged}", None, None),
        ("GET", f"/v1/users?prefix={quote(user, safe='')}", None, None),
        ("GET", f"{path}/turns?limit=1000", None, None),
        ("GET", f"{path}/dead-letters", None, None),
        ("POST", f"{path}/dead-letters/{quote(world['b_batch'], safe='')}/replay", None, None),
        ("GET", f"{path}/usage?days=90", None, None),
    ]


OP_COUNT = 21


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=USER_IDS, op=st.integers(0, OP_COUNT - 1), pick=st.integers(0, 99))
def test_no_key_reaches_another_tenant_s_data_through_any_endpoint(
    world: dict[str, Any], user: str, op: int, pick: int
) -> None:
    """Whatever user id and memory id tenant a names on whatever endpoint, no response carries
    b's data, and b's buffered turns and memories (ids, statuses, contents) are unchanged."""
    server: ApiServer = world["server"]
    before = b_state(world["local"])
    ops = _ops(user, world["b_ids"][pick % len(world["b_ids"])], world)
    assert len(ops) == OP_COUNT
    method, path, body, raw = ops[op]
    with server.client(world["keys"]["a"]) as a:
        r = a.request(method, path, json=body) if raw is None else a.post(path, content=raw)
    # 405: the client resolves a user id of "." or ".." away as a dot segment (RFC 3986), so
    # POST /v1/users/./turns arrives as POST /v1/users/turns, a path with no such method.
    assert r.status_code in {200, 201, 202, 404, 405, 422}, r.text
    assert SECRET not in r.text
    if path.endswith("/replay"):  # its answer would not carry the secret: a's own must fail
        assert r.status_code in {404, 422}, r.text
    assert b_state(world["local"]) == before
