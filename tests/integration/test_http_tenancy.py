"""Tenants over HTTP: two tenants' ``alice`` never meet, and no key reaches another tenant's data.

A real ``memlane serve`` on real Redis and SQLite. Tenant ``b`` owns data under a set of user ids
chosen to collide with tenant ``a``'s view of the world (``alice``, ``@b/alice``, ``a/../b``);
a hypothesis property then drives every endpoint with tenant ``a``'s key and arbitrary user ids
and checks that no response mentions ``b``'s data and that ``b``'s data is untouched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlane import MemoryClient, load_settings
from tests.support.api_proc import ApiServer, create_key
from tests.support.services import RedisService

pytestmark = [pytest.mark.redis]
B_USERS = ["alice", "bob", "@b/alice", "@a/alice", "a/../b", "Ünï/çødé"]
SECRET = "zebrafish-of-b"  # appears in every piece of b's data, nowhere else


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, redis_service: RedisService
) -> Iterator[dict[str, Any]]:
    """A server; keys of tenants a and b and an admin key; b's turns and memories in place."""
    tmp = tmp_path_factory.mktemp("tenancy")
    settings = load_settings(
        environ={},
        data_dir=str(tmp / "data"),
        timezone="Asia/Shanghai",
        redis={"url": redis_service.url, "key_prefix": f"t{uuid.uuid4().hex[:12]}"},
    )
    keys = {t: create_key(settings, t, rate=10_000, burst=10_000) for t in ("a", "b")}
    keys["admin"] = create_key(settings, None, rate=10_000, burst=10_000)
    with ApiServer(settings, tmp / "serve.log") as server, server.client(keys["b"]) as b:
        for user in B_USERS:
            path = f"/v1/users/{quote(user, safe='')}"
            turns = [{"role": "user", "content": f"{SECRET} turn of {user}"}]
            assert b.post(f"{path}/turns", json={"turns": turns}).status_code == 202
            mems = [{"content": f"{SECRET} memory of {user}"}]
            assert b.post(f"{path}/memories", json={"memories": mems}).status_code == 201
        with MemoryClient(settings) as local:
            yield {"server": server, "keys": keys, "settings": settings, "local": local}


def b_state(local: MemoryClient) -> dict[str, tuple[int, int]]:
    """Per b user: (buffered turns, stored memories), read behind the API."""
    return {u: (local.pending(f"@b/{u}"), local.services.store.count(f"@b/{u}")) for u in B_USERS}


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
    st.sampled_from([*B_USERS, "@b", "b", "../b/alice", "@b%2Falice", "%40b%2Falice", " alice"]),
    st.text(min_size=1, max_size=24),
)


def _ops(user: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    path = f"/v1/users/{quote(user, safe='')}"
    return [
        ("POST", f"{path}/turns", {"turns": [{"role": "user", "content": "a's words"}]}),
        ("POST", f"{path}/search", {"query": f"{SECRET} {user}", "include_pending": True}),
        ("GET", f"{path}/pending", None),
        ("POST", f"{path}/flush", {"wait": False}),
        ("DELETE", path, None),
        ("POST", f"{path}/memories", {"memories": [{"content": "a's memory"}]}),
    ]


OP_INDEX = st.integers(min_value=0, max_value=len(_ops("x")) - 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=USER_IDS, op=OP_INDEX)
def test_no_key_reaches_another_tenant_s_data_through_any_endpoint(
    world: dict[str, Any], user: str, op: int
) -> None:
    """Whatever user id tenant a names on whatever endpoint, no response carries b's data and
    b's buffered turns and memories are unchanged."""
    server: ApiServer = world["server"]
    before = b_state(world["local"])
    method, path, body = _ops(user)[op]
    with server.client(world["keys"]["a"]) as a:
        r = a.request(method, path, json=body) if body is not None else a.request(method, path)
    assert r.status_code in {200, 201, 202, 404, 422}, r.text
    assert SECRET not in r.text
    assert b_state(world["local"]) == before
