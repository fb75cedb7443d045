"""The push hot path (service/fastlane.py, service/fastpush.py) once the server knows a key.

After a key's first request the server remembers its tenant and checks the key, takes the token
and pushes in one Lua script. These tests make sure that memory never decides anything:
revocation, the bucket, validation and the tenant all behave as on the first request.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis

from memlane import MemoryClient, Settings, load_settings
from memlane.buffer.keys import Keys
from memlane.errors import InvalidInput
from service.apikeys import KeyStore, key_hash
from tests.integration.test_http_api import BAD_PUSHES, error, turn
from tests.support.api_proc import ApiServer, create_key
from tests.support.services import RedisService

pytestmark = [pytest.mark.redis]


@pytest.fixture(scope="module")
def api_settings(tmp_path_factory: pytest.TempPathFactory, redis_service: RedisService) -> Settings:
    """Settings of this module's server: its own data dir and key prefix."""
    tmp = tmp_path_factory.mktemp("push")
    return load_settings(
        environ={},
        data_dir=str(tmp / "data"),
        redis={"url": redis_service.url, "key_prefix": f"t{uuid.uuid4().hex[:12]}"},
    )


@pytest.fixture(scope="module")
def server(api_settings: Settings) -> Iterator[ApiServer]:
    """One real server for the module."""
    with ApiServer(api_settings, api_settings.data_path.parent / "serve.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def local(api_settings: Settings) -> Iterator[MemoryClient]:
    """An in-process client on the same Redis, to look behind the API."""
    with MemoryClient(api_settings) as client:
        yield client


@pytest.fixture
def tenant() -> str:
    """A tenant name of the test's own."""
    return f"t{uuid.uuid4().hex[:10]}"


@contextmanager
def known_client(server: ApiServer, key: str, user: str) -> Iterator[httpx.Client]:
    """A client whose key has pushed once (so the server knows its tenant)."""
    with server.client(key) as client:
        r = client.post(f"/v1/users/{user}/turns", json={"turns": [turn("first")]})
        assert r.status_code == 202, r.text
        yield client


def test_a_known_key_revoked_is_refused_at_once_even_with_a_bad_body(
    server: ApiServer, api_settings: Settings, local: MemoryClient, tenant: str
) -> None:
    """After revocation the next push is 401, before any 400/413/422 of its body."""
    assert local.services.redis is not None
    store = KeyStore(local.services.redis, api_settings.redis.key_prefix)
    info, key = store.create(tenant, 100, 100)
    with known_client(server, key, "ruth") as c:
        assert store.revoke(info.key_id)
        assert error(c.post("/v1/users/ruth/turns", json={"turns": [turn("x")]}), 401)
        assert error(c.post("/v1/users/ruth/turns", content=b"{not json"), 401)
        assert error(c.post("/v1/users/ruth/turns", json={"turns": [{"role": "?"}]}), 401)
    assert local.pending(f"@{tenant}/ruth") == 1


@pytest.mark.parametrize(("case", "body"), BAD_PUSHES, ids=[c for c, _ in BAD_PUSHES])
def test_a_known_key_s_bad_pushes_get_the_same_422(
    server: ApiServer,
    api_settings: Settings,
    local: MemoryClient,
    tenant: str,
    case: str,
    body: dict[str, Any],
) -> None:
    """The 422 names the same field and message as ``add_turns``; nothing more is written."""
    with pytest.raises(InvalidInput) as raised:
        local.add_turns(f"@{tenant}/sam", body["turns"], body.get("session_id"))
    with known_client(server, create_key(api_settings, tenant), "sam") as c:
        err = error(c.post("/v1/users/sam/turns", json=body), 422)
    assert (err["field"], err["message"]) == (raised.value.field, raised.value.reason), case
    assert local.pending(f"@{tenant}/sam") == 1


def test_a_known_key_past_its_bucket_gets_429_and_writes_nothing(
    server: ApiServer, api_settings: Settings, local: MemoryClient, tenant: str
) -> None:
    """Burst 2 at 0.1/s: the first push and one more pass, the third is 429 and not buffered."""
    key = create_key(api_settings, tenant, rate=0.1, burst=2)
    with known_client(server, key, "tom") as c:
        codes = [c.post("/v1/users/tom/turns", json={"turns": [turn(f"n{i}")]}) for i in range(2)]
    assert [r.status_code for r in codes] == [202, 429]
    assert int(codes[1].headers["Retry-After"]) >= 1
    assert local.pending(f"@{tenant}/tom") == 2


def test_the_tenant_redis_holds_decides_not_the_one_remembered(
    server: ApiServer, api_settings: Settings, local: MemoryClient, tenant: str
) -> None:
    """A key record whose tenant changed in Redis (no command does this) pushes into the tenant
    Redis names: the remembered tenant only ever names keys for the script to check."""
    key = create_key(api_settings, tenant)
    other = f"t{uuid.uuid4().hex[:10]}"
    record = Keys(api_settings.redis.key_prefix).api_key(key_hash(key))
    assert api_settings.redis.url is not None
    direct = redis.Redis.from_url(api_settings.redis.url)
    try:
        with known_client(server, key, "uma") as c:
            direct.hset(record, "tenant", other)
            r = c.post("/v1/users/uma/turns", json={"turns": [turn("moved")]})
            assert r.status_code == 202, r.text
            r = c.post("/v1/users/uma/turns", json={"turns": [turn("again")]})
            assert r.status_code == 202, r.text
    finally:
        direct.close()
    assert local.pending(f"@{tenant}/uma") == 1
    assert local.pending(f"@{other}/uma") == 2


def test_pushes_sent_at_once_by_different_keys_each_get_their_own_answer(
    server: ApiServer, api_settings: Settings, local: MemoryClient
) -> None:
    """Pushes that reach the server together share a Redis round trip (service/groupcommit.py).
    Fired at once from four known keys, each keeps its own outcome: two tenants' pushes to a
    user both called ``ann`` land in their own tenant, a revoked key's get 401 and an empty
    bucket's 429, with nothing of theirs written."""
    a, b = f"t{uuid.uuid4().hex[:10]}", f"t{uuid.uuid4().hex[:10]}"
    assert local.services.redis is not None
    store = KeyStore(local.services.redis, api_settings.redis.key_prefix)
    keys = {
        "a": create_key(api_settings, a),
        "b": create_key(api_settings, b),
        "revoked": create_key(api_settings, a),
        "empty": create_key(api_settings, b, rate=0.01, burst=1),
    }
    users = {"a": "ann", "b": "ann", "revoked": "rex", "empty": "eve"}
    for name, key in keys.items():  # each key known to the server, the bucket of "empty" spent
        with known_client(server, key, users[name]):
            pass
    revoked_id = next(
        k.key_id for k in store.list() if keys["revoked"].startswith(f"mlk_{k.key_id}_")
    )
    assert store.revoke(revoked_id)

    async def push(name: str, i: int) -> tuple[str, int, list[str]]:
        headers = {"Authorization": f"Bearer {keys[name]}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as c:
            r = await c.post(
                f"/v1/users/{users[name]}/turns", json={"turns": [turn(f"{name} {i}")]}
            )
        return name, r.status_code, r.json().get("turn_ids", [])

    async def all_at_once() -> list[tuple[str, int, list[str]]]:
        return await asyncio.gather(*(push(n, i) for i in range(6) for n in keys))

    answers = asyncio.run(all_at_once())
    codes = {n: sorted(code for m, code, _ in answers if m == n) for n in keys}
    assert codes == {"a": [202] * 6, "b": [202] * 6, "revoked": [401] * 6, "empty": [429] * 6}
    for name, tenant in (("a", a), ("b", b)):
        buffered = local.buffered_turns(f"@{tenant}/ann")
        assert sorted(t.turn.content for t in buffered) == sorted(
            ["first", *(f"{name} {i}" for i in range(6))]
        )
        ids = {i for m, _, got in answers if m == name for i in got}
        assert ids == {t.turn.turn_id for t in buffered if t.turn.content != "first"}
    assert local.pending(f"@{a}/rex") == 1
    assert local.pending(f"@{b}/eve") == 1
