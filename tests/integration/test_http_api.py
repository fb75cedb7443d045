"""The HTTP service against a real uvicorn server, real Redis and a real SQLite store.

One ``memlane serve`` subprocess per module; each test uses users and keys of its own.
Every 4xx path is here: 400, 401, 404, 413, 422, 429 (404 for memories in
``test_http_memories.py``); the 503 paths are in
``tests/fault/test_http_outage.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from memlane import MemoryClient, Settings, load_settings
from memlane.errors import InvalidInput
from service.apikeys import KeyStore
from service.specs import DOC_PATH
from tests.support.api_proc import ApiServer, create_key
from tests.support.services import RedisService
from tests.support.worker_proc import ROOT, child_env

pytestmark = [pytest.mark.redis]
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def api_settings(tmp_path_factory: pytest.TempPathFactory, redis_service: RedisService) -> Settings:
    """Settings of this module's server: its own data dir and key prefix."""
    tmp = tmp_path_factory.mktemp("http")
    prefix = f"t{uuid.uuid4().hex[:12]}"
    return load_settings(
        environ={},
        data_dir=str(tmp / "data"),
        timezone="Asia/Shanghai",
        redis={"url": redis_service.url, "key_prefix": prefix},
        service={"max_body_bytes": MAX_BODY},
    )


@pytest.fixture(scope="module")
def server(api_settings: Settings) -> Iterator[ApiServer]:
    """One real server for the module."""
    log = api_settings.data_path.parent / "serve.log"
    with ApiServer(api_settings, log, extra={"service__max_body_bytes": MAX_BODY}) as srv:
        yield srv


@pytest.fixture(scope="module")
def local(api_settings: Settings) -> Iterator[MemoryClient]:
    """An in-process client on the same Redis and store, to look behind the API."""
    with MemoryClient(api_settings) as client:
        yield client


@pytest.fixture
def tenant() -> str:
    """A tenant name of the test's own."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def http(server: ApiServer, api_settings: Settings, tenant: str) -> Iterator[httpx.Client]:
    """A client with a fresh key of the test's tenant."""
    with server.client(create_key(api_settings, tenant)) as client:
        yield client


def turn(content: str, **extra: Any) -> dict[str, Any]:
    """One user turn."""
    return {"role": "user", "content": content, **extra}


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error body of a response that must have ``status``."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    return body


def test_push_returns_202_with_the_turn_ids_and_buffers_them(
    http: httpx.Client, local: MemoryClient, tenant: str
) -> None:
    """POST turns answers 202 with one id per turn; the turns wait in the tenant's buffer."""
    r = http.post("/v1/users/alice/turns", json={"turns": [turn("I play guitar"), turn("hi")]})
    assert r.status_code == 202, r.text
    assert len(r.json()["turn_ids"]) == 2
    assert local.pending(f"@{tenant}/alice") == 2
    assert local.pending("alice") == 0


def test_a_repushed_turn_id_is_a_no_op(
    http: httpx.Client, local: MemoryClient, tenant: str
) -> None:
    """The same turn_id twice is buffered once, and the same id comes back."""
    body = {"turns": [turn("once", turn_id="fixed-1")]}
    first = http.post("/v1/users/bob/turns", json=body).json()["turn_ids"]
    second = http.post("/v1/users/bob/turns", json=body).json()["turn_ids"]
    assert first == second == ["fixed-1"]
    assert local.pending(f"@{tenant}/bob") == 1


