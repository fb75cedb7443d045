"""Optional rerank through the common /rerank API, against a local model endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from memlane.client import MemoryClient
from memlane.ids import custom_memory_id
from memlane.models import Memory, MemoryKind

NOW = datetime(2024, 10, 26, 21, 26, tzinfo=ZoneInfo("Asia/Shanghai"))


class _Rerank(BaseHTTPRequestHandler):
    """Scores a document 1.0 when it contains the word the server was told to prefer."""

    prefer = "钢琴"
    calls: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        results = [
            {"index": i, "relevance_score": 1.0 if self.prefer in d else 0.1}
            for i, d in enumerate(body["documents"])
        ]
        data = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rerank_url() -> Iterator[str]:
    """A local /rerank endpoint on a free port."""
    _Rerank.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Rerank)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _client(make_settings: Any, rerank: dict[str, Any]) -> MemoryClient:
    client = MemoryClient(make_settings(rerank=rerank))
    svc = client.services
    for text in ["我的爱好是吉他。", "我小时候学过钢琴。", "今天吃了面条。"]:
        m = Memory(custom_memory_id("u", text), "u", MemoryKind.RAW, text, recorded_at=NOW)
        m.embedding = svc.embedder.embed_passages([text])[0]
        svc.store.upsert([m])
    return client


def test_rerank_is_off_by_default(make_settings: Any, rerank_url: str) -> None:
    """With rerank disabled, the endpoint is never called."""
    with _client(make_settings, {"base_url": rerank_url}) as client:
        results = client.retrieve("u", "我的乐器爱好", now=NOW)
    assert _Rerank.calls == []
    assert results[0].explanation.rerank_score is None


def test_rerank_reorders_and_explains(make_settings: Any, rerank_url: str) -> None:
    """When enabled, the reranker's order wins and its score is in the explanation."""
    cfg = {"enabled": True, "base_url": rerank_url, "model": "test-reranker"}
    with _client(make_settings, cfg) as client:
        results = client.retrieve("u", "我的乐器爱好", now=NOW)
    assert results[0].memory.content == "我小时候学过钢琴。"
    assert results[0].explanation.rerank_score == 1.0
    (call,) = _Rerank.calls
    assert call["path"] == "/v1/rerank"
    assert call["body"]["model"] == "test-reranker" and call["body"]["query"] == "我的乐器爱好"


def test_rerank_per_call_override(make_settings: Any, rerank_url: str) -> None:
    """rerank=True on one call uses a configured endpoint even when not enabled."""
    with _client(make_settings, {"base_url": rerank_url}) as client:
        client.retrieve("u", "我的乐器爱好", now=NOW, rerank=True)
    assert len(_Rerank.calls) == 1
