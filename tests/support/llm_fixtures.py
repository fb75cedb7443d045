"""pytest fixtures for the fake OpenAI-compatible server (``tests.support.llm_server``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.llm_server import LLMServer


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    """A fresh fake LLM server on 127.0.0.1 for one test; stopped afterwards."""
    server = LLMServer(timeout_sleep_s=2.0).start()
    yield server
    server.stop()