def test_search_takes_every_retrieve_parameter_and_explains_each_result(
    http: httpx.Client,
) -> None:
    """include_pending finds the turn just pushed; the result carries ranks, fused and boosts."""
    http.post("/v1/users/carol/turns", json={"turns": [turn("My hobby is the violin")]})
    body = {
        "query": "violin hobby",
        "top_k": 3,
        "kinds": ["raw", "observation"],
        "time_range": [None, "2100-01-01T00:00:00+08:00"],
        "now": "2030-01-02T10:00:00+08:00",
        "include_pending": True,
        "rerank": False,
    }
    r = http.post("/v1/users/carol/search", json=body)
    assert r.status_code == 200, r.text
    (hit,) = r.json()["results"]
    assert hit["pending"] is True
    assert hit["memory"]["content"] == "My hobby is the violin"
    assert hit["memory"]["user_id"] == "carol"
    assert "embedding" not in hit["memory"]
    expl = hit["explanation"]
    assert expl["knn_rank"] == 1 and expl["bm25_rank"] == 1
    assert expl["fused"] > 0 and set(expl["boosts"]) >= {"importance", "recency"}
    # Server-Timing: retrieve's milliseconds within the handler's
    timing = dict(part.strip().split(";dur=") for part in r.headers["server-timing"].split(","))
    assert 0 < float(timing["retrieve"]) <= float(timing["handler"])


def test_search_without_pending_sees_nothing_unconsolidated(http: httpx.Client) -> None:
    """Without include_pending a buffered turn is not a result (nothing is consolidated here)."""
    http.post("/v1/users/dan/turns", json={"turns": [turn("I live in Lyon")]})
    r = http.post("/v1/users/dan/search", json={"query": "Lyon"})
    assert r.status_code == 200 and r.json()["results"] == []


def test_pending_flush_and_forget(http: httpx.Client, local: MemoryClient, tenant: str) -> None:
    """pending counts the buffer; flush without workers says False; forget empties the user."""
    http.post("/v1/users/erin/turns", json={"turns": [turn("a"), turn("b")]})
    assert http.get("/v1/users/erin/pending").json() == {
        "user_id": "erin",
        "pending": 2,
        "watermark": None,
    }
    r = http.post("/v1/users/erin/flush", json={"wait": True, "timeout": 0.2})
    assert r.status_code == 200 and r.json() == {"flushed": False}
    r = http.delete("/v1/users/erin")
    assert r.status_code == 200 and r.json() == {"deleted": 0}
    assert local.pending(f"@{tenant}/erin") == 0


def test_import_memories_and_find_them(
    http: httpx.Client, local: MemoryClient, tenant: str
) -> None:
    """POST memories imports ready-made memories (201, ids); search finds them, ids stable."""
    mems = {"memories": [{"content": "Frank owns a red bicycle", "external_id": "m1"}]}
    first = http.post("/v1/users/frank/memories", json=mems)
    assert first.status_code == 201, first.text
    again = http.post("/v1/users/frank/memories", json=mems)
    assert first.json() == again.json()
    hits = http.post("/v1/users/frank/search", json={"query": "bicycle"}).json()["results"]
    assert [h["memory"]["id"] for h in hits] == first.json()["ids"]
    assert local.services.store.count(f"@{tenant}/frank") == 1


def test_user_ids_with_slashes_and_percent_signs_round_trip(
    http: httpx.Client, local: MemoryClient, tenant: str
) -> None:
    """``a/b%c`` is one user: %2F and %25 inside the path segment do not split it."""
    r = http.post("/v1/users/a%2Fb%25c/turns", json={"turns": [turn("slash")]})
    assert r.status_code == 202, r.text
    assert local.pending(f"@{tenant}/a/b%c") == 1
    assert http.get("/v1/users/a%2Fb%25c/pending").json()["user_id"] == "a/b%c"


# -- 400 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"turns": [', "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'["a list"]', "must be a JSON object"),
        (b"NaN-ish", "not JSON"),
    ],
)
def test_malformed_bodies_get_400_and_write_nothing(
    http: httpx.Client, local: MemoryClient, tenant: str, content: bytes, says: str
) -> None:
    """Bad JSON, bad encoding or a non-object body: 400 naming the problem, nothing buffered."""
    r = http.post("/v1/users/gina/turns", content=content)
    assert says in error(r, 400)["message"]
    assert local.pending(f"@{tenant}/gina") == 0


