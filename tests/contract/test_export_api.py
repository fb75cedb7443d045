"""export_user / import_user and list_users, the same on every backend.

The round trip goes into an empty store of the same backend and compares every field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from memlane.client import MemoryClient
from memlane.errors import InvalidInput
from memlane.memories.export_format import FORMAT, VERSION
from memlane.models import (
    Memory,
    MemoryKind,
    MemoryStatus,
    MergeRecord,
    SupersedeReason,
    TimeGranularity,
)
from memlane.store.codec import memory_to_doc
from tests.contract.factories import BASE_TIME, make_memory, stored

pytestmark = pytest.mark.redis


def _rich(user_id: str = "u1") -> list[Memory]:
    """Memories using every field, status, reason and link."""
    t = BASE_TIME
    return [
        make_memory(
            "用户住在北京。",
            user_id=user_id,
            mem_id="o-1",
            kind=MemoryKind.OBSERVATION,
            keywords=["北京"],
            subject="home",
            event_time=t - timedelta(days=30),
            time_granularity=TimeGranularity.MONTH,
            status=MemoryStatus.SUPERSEDED,
            superseded_by="o-2",
            reason=SupersedeReason.CONTRADICTION,
            valid_to=t + timedelta(days=1),
            source_turn_ids=["t-1"],
            session_id="s1",
            batch_id="b-1",
            importance=0.9,
            language="zh",
            metadata={"src": "chat", "n": 3, "ok": True, "f": 0.25, "none": None},
        ),
        make_memory(
            "The user moved to Shanghai.",
            user_id=user_id,
            mem_id="o-2",
            minutes=24 * 60,
            source_turn_ids=["t-2", "t-7"],
            batch_id="b-2",
            merges=[MergeRecord("b-7", ("t-7",), datetime(2024, 11, 3, tzinfo=UTC))],
            valid_from=t + timedelta(days=1),
            created_at=t + timedelta(days=1, seconds=1),
            updated_at=t + timedelta(days=3),
        ),
        make_memory(
            "a deleted raw turn",
            user_id=user_id,
            mem_id="r-1",
            kind=MemoryKind.RAW,
            minutes=5,
            status=MemoryStatus.DELETED,
            reason=SupersedeReason.DELETED,
            valid_to=t + timedelta(days=2),
        ),
        make_memory("profile: lives in Shanghai", user_id=user_id, mem_id="i-1", subject="home"),
    ]


def _docs(client: MemoryClient, user_id: str = "u1") -> dict[str, dict[str, Any]]:
    """Every memory of the user as a codec document, by id (embedding kept)."""
    page = client.list_memories(user_id, status="all", limit=500)
    return {m.id: memory_to_doc(m, with_embedding=True) for m in page.memories}


def _lines(client: MemoryClient, embeddings: bool = False) -> list[str]:
    return list(client.export_user("u1", include_embeddings=embeddings))


@pytest.mark.parametrize("embeddings", [True, False])
def test_round_trip_into_an_empty_store_is_identical_field_by_field(
    make_client: Callable[[str], MemoryClient], embeddings: bool
) -> None:
    """Export, then import into an empty store: every field of every memory is equal (the
    vector too: carried over, or recomputed by the same model when left out)."""
    source, target = make_client("source"), make_client("target")
    stored(source, _rich())
    lines = _lines(source, embeddings)
    assert target.import_user("u1", lines) == 4
    before, after = _docs(source), _docs(target)
    assert sorted(after) == sorted(before)
    for mem_id, doc in before.items():
        got = after[mem_id]
        for name, value in doc.items():
            if name == "embedding":
                assert got[name] == pytest.approx(value, abs=1e-5), (mem_id, name)
            else:
                assert got[name] == value, (mem_id, name)


def test_export_header_then_one_line_per_memory(client: MemoryClient) -> None:
    """The header names format, version, user, time and counts; each line is one JSON object
    ending in a newline; embeddings only when asked for; other users never."""
    stored(client, _rich())
    stored(client, [make_memory("not mine", user_id="u2", mem_id="o-1")])
    before = datetime.now(UTC)
    lines = _lines(client)
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    header, *rows = [json.loads(line) for line in lines]
    assert header["type"] == "header" and header["format"] == FORMAT
    assert header["version"] == VERSION == 1 and header["user_id"] == "u1"
    assert datetime.fromisoformat(header["exported_at"]) >= before - timedelta(seconds=1)
    assert header["counts"] == {"memories": 4, "active": 2, "superseded": 1, "deleted": 1}
    assert header["embeddings"] is False and header["embedding_dims"] is None
    assert [r["id"] for r in rows] == ["i-1", "o-1", "r-1", "o-2"]  # (recorded_at, id)
    assert all(r["type"] == "memory" and "embedding" not in r for r in rows)
    assert rows[1]["superseded_by"] == "o-2" and rows[1]["reason"] == "contradiction"
    assert rows[3]["merges"] == [
        {"batch_id": "b-7", "source_turn_ids": ["t-7"], "merged_at": "2024-11-03T00:00:00+00:00"}
    ]
    with_vectors = [json.loads(line) for line in _lines(client, embeddings=True)]
    assert with_vectors[0]["embeddings"] is True and with_vectors[0]["embedding_dims"] == 384
    assert all(len(r["embedding"]) == 384 for r in with_vectors[1:])


def test_export_checks_parameters_before_the_first_line(client: MemoryClient) -> None:
    """A bad user id or flag is refused by the call itself, not when lines are read."""
    with pytest.raises(InvalidInput) as err:
        client.export_user("")
    assert err.value.field == "user_id"
    with pytest.raises(InvalidInput) as err:
        client.export_user("u1", include_embeddings="yes")  # type: ignore[arg-type]
    assert err.value.field == "include_embeddings"
    lines = client.export_user("nobody")
    assert [json.loads(line)["counts"]["memories"] for line in lines] == [0]


def test_import_is_idempotent_and_can_target_another_user(client: MemoryClient) -> None:
    """Importing the same export twice changes nothing; into another user it is theirs only."""
    stored(client, _rich())
    lines = _lines(client, embeddings=True)
    before = _docs(client)
    assert client.import_user("u1", lines) == 4
    assert client.import_user("u1", iter(lines)) == 4
    assert _docs(client) == before
    assert client.import_user("copy", lines) == 4
    copied = _docs(client, "copy")
    assert sorted(copied) == sorted(before)
    assert all(d["user_id"] == "copy" for d in copied.values())
    assert _docs(client) == before


def _corrupt(lines: list[str], index: int, **changes: Any) -> list[str]:
    obj = json.loads(lines[index])
    for key, value in changes.items():
        if value is _DROP:
            del obj[key]
        else:
            obj[key] = value
    return [*lines[:index], json.dumps(obj) + "\n", *lines[index + 1 :]]


_DROP = object()
CORRUPTIONS: list[tuple[Callable[[list[str]], list[str]], str]] = [
    (lambda ls: [*ls[:2], "{not json\n", *ls[3:]], "lines[2]"),
    (lambda ls: ls[1:], "lines[0].format"),
    (lambda ls: _corrupt(ls, 0, version=2), "lines[0].version"),
    (lambda ls: _corrupt(ls, 0, embedding_dims=12), "lines[0].embedding_dims"),
    (lambda ls: _corrupt(ls, 3, color="red"), "lines[3].color"),
    (lambda ls: _corrupt(ls, 3, content=""), "lines[3].content"),
    (lambda ls: _corrupt(ls, 3, content=7), "lines[3].content"),
    (lambda ls: _corrupt(ls, 4, status="gone"), "lines[4].status"),
    (lambda ls: _corrupt(ls, 4, reason="bored"), "lines[4].reason"),
    (lambda ls: _corrupt(ls, 4, user_id="u2"), "lines[4].user_id"),
    (lambda ls: _corrupt(ls, 4, embedding=[0.1, 0.2]), "lines[4].embedding"),
    (lambda ls: _corrupt(ls, 4, recorded_at="2024-10-26T10:00:00"), "lines[4].recorded_at"),
    (lambda ls: _corrupt(ls, 4, recorded_at=_DROP), "lines[4].recorded_at"),
    (lambda ls: _corrupt(ls, 4, merges=[{"batch_id": 1}]), "lines[4].merges"),
    (lambda ls: _corrupt(ls, 4, importance=3), "lines[4].importance"),
    (lambda ls: _corrupt(ls, 4, metadata={"k": [1]}), "lines[4].metadata.k"),
    (lambda ls: ls[:-1], "lines"),
    (lambda ls: [], "lines"),
]


@pytest.mark.parametrize(("corrupt", "field"), CORRUPTIONS)
def test_import_refuses_a_bad_line_by_name_and_writes_nothing(
    client: MemoryClient, corrupt: Callable[[list[str]], list[str]], field: str
) -> None:
    """Any bad line (even the last) is InvalidInput naming it, and nothing is imported."""
    stored(client, _rich())
    lines = corrupt(_lines(client, embeddings=True))
    with pytest.raises(InvalidInput) as err:
        client.import_user("fresh", lines)
    assert err.value.field == field
    assert client.list_memories("fresh", status="all").memories == []


def test_import_refuses_one_string_instead_of_lines(client: MemoryClient) -> None:
    """A whole file passed as one string is refused naming lines."""
    with pytest.raises(InvalidInput) as err:
        client.import_user("u1", "".join(_lines(client)))
    assert err.value.field == "lines"


# -- list_users -------------------------------------------------------------------------------


def test_list_users_counts_memories_pending_turns_and_activity(client: MemoryClient) -> None:
    """Users from the store and from Redis, in id order, with counts, pending and last push."""
    stored(
        client,
        [
            make_memory("m", user_id="stored", mem_id="a"),
            make_memory("m", user_id="stored", mem_id="b"),
            make_memory("m", user_id="stored", mem_id="c", status=MemoryStatus.DELETED),
            make_memory("m", user_id="both", mem_id="a"),
        ],
    )
    before = datetime.now(UTC)
    client.add_turns("pushed", [{"role": "user", "content": f"turn {i}"} for i in range(2)])
    client.add_turns("both", [{"role": "user", "content": "hello"}])
    page = client.list_users()
    assert page.cursor is None
    assert [(u.user_id, u.memories, u.stored, u.pending) for u in page.users] == [
        ("both", 1, 1, 1),
        ("pushed", 0, 0, 2),
        ("stored", 2, 3, 0),
    ]
    _, pushed, only_stored = page.users
    assert pushed.last_activity is not None
    assert before - timedelta(seconds=1) <= pushed.last_activity <= datetime.now(UTC)
    assert only_stored.last_activity is None
    first = client.list_users(limit=2)
    assert [u.user_id for u in first.users] == ["both", "pushed"] and first.cursor
    rest = client.list_users(cursor=first.cursor, limit=2)
    assert [u.user_id for u in rest.users] == ["stored"] and rest.cursor is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"cursor": "!!"}, "cursor")],
)
def test_list_users_refuses_bad_parameters(
    client: MemoryClient, kwargs: dict[str, Any], field: str
) -> None:
    """limit 1..1000 and a cursor it made, else InvalidInput naming the parameter."""
    with pytest.raises(InvalidInput) as err:
        client.list_users(**kwargs)
    assert err.value.field == field


def test_import_reads_bytes_crlf_and_json_whitespace(client: MemoryClient) -> None:
    """Lines as UTF-8 bytes, with CRLF endings or line breaks as JSON whitespace, import the
    same memories (a one-shot iterator is enough)."""
    stored(client, _rich())
    before = _docs(client)
    lines = _lines(client, embeddings=True)
    odd = [
        line.replace('", "', '",\r\n "', 2).replace("\n", "\r\n").encode("utf-8") for line in lines
    ]
    assert client.import_user("copy", iter(odd)) == 4  # type: ignore[arg-type]
    copied = _docs(client, "copy")
    assert {k: {**d, "user_id": "u1"} for k, d in copied.items()} == before
