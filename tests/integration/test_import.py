"""MemoryClient.import_memories: migrating memories from another system."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from memlane.client import MemoryClient
from memlane.errors import InvalidInput
from memlane.models import MemoryKind

NOW = datetime(2024, 10, 26, 21, 26, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_imported_memories_are_searchable_and_idempotent(make_settings: Any) -> None:
    """Imported items get embeddings and deterministic ids; a second import adds nothing."""
    items = [
        {
            "content": "用户养了一只橘猫。",
            "kind": "observation",
            "source_turn_ids": ["D1:3"],
            "recorded_at": "2024-10-01T10:00:00+08:00",
            "subject": "pets",
        },
        {"content": "The user works as a nurse.", "external_id": "crm-42", "importance": 0.9},
    ]
    with MemoryClient(make_settings()) as client:
        ids = client.import_memories("u", items, now=NOW)
        again = client.import_memories("u", items, now=NOW)
        assert ids == again and len(set(ids)) == 2
        assert client.services.store.count("u") == 2
        top = client.retrieve("u", "我的猫", now=NOW)[0]
        assert top.memory.kind is MemoryKind.OBSERVATION
        assert top.memory.source_turn_ids == ["D1:3"]
        assert client.retrieve("u", "what is my job?", now=NOW)[0].memory.content.endswith("nurse.")


def test_one_bad_item_writes_nothing(make_settings: Any) -> None:
    """A bad item is refused naming its field, and none of the others is written."""
    with MemoryClient(make_settings()) as client:
        with pytest.raises(InvalidInput) as err:
            client.import_memories("u", [{"content": "ok"}, {"content": ""}])
        assert err.value.field == "memories[1].content"
        assert client.services.store.count("u") == 0
