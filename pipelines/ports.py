"""Ports several pipelines share: the chat model and the token counters, as protocols."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from memlane.llm.chat import Message, Usage


class JsonChat(Protocol):
    """The chat model as pipelines use it (``memlane.llm.chat.ChatModel``)."""

    model: str

    def complete_json(
        self, messages: Sequence[Message], schema_name: str
    ) -> tuple[dict[str, Any], Usage]:
        """One completion parsed as a JSON object, and its token usage."""


class UsageSink(Protocol):
    """Where each call's tokens are counted (``memlane.buffer.usage.UsageRecorder``)."""

    def record(self, user_id: str, usage: Usage) -> None:
        """Count one call."""
