"""The work routes over HTTP (buffered turns, dead letters and their replay, usage per day, the
users list's prefix filter and dead-letter counts), on a real server over real Redis, with
SQLite and then Elasticsearch.

Dead letters for the read-only tests are parked through the buffer's own ``dead_letter`` under
a real lease; the replay test makes them for real (a worker whose embedding endpoint answers
400) and replays them through ``POST .../replay`` with a real worker running.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from memlane import MemoryClient, Settings
from memlane.buffer.usage import UsageRecorder
from memlane.ids import batch_id, raw_memory_id
from memlane.llm.chat import Usage
from tests.support.api_proc import ApiServer, backend_settings, create_key
from tests.support.http_stub import RefusingEndpoint
from tests.support.services import RedisService
from tests.support.worker_proc import (
    Cluster,
    flush_db,
    fresh_db_url,
    iter_ids,
    wait_until,
    worker_settings_overrides,
)

pytestmark = [pytest.mark.redis]
SECRET = "rerank-key-zebra-4242"  # a configured secret: must never reach a response


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_service: RedisService,
) -> Iterator[dict[str, Any]]:
    """A server on each backend, and a local client on the same Redis and store."""
    tmp = tmp_path_factory.mktemp(f"work-{request.param}")
    with backend_settings(request, tmp, redis_service.url, rerank={"api_key": SECRET}) as settings:
        serve = ApiServer(settings, tmp / "serve.log", extra={"rerank__api_key": SECRET})
        with serve as server, MemoryClient(settings) as local:
            yield {"server": server, "settings": settings, "local": local}


@pytest.fixture
def tenants(world: dict[str, Any]) -> Iterator[tuple[httpx.Client, httpx.Client, str, str]]:
    """(a client of a fresh tenant, a client of another, their two names)."""
    server: ApiServer = world["server"]
    t1, t2 = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    settings = world["settings"]
    with (
        server.client(create_key(settings, t1)) as a,
        server.client(create_key(settings, t2)) as b,
    ):
        yield a, b, t1, t2


def push(http: httpx.Client, user: str, contents: list[str]) -> list[str]:
    """Push turns over HTTP; their ids."""
    turns = [{"role": "user", "content": c, "name": "Ann"} for c in contents]
    r = http.post(f"/v1/users/{quote(user, safe='')}/turns", json={"turns": turns})
    assert r.status_code == 202, r.text
    ids: list[str] = r.json()["turn_ids"]
    return ids


def park(local: MemoryClient, uid: str, reason: str) -> str:
    """Dead-letter every buffered turn of ``uid`` (inside id) under its lease; the batch id."""
    buf, leases = local.services.buffer, local.services.leases
    token = leases.acquire(uid)
    assert token is not None
    try:
        entries = buf.read(uid, 1000)
        batch = batch_id(uid, entries[0].entry_id, entries[-1].entry_id)
        buf.dead_letter(uid, token, batch, entries, reason)
    finally:
        leases.release(uid, token)
    return batch


def inside(tenant: str, user: str) -> str:
    """The id the buffer and the store know a tenant's user by."""
    return f"@{tenant}/{user}"


