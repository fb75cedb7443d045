"""The memory endpoints over HTTP on both backends: a real server on SQLite, then on
Elasticsearch. Memories are put in place with ``POST .../memories`` (no workers needed)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from memlane import Settings
from tests.support.api_proc import ApiServer, backend_settings, create_key
from tests.support.services import RedisService

pytestmark = [pytest.mark.redis]


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_service: RedisService,
) -> Iterator[tuple[ApiServer, Settings]]:
    """A server on each backend, with its own key prefix (and index)."""
    tmp = tmp_path_factory.mktemp(f"mem-{request.param}")
    with (
        backend_settings(request, tmp, redis_service.url) as settings,
        ApiServer(settings, tmp / "serve.log") as server,
    ):
        yield server, settings


@pytest.fixture
def tenant_client(
    backend: tuple[ApiServer, Settings],
) -> Iterator[tuple[httpx.Client, httpx.Client, str]]:
    """(a client of a fresh tenant, a client of another fresh tenant, the first's name)."""
    server, settings = backend
    t1, t2 = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    with (
        server.client(create_key(settings, t1)) as a,
        server.client(create_key(settings, t2)) as b,
    ):
        yield a, b, t1


def seed(http: httpx.Client, user: str, contents: list[str]) -> list[str]:
    """Import memories recorded a day apart (the first oldest); their ids."""
    mems = [
        {"content": c, "recorded_at": f"2024-10-{10 + i:02d}T12:00:00+08:00"}
        for i, c in enumerate(contents)
    ]
    r = http.post(f"/v1/users/{quote(user, safe='')}/memories", json={"memories": mems})
    assert r.status_code == 201, r.text
    ids: list[str] = r.json()["ids"]
    return ids


def test_list_pages_newest_first_with_a_cursor(
    tenant_client: tuple[httpx.Client, httpx.Client, str],
) -> None:
    """limit 2 over 3 memories: two pages, newest first, ids as the caller knows them."""
    a, _b, _t = tenant_client
    ids = seed(a, "alice", ["one", "two", "three"])
    first = a.get("/v1/users/alice/memories", params={"limit": 2}).json()
    second = a.get(
        "/v1/users/alice/memories", params={"limit": 2, "cursor": first["cursor"]}
    ).json()
    assert [m["id"] for m in first["memories"] + second["memories"]] == ids[::-1]
    assert second["cursor"] is None
    assert {m["user_id"] for m in first["memories"]} == {"alice"}
    r = a.get("/v1/users/alice/memories", params={"limit": 501})
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"


def test_get_edit_history_and_delete(tenant_client: tuple[httpx.Client, httpx.Client, str]) -> None:
    """An edit makes a new version and supersedes the old (edited); history shows both; a soft
    delete hides it from search and keeps it in history; hard delete removes every version."""
    a, _b, _t = tenant_client
    (old,) = seed(a, "bob", ["Bob lives in Paris"])
    got = a.get(f"/v1/users/bob/memories/{old}").json()
    assert got["content"] == "Bob lives in Paris" and "embedding" not in got
    new = a.patch(f"/v1/users/bob/memories/{old}", json={"content": "Bob lives in Lyon"})
    assert new.status_code == 200, new.text
    new_id = new.json()["id"]
    assert new_id != old and new.json()["content"] == "Bob lives in Lyon"
    history = a.get(f"/v1/users/bob/memories/{new_id}/history").json()["versions"]
    by_id = {v["id"]: v for v in history}
    assert by_id[old]["status"] == "superseded" and by_id[old]["reason"] == "edited"
    assert by_id[old]["superseded_by"] == new_id and old in by_id[new_id]["supersedes"]
    assert a.delete(f"/v1/users/bob/memories/{new_id}").json() == {"deleted": 1}
    assert a.delete(f"/v1/users/bob/memories/{new_id}").json() == {"deleted": 0}
    assert a.post("/v1/users/bob/search", json={"query": "Lyon"}).json()["results"] == []
    assert a.get(f"/v1/users/bob/memories/{new_id}").json()["status"] == "deleted"
    assert a.delete(f"/v1/users/bob/memories/{new_id}", params={"hard": True}).status_code == 200
    assert a.get(f"/v1/users/bob/memories/{new_id}").status_code == 404
    assert a.get(f"/v1/users/bob/memories/{old}").status_code == 404


def test_another_tenant_s_memory_is_404_exactly_like_a_missing_one(
    tenant_client: tuple[httpx.Client, httpx.Client, str],
) -> None:
    """Tenant b naming a's memory id (even under the same user name) gets the same 404 body
    as for an id that does not exist, on every memory route; a's memory is unchanged."""
    a, b, _t = tenant_client
    (mid,) = seed(a, "carol", ["Carol has a cat"])
    for user in ("carol", "anyone"):
        for method, path, body in (
            ("GET", f"/v1/users/{user}/memories/{{}}", None),
            ("PATCH", f"/v1/users/{user}/memories/{{}}", {"content": "hacked"}),
            ("DELETE", f"/v1/users/{user}/memories/{{}}", None),
            ("GET", f"/v1/users/{user}/memories/{{}}/history", None),
        ):
            theirs = b.request(method, path.format(mid), json=body)
            missing = b.request(method, path.format("m-does-not-exist"), json=body)
            assert theirs.status_code == missing.status_code == 404, (method, theirs.text)
            assert theirs.json()["error"]["type"] == "NotFound"
            assert theirs.json()["error"].keys() == missing.json()["error"].keys()
    assert a.get(f"/v1/users/carol/memories/{mid}").json()["content"] == "Carol has a cat"


def test_export_streams_jsonl_and_import_round_trips(
    tenant_client: tuple[httpx.Client, httpx.Client, str],
) -> None:
    """Export: a header line first, then every memory, user ids as the tenant knows them;
    importing it as another user gives the same memories; importing again changes nothing."""
    a, _b, _t = tenant_client
    ids = seed(a, "dan", ["Dan plays chess", "Dan owns a boat"])
    r = a.get("/v1/users/dan/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["user_id"] == "dan"
    assert sorted(m["id"] for m in lines[1:]) == sorted(ids)
    assert {m["user_id"] for m in lines[1:]} == {"dan"}
    imported = a.post("/v1/users/dan2/import", content=r.content)
    assert imported.status_code == 201 and imported.json() == {"imported": 2}
    again = a.post("/v1/users/dan2/import", content=r.content)
    assert again.json() == {"imported": 2}
    copy = a.get("/v1/users/dan2/memories").json()["memories"]
    assert sorted(m["content"] for m in copy) == ["Dan owns a boat", "Dan plays chess"]
    assert len(copy) == 2


def test_a_bad_import_line_is_named_and_nothing_is_written(
    tenant_client: tuple[httpx.Client, httpx.Client, str],
) -> None:
    """A broken memory line gets 422 naming lines[i]; the user has no memories after it."""
    a, _b, _t = tenant_client
    seed(a, "erin", ["Erin likes tea"])
    export = a.get("/v1/users/erin/export").text.splitlines()
    broken = [*export, json.dumps({"type": "memory", "content": ""})]
    r = a.post("/v1/users/erin2/import", content="\n".join(broken).encode())
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"].startswith(f"lines[{len(export)}]")
    assert a.get("/v1/users/erin2/memories").json()["memories"] == []


def test_list_users_shows_a_tenant_only_its_own_users(
    backend: tuple[ApiServer, Settings], tenant_client: tuple[httpx.Client, httpx.Client, str]
) -> None:
    """A tenant lists its users by its own ids, paging with a cursor; the other tenant's and
    the admin's users never appear; an admin sees the inside ids."""
    server, settings = backend
    a, b, t = tenant_client
    for user in ("u1", "u2", "u3"):
        seed(a, user, [f"{user} memory"])
    seed(b, "u1", ["b's u1"])
    first = a.get("/v1/users", params={"limit": 2}).json()
    rest = a.get("/v1/users", params={"limit": 2, "cursor": first["cursor"]}).json()
    users = [u["user_id"] for u in first["users"] + rest["users"]]
    assert users == ["u1", "u2", "u3"] and rest["cursor"] is None
    assert first["users"][0]["memories"] == 1
    with server.client(create_key(settings, None)) as admin:
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 500}
        while True:
            page = admin.get("/v1/users", params=params).json()
            seen += [u["user_id"] for u in page["users"]]
            if page["cursor"] is None:
                break
            params["cursor"] = page["cursor"]
    assert {f"@{t}/u1", f"@{t}/u2", f"@{t}/u3"} <= set(seen)