# -- 401 --------------------------------------------------------------------------------------


def test_missing_unknown_and_revoked_keys_get_401(
    server: ApiServer, api_settings: Settings, local: MemoryClient, tenant: str
) -> None:
    """No key, a made-up key, and a revoked key: 401 with WWW-Authenticate; nothing written."""
    body = {"turns": [turn("hello")]}
    with server.client(None) as anon:
        r = anon.post("/v1/users/hank/turns", json=body)
        assert error(r, 401)["type"] == "Unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    with server.client("mlk_00000000_not-a-real-key") as forged:
        assert error(forged.post("/v1/users/hank/turns", json=body), 401)
    assert local.services.redis is not None
    store = KeyStore(local.services.redis, api_settings.redis.key_prefix)
    info, key = store.create(tenant, 100, 100)
    with server.client(key) as c:
        assert c.post("/v1/users/hank/turns", json=body).status_code == 202
        assert store.revoke(info.key_id)
        assert error(c.post("/v1/users/hank/turns", json=body), 401)
    assert local.pending(f"@{tenant}/hank") == 1


# -- 404 --------------------------------------------------------------------------------------


def test_unknown_routes_get_404_in_the_error_shape(http: httpx.Client) -> None:
    """A path outside the API is 404 with the same error body as every other error."""
    assert error(http.get("/v1/nothing-here"), 404)["type"] == "NotFound"


# -- 413 --------------------------------------------------------------------------------------