def test_users_filter_by_prefix_and_count_dead_letters(
    world: dict[str, Any], tenants: tuple[httpx.Client, httpx.Client, str, str]
) -> None:
    """prefix keeps the caller's ids starting with it (pushed or only stored, the prefix itself
    included), pages with a cursor, counts dead letters, and never reaches another tenant."""
    a, b, ta, tb = tenants
    for user in ["al", "alice", "alina", "bob", "ak"]:
        push(a, user, [f"{user} says hi"])
    mems = {"memories": [{"content": "alfred only has an imported memory"}]}
    assert a.post("/v1/users/alfred/memories", json=mems).status_code == 201
    push(b, "alice", ["b's alice"])
    park(world["local"], inside(ta, "alice"), "LLMError: refused")

    r = a.get("/v1/users", params={"prefix": "al"})
    assert r.status_code == 200, r.text
    users = r.json()["users"]
    assert [u["user_id"] for u in users] == ["al", "alfred", "alice", "alina"]
    by_id = {u["user_id"]: u for u in users}
    assert by_id["alice"]["dead_letters"] == 1 and by_id["alice"]["pending"] == 0
    assert by_id["alina"]["dead_letters"] == 0 and by_id["alina"]["pending"] == 1
    assert by_id["alfred"]["memories"] == 1

    seen, cursor = [], None
    while True:
        params = {"prefix": "al", "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = a.get("/v1/users", params=params).json()
        seen += [u["user_id"] for u in page["users"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == ["al", "alfred", "alice", "alina"]

    for prefix in [f"@{tb}", f"@{tb}/", "@", f"../{tb}"]:
        r = a.get("/v1/users", params={"prefix": prefix})
        assert r.status_code == 200 and r.json()["users"] == [], (prefix, r.text)
    assert [u["user_id"] for u in b.get("/v1/users", params={"prefix": "al"}).json()["users"]] == [
        "alice"
    ]


def test_buffered_turns_oldest_first_with_limit_and_total(
    tenants: tuple[httpx.Client, httpx.Client, str, str],
) -> None:
    """GET .../turns lists buffered turns oldest first, at most limit, with the full total."""
    a, _b, _ta, _tb = tenants
    ids = push(a, "carol", ["one", "two", "three"])
    r = a.get("/v1/users/carol/turns", params={"limit": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == "carol" and body["total"] == 3
    assert [t["turn_id"] for t in body["turns"]] == ids[:2]
    first = body["turns"][0]
    assert (first["role"], first["content"], first["name"]) == ("user", "one", "Ann")
    assert first["entry_id"] and datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert a.get("/v1/users/nobody/turns").json() == {
        "user_id": "nobody",
        "turns": [],
        "total": 0,
    }


def test_dead_letters_show_a_redacted_reason_and_their_turns(
    world: dict[str, Any], tenants: tuple[httpx.Client, httpx.Client, str, str]
) -> None:
    """GET .../dead-letters shows batch id, UTC time, turns, and the reason with secrets masked."""
    a, _b, ta, _tb = tenants
    ids = push(a, "dora", ["first", "second"])
    before = datetime.now(UTC)
    batch = park(world["local"], inside(ta, "dora"), f"LLMError: 401 for key {SECRET} at host")
    r = a.get("/v1/users/dora/dead-letters")
    assert r.status_code == 200, r.text
    assert SECRET not in r.text
    (letter,) = r.json()["dead_letters"]
    assert letter["batch_id"] == batch
    assert letter["reason"].startswith("LLMError: 401 for key ") and "at host" in letter["reason"]
    at = datetime.fromisoformat(letter["at"])
    assert at.utcoffset() == timedelta(0) and before - timedelta(seconds=5) <= at
    assert [t["turn_id"] for t in letter["turns"]] == ids
    assert [t["content"] for t in letter["turns"]] == ["first", "second"]


def test_usage_has_every_day_with_zeros_and_models(
    world: dict[str, Any], tenants: tuple[httpx.Client, httpx.Client, str, str]
) -> None:
    """GET .../usage gives each of the last `days` UTC days, oldest first, summed and by model."""
    a, _b, ta, _tb = tenants
    local: MemoryClient = world["local"]
    uid = inside(ta, "erin")
    now = datetime.now(UTC)
    svc = local.services
    UsageRecorder(svc.redis, svc.keys).record(uid, Usage("m1", 10, 5))
    UsageRecorder(svc.redis, svc.keys).record(uid, Usage("m2", 7, 1))
    earlier = UsageRecorder(svc.redis, svc.keys, clock=lambda: now - timedelta(days=3))
    earlier.record(uid, Usage("m1", 100, 50))
    earlier.record(uid, Usage("m1", 1, 1))
    UsageRecorder(svc.redis, svc.keys).record(inside(ta, "other"), Usage("m1", 999, 999))

    r = a.get("/v1/users/erin/usage", params={"days": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    days = body["days"]
    assert body["user_id"] == "erin"
    assert [d["day"] for d in days] == [
        (now - timedelta(days=n)).date().isoformat() for n in range(4, -1, -1)
    ]
    today, three_ago = days[-1], days[1]
    assert (today["calls"], today["prompt_tokens"], today["completion_tokens"]) == (2, 17, 6)
    assert today["by_model"] == {
        "m1": {"calls": 1, "prompt_tokens": 10, "completion_tokens": 5},
        "m2": {"calls": 1, "prompt_tokens": 7, "completion_tokens": 1},
    }
    assert three_ago["by_model"] == {
        "m1": {"calls": 2, "prompt_tokens": 101, "completion_tokens": 51}
    }
    for quiet in (days[0], days[2], days[3]):
        assert quiet["calls"] == quiet["prompt_tokens"] == quiet["completion_tokens"] == 0
        assert quiet["by_model"] == {}
    assert len(a.get("/v1/users/erin/usage").json()["days"]) == 30


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/users/x/turns", {"limit": 0}, "limit"),
        ("/v1/users/x/turns", {"limit": 1001}, "limit"),
        ("/v1/users/x/turns", {"limit": "many"}, "limit"),
        ("/v1/users/x/usage", {"days": 0}, "days"),
        ("/v1/users/x/usage", {"days": 91}, "days"),
        ("/v1/users/x/usage", {"days": "week"}, "days"),
        ("/v1/users", {"prefix": "a\x01"}, "prefix"),
        ("/v1/users", {"prefix": "a" * 300}, "prefix"),
        ("/v1/users/%20/dead-letters", {}, "user_id"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    tenants: tuple[httpx.Client, httpx.Client, str, str],
    path: str,
    params: dict[str, Any],
    field: str,
) -> None:
    """Out-of-range or malformed parameters are refused with the field named."""
    a, _b, _ta, _tb = tenants
    r = a.get(path, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_replaying_an_unknown_batch_is_a_404(
    tenants: tuple[httpx.Client, httpx.Client, str, str],
) -> None:
    """A batch that is not one of the user's dead letters is the project's 404 shape."""
    a, _b, _ta, _tb = tenants
    r = a.post("/v1/users/zed/dead-letters/no-such-batch/replay")
    assert r.status_code == 404, r.text
    assert r.json()["error"]["type"] == "NotFound"
    assert r.json()["error"]["field"] == "batch_id"


def test_a_tenant_never_sees_or_replays_another_tenant_s_work(
    world: dict[str, Any], tenants: tuple[httpx.Client, httpx.Client, str, str]
) -> None:
    """Tenant a's alice and b's alice are different: a sees none of b's turns, dead letters or
    usage, and cannot replay b's batch (404), which stays parked."""
    a, b, _ta, tb = tenants
    local: MemoryClient = world["local"]
    push(b, "alice", ["b parked"])
    b_batch = park(local, inside(tb, "alice"), "LLMError: b's failure")
    push(b, "alice", ["b waiting"])
    svc = local.services
    UsageRecorder(svc.redis, svc.keys).record(inside(tb, "alice"), Usage("m1", 3, 3))

    for user in ["alice", f"@{tb}/alice", f"../@{tb}/alice", f"@{tb}%2Falice"]:
        path = f"/v1/users/{quote(user, safe='')}"
        for route in ("turns", "dead-letters", "usage"):
            r = a.get(f"{path}/{route}")
            assert r.status_code in {200, 422}, r.text
            assert "b's" not in r.text and b_batch not in r.text and '"calls":1' not in r.text
        r = a.post(f"{path}/dead-letters/{quote(b_batch, safe='')}/replay")
        assert r.status_code in {404, 422}, r.text
        assert "b's" not in r.text
    assert a.get("/v1/users/alice/turns").json()["turns"] == []
    assert a.get("/v1/users/alice/dead-letters").json()["dead_letters"] == []
    assert all(d["calls"] == 0 for d in a.get("/v1/users/alice/usage").json()["days"])
    assert [d.batch_id for d in local.dead_letters(inside(tb, "alice"))] == [b_batch]

    assert [t["content"] for t in b.get("/v1/users/alice/turns").json()["turns"]] == ["b waiting"]
    assert b.get("/v1/users/alice/usage", params={"days": 1}).json()["days"][0]["calls"] == 1


@pytest.fixture
def worker_settings(make_settings: Callable[..., Settings], redis_url: str) -> Iterator[Settings]:
    """Settings on a Redis database of the test's own, fast batching, one attempt per batch."""
    url = fresh_db_url(redis_url)
    yield make_settings(
        redis={"url": url}, **worker_settings_overrides(batch_max_turns=5, max_attempts=1)
    )
    flush_db(url)


@pytest.mark.celery
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_replay_through_http_stores_the_turns_once(
    worker_settings: Settings, tmp_path: Path
) -> None:
    """Batches dead-lettered for real are replayed by POST .../replay and a real worker: the
    dead letters go and every turn is stored exactly once."""
    settings = worker_settings
    tenant = f"t{uuid.uuid4().hex[:8]}"
    with (
        RefusingEndpoint(status=400) as endpoint,
        Cluster(settings, tmp_path / "procs") as cluster,
        ApiServer(settings, tmp_path / "serve.log") as server,
        server.client(create_key(settings, tenant)) as http,
        server.client(create_key(settings, f"o{tenant}")) as other,
        MemoryClient(settings) as local,
    ):
        broken = cluster.worker(
            "worker-broken", concurrency=1, embedding__base_url=endpoint.base_url
        )
        cluster.beat()
        pushed = push(http, "fay", [f"fay fact {i}" for i in range(7)])

        def letters() -> list[dict[str, Any]]:
            r = http.get("/v1/users/fay/dead-letters")
            assert r.status_code == 200, r.text
            found: list[dict[str, Any]] = r.json()["dead_letters"]
            return found

        wait_until(
            lambda: sum(len(d["turns"]) for d in letters()) == len(pushed),
            120,
            "every batch of fay to be dead-lettered",
        )
        parked = letters()
        assert all(d["reason"].startswith("LLMError") for d in parked)
        assert http.get("/v1/users", params={"prefix": "fa"}).json()["users"][0][
            "dead_letters"
        ] == len(parked)
        uid = inside(tenant, "fay")
        assert local.services.store.count(uid) == 0

        broken.stop()
        cluster.worker("worker-fixed", concurrency=1)  # the local embedding model again
        for letter in parked:
            path = f"/v1/users/fay/dead-letters/{quote(letter['batch_id'], safe='')}/replay"
            assert other.post(path).status_code == 404
            r = http.post(path)
            assert r.status_code == 202, r.text
            assert r.json() == {"batch_id": letter["batch_id"], "queued": True}

        wait_until(lambda: letters() == [], 150, "the replayed dead letters to be gone")
        ids = list(iter_ids(local.services.store, uid))
        assert len(ids) == len(set(ids)) == len(pushed)
        assert set(ids) == {raw_memory_id(uid, t) for t in pushed}
        assert http.get("/v1/users/fay/turns").json()["total"] == 0
