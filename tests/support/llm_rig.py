"""In-process LLM consolidation for tests: real Redis, a real store, the fake LLM server.

:class:`LLMRig` pushes turns with a :class:`MemoryClient`, runs
:func:`pipelines.consolidation.run.consolidate_user` under a real lease (no Celery), and reads the
store back. Its ports come from :class:`pipelines.wiring.Wiring` (the production wiring) unless
a test passes extractor options of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.models import Memory, MemoryFilter
from pipelines.consolidation.run import ConsolidationPorts, ConsolidationResult, consolidate_user
from pipelines.extraction.run import ExtractorOptions, LLMExtractor
from pipelines.wiring import Wiring
from tests.support.llm_server import LLMServer


def llm_overrides(server: LLMServer, **llm: Any) -> dict[str, Any]:
    """Settings overrides that point the chat model at the fake server."""
    return {"llm": {"base_url": server.url, "model": "fake-llm", "timeout_s": 1.0, **llm}}


class LLMRig:
    """A client, its services, and consolidation ports with the LLM extractor."""

    def __init__(self, settings: Settings, server: LLMServer) -> None:
        self.settings = settings
        self.server = server
        self.client = MemoryClient(settings)
        self.svc = self.client.services
        self.wiring = Wiring(settings, self.svc)
        self.options: ExtractorOptions | None = None

    def extractor(self) -> LLMExtractor:
        """A fresh extractor, as the worker builds it (with the test's options, if any)."""
        built = self.wiring.build_extractor()
        if self.options is not None:
            built.options = self.options
        return built

    def ports(self) -> ConsolidationPorts:
        """Consolidation ports with the LLM extractor."""
        ports = self.wiring.consolidation_ports()
        ports.extractor = self.extractor()
        return ports

    def push(self, user: str, turns: Sequence[tuple[str, str, datetime]]) -> list[str]:
        """Push ``(role, content, ts)`` turns; returns their ids."""
        return self.client.add_turns(
            user, [{"role": r, "content": c, "ts": ts.isoformat()} for r, c, ts in turns]
        )

    def consolidate(self, user: str) -> ConsolidationResult:
        """One consolidation run for ``user`` under a fresh lease."""
        token = self.svc.leases.acquire(user)
        assert token is not None
        try:
            cfg = self.settings.batching
            return consolidate_user(
                self.ports(), user, token, cfg.batch_max_turns, cfg.max_attempts
            )
        finally:
            self.svc.leases.release(user, token)

    def memories(self, user: str, include_superseded: bool = True) -> list[Memory]:
        """Every memory of the user (superseded ones too, by default)."""
        flt = MemoryFilter(include_superseded=include_superseded)
        return self.svc.store.list(user, flt, limit=1000).memories

    def one(self, user: str, predicate: Callable[[Memory], bool]) -> Memory:
        """The single memory of the user that matches."""
        found = [m for m in self.memories(user) if predicate(m)]
        assert len(found) == 1, [m.content for m in self.memories(user)]
        return found[0]

    def extraction_calls(self) -> int:
        """How many extraction requests the server saw."""
        return sum(1 for b in self.server.chat_requests() if _system(b).startswith(EXTRACT_MARKS))

    def arbitration_calls(self) -> int:
        """How many arbitration requests the server saw."""
        return self.server.chat_calls - self.extraction_calls()

    def close(self) -> None:
        """Close connections."""
        self.wiring.close()
        self.client.close()


EXTRACT_MARKS = ("你是一个聊天机器人的长期记忆整理员", "You maintain the long-term memory")


def _system(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    return str(messages[0].get("content", ""))