def test_a_body_over_the_limit_gets_413_and_writes_nothing(
    http: httpx.Client, local: MemoryClient, tenant: str
) -> None:
    """Declared (Content-Length) or streamed (chunked), a body over max_body_bytes is 413."""
    big = {"turns": [turn("x" * 1000) for _ in range(MAX_BODY // 1000 + 5)]}
    assert error(http.post("/v1/users/ivy/turns", json=big), 413)["type"] == "PayloadTooLarge"

    def chunks() -> Iterator[bytes]:
        yield b'{"turns": ['
        for i in range(MAX_BODY // 1000 + 5):
            yield (b"," if i else b"") + b'{"role": "user", "content": "' + b"y" * 1000 + b'"}'
        yield b"]}"

    r = http.post("/v1/users/ivy/turns", content=chunks())
    assert error(r, 413)["type"] == "PayloadTooLarge"
    assert local.pending(f"@{tenant}/ivy") == 0


# -- 422 --------------------------------------------------------------------------------------

BAD_PUSHES: list[tuple[str, dict[str, Any]]] = [
    ("empty content", {"turns": [turn("ok"), turn("   ")]}),
    ("unknown role", {"turns": [{"role": "robot", "content": "x"}]}),
    ("unknown turn field", {"turns": [turn("x", mood="happy")]}),
    ("bad timestamp", {"turns": [turn("x", ts="yesterday-ish")]}),
    ("future timestamp", {"turns": [turn("x", ts="2999-01-01T00:00:00+00:00")]}),
    ("NUL", {"turns": [turn("a\u0000b")]}),
    ("nested metadata", {"turns": [turn("x", metadata={"a": {"b": 1}})]}),
    ("not a list", {"turns": "hello"}),
    ("empty list", {"turns": []}),
    ("bad session", {"turns": [turn("x")], "session_id": 5}),
]


@pytest.mark.parametrize(("case", "body"), BAD_PUSHES, ids=[c for c, _ in BAD_PUSHES])
def test_push_field_errors_get_422_with_the_client_s_field_and_message(
    http: httpx.Client, local: MemoryClient, tenant: str, case: str, body: dict[str, Any]
) -> None:
    """The 422 names the same field and says the same as ``add_turns`` raising InvalidInput."""
    with pytest.raises(InvalidInput) as raised:
        local.add_turns(f"@{tenant}/jay", body["turns"], body.get("session_id"))
    err = error(http.post("/v1/users/jay/turns", json=body), 422)
    assert (err["field"], err["message"]) == (raised.value.field, raised.value.reason), case
    assert err["detail"] == str(raised.value)
    assert local.pending(f"@{tenant}/jay") == 0


BAD_SEARCHES: list[tuple[dict[str, Any], str]] = [
    ({"query": ""}, "query"),
    ({"query": "x", "top_k": 0}, "top_k"),
    ({"query": "x", "top_k": "5"}, "top_k"),
    ({"query": "x", "kinds": ["nope"]}, "kinds[0]"),
    ({"query": "x", "time_range": ["2024-02-01T00:00:00", "2024-01-01T00:00:00"]}, "time_range"),
    ({"query": "x", "time_range": ["not a date", None]}, "time_range[0]"),
    ({"query": "x", "now": "soon"}, "now"),
    ({"query": "x", "include_pending": "yes"}, "include_pending"),
    ({"query": "x", "colour": "blue"}, "colour"),
    ({}, "query"),
]


@pytest.mark.parametrize(("body", "field"), BAD_SEARCHES, ids=[f for _, f in BAD_SEARCHES])
def test_search_field_errors_get_422_naming_the_parameter(
    http: httpx.Client, body: dict[str, Any], field: str
) -> None:
    """Each bad retrieve parameter is refused by name, as the client refuses it."""
    assert error(http.post("/v1/users/kim/search", json=body), 422)["field"] == field


def test_a_bad_user_id_in_the_path_gets_422(http: httpx.Client) -> None:
    """A control character in the user id is refused by name, like the client does."""
    err = error(http.post("/v1/users/a%07b/turns", json={"turns": [turn("x")]}), 422)
    assert err["field"] == "user_id"


def test_a_tenant_user_id_that_overflows_with_its_prefix_gets_422(
    http: httpx.Client, tenant: str
) -> None:
    """The tenant prefix counts against limits.user_id_max_len, and the message says how much."""
    room = 128 - len(f"@{tenant}/")
    assert http.post(f"/v1/users/{'u' * room}/turns", json={"turns": [turn("x")]}).is_success
    err = error(http.post(f"/v1/users/{'u' * (room + 1)}/turns", json={"turns": [turn("x")]}), 422)
    assert err == {**err, "field": "user_id", "message": f"longer than {room} characters"}


def test_flush_parameters_are_checked(http: httpx.Client) -> None:
    """wait must be a bool and timeout 0..120 s."""
    assert error(http.post("/v1/users/lee/flush", json={"wait": 1}), 422)["field"] == "wait"
    assert error(http.post("/v1/users/lee/flush", json={"timeout": 600}), 422)["field"] == "timeout"


# -- 429 --------------------------------------------------------------------------------------


def test_past_its_bucket_a_key_gets_429_with_retry_after(
    server: ApiServer, api_settings: Settings, local: MemoryClient, tenant: str
) -> None:
    """A key with a burst of 3 and 0.5 request/s: the 4th quick request is 429, Retry-After 2."""
    key = create_key(api_settings, tenant, rate=0.5, burst=3)
    with server.client(key) as c:
        codes = [c.post("/v1/users/max/turns", json={"turns": [turn(f"n{i}")]}) for i in range(4)]
    assert [r.status_code for r in codes] == [202, 202, 202, 429]
    assert error(codes[3], 429)["type"] == "RateLimited"
    assert 1 <= int(codes[3].headers["Retry-After"]) <= 2
    assert local.pending(f"@{tenant}/max") == 3


def test_the_bucket_is_shared_by_every_server_process(
    server: ApiServer, api_settings: Settings, tmp_path: Path, tenant: str
) -> None:
    """Two server processes on one Redis draw from one bucket per key."""
    key = create_key(api_settings, tenant, rate=0.1, burst=4)
    extra = {"service__max_body_bytes": MAX_BODY}
    with (
        ApiServer(api_settings, tmp_path / "second.log", extra=extra) as second,
        server.client(key) as a,
        second.client(key) as b,
    ):
        codes = [c.get("/v1/users/nia/pending").status_code for c in (a, b, a, b, a, b)]
    assert codes == [200, 200, 200, 200, 429, 429]


def test_keys_are_stored_only_as_their_sha256(api_settings: Settings, tenant: str) -> None:
    """Nothing in Redis contains the key itself."""
    key = create_key(api_settings, tenant)
    assert api_settings.redis.url is not None
    client = redis.Redis.from_url(api_settings.redis.url)
    try:
        secret = key.rsplit("_", 1)[1].encode()
        prefix = api_settings.redis.key_prefix
        for name in client.scan_iter(match=f"{prefix}:apikey*"):
            kind = client.type(name)
            values = client.hgetall(name).values() if kind == b"hash" else [client.get(name)]
            assert all(secret not in (v or b"") for v in values)
            assert secret not in name
    finally:
        client.close()


def test_keys_cli_creates_lists_and_revokes(
    server: ApiServer, api_settings: Settings, tenant: str
) -> None:
    """`memlane keys create` prints a working key once; `list` shows its id and tenant but
    never the key; after `revoke` the key gets 401."""
    env = child_env(api_settings)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "worker.cli", "keys", *args]
        return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)

    created = cli("create", "--tenant", tenant, "--label", "cli test")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    key_id = key.split("_")[1]
    assert "shown once" in created.stderr and key not in created.stderr
    with server.client(key) as c:
        assert c.get("/v1/users/zoe/pending").status_code == 200
        listed = [json.loads(line) for line in cli("list").stdout.splitlines()]
        mine = [k for k in listed if k["id"] == key_id]
        assert mine and mine[0]["tenant"] == tenant and mine[0]["label"] == "cli test"
        assert key.split("_", 2)[2] not in cli("list").stdout
        assert cli("revoke", key_id).returncode == 0
        assert error(c.get("/v1/users/zoe/pending"), 401)
    assert cli("revoke", key_id).returncode == 1


def test_the_served_openapi_is_the_committed_one(server: ApiServer) -> None:
    """/openapi.json (no key needed) equals docs/openapi.json, and /docs serves the UI page."""
    with server.client(None) as anon:
        served = anon.get("/openapi.json").json()
        page = anon.get("/docs")
    assert served == json.loads(DOC_PATH.read_text(encoding="utf-8"))
    assert page.status_code == 200 and "swagger" in page.text.lower()


def test_the_docs_page_and_every_file_it_references_come_from_the_service(
    server: ApiServer,
) -> None:
    """/docs names only URLs of the service itself (no CDN, no validator badge), and each of
    them (script, style, icon, the OpenAPI document) answers 200 from the server, no key."""
    with server.client(None) as anon:
        page = anon.get("/docs")
        assert page.status_code == 200 and "SwaggerUIBundle(" in page.text
        refs = re.findall(r"""(?:src|href)="([^"]+)"|url: '([^']+)'""", page.text)
        urls = sorted({a or b for a, b in refs})
        assert urls == [
            "/docs/assets/favicon-32x32.png",
            "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/swagger-ui.css",
            "/openapi.json",
        ]
        assert '"validatorUrl": null' in page.text  # else the UI fetches a badge from outside
        assert "//" not in "".join(urls)
        bodies = {url: anon.get(url) for url in urls}
        missing = anon.get("/docs/assets/index.html")
    assert {url: r.status_code for url, r in bodies.items()} == dict.fromkeys(urls, 200)
    assert b"SwaggerUIBundle" in bodies["/docs/assets/swagger-ui-bundle.js"].content
    assert bodies["/docs/assets/swagger-ui.css"].headers["content-type"].startswith("text/css")
    assert bodies["/docs/assets/favicon-32x32.png"].content.startswith(b"\x89PNG")
    assert missing.status_code == 404  # only the files the page uses are served
