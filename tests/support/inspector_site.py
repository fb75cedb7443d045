"""What the browser tests put in place: a server with two tenants' keys, and seeded text."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memlane import MemoryClient, Settings, load_settings
from tests.support.api_proc import ApiServer

GUITAR = "我的爱好是弹吉他，周末常和朋友一起练琴。"
RIVAL_SECRET = "rival-secret: the launch code is 0000"


@dataclass
class Site:
    """A running server, its settings and keys, and what was seeded."""

    server: ApiServer
    settings: Settings
    acme_key: str
    rival_key: str

    def seed(self, user: str, memories: list[dict[str, Any]], tenant: str = "acme") -> list[str]:
        """Import memories for ``tenant``'s ``user``; returns their ids."""
        with MemoryClient(self.settings) as client:
            return client.import_memories(f"@{tenant}/{user}", memories)

    def edit(self, user: str, memory_id: str, content: str, tenant: str = "acme") -> str:
        """Edit a memory (a new version supersedes it); returns the new version's id."""
        with MemoryClient(self.settings) as client:
            return client.update_memory(f"@{tenant}/{user}", memory_id, content=content).id

    def push(self, user: str, contents: list[str], tenant: str = "acme") -> None:
        """Buffer user turns (no worker runs here, so they stay pending)."""
        with MemoryClient(self.settings) as client:
            client.add_turns(
                f"@{tenant}/{user}", [{"role": "user", "content": c} for c in contents]
            )


def es_settings(tmp: Path, redis_url: str, es_url: str, index: str, **store: Any) -> Settings:
    """Settings on the given Redis and an Elasticsearch index of the test's own."""
    return load_settings(
        environ={},
        data_dir=str(tmp / "data"),
        timezone="Asia/Shanghai",
        redis={"url": redis_url, "key_prefix": f"t{uuid.uuid4().hex[:12]}"},
        store={
            "backend": "elasticsearch",
            "es_url": es_url,
            "es_index": index,
            "es_refresh_interval": "50ms",
            **store,
        },
    )
