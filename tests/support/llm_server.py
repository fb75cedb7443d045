"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: the suite's only fake.

It speaks ``POST /v1/chat/completions`` and ``POST /v1/embeddings`` over real sockets, so the
code under test runs its real ``openai`` client, timeouts and error mapping. Chat answers come
from scripted rules chosen by the request content; embeddings are deterministic hash vectors.
It records every request, counts calls, and injects faults: 429, 500, a timeout (it answers
only after the client gave up), malformed JSON, a wrong schema, and a 401 whose error message
echoes the API key it was sent (as some providers do). It can refuse a ``response_format`` type
the way real servers do (:meth:`LLMServer.refuse_format`: llama.cpp's server answered HTTP 500
to ``json_schema``), and answer every chat call only after a delay (``reply_delay_s``, a slow
local model). For provider limits: a 429 carries ``Retry-After`` when ``retry_after`` is set,
embedding calls can fail (:meth:`LLMServer.fail_next_embeddings`) or be slow
(``embedding_delay_s``), and :meth:`LLMServer.max_in_window` / :meth:`LLMServer.embedding_batches`
count requests per window and inputs per embedding request. It never imports memlane.

    server = LLMServer().start()
    server.add_rule("吉他", {"observations": [...], "links": []})
    server.fail_next(2, "429")
    ... OpenAI(base_url=server.url) ...
    assert server.chat_calls == 3
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_REPLY: dict[str, Any] = {"observations": [], "links": []}
FAULTS = ("400", "401_echo", "429", "500", "timeout", "malformed", "wrong_schema", "empty")
Reply = dict[str, Any] | str | Callable[[dict[str, Any]], "dict[str, Any] | str"]
# What llama.cpp's server said (HTTP 500) to a json_schema it did not take.
LLAMA_CPP_REFUSAL = 'response_format type must be one of "text" or "json_object", but got: {kind}'


@dataclass
class Rule:
    """Answer requests whose text contains ``match`` with ``reply`` (or ``fault``).

    ``match`` is a substring of the last user message (``scope="last_user"``) or of every
    message (``scope="all"``), or a predicate over the request body. ``times`` limits how often
    the rule fires (None: always). A dict reply is sent as JSON text; a callable gets the body.
    """

    match: str | Callable[[dict[str, Any]], bool]
    reply: Reply | None = None
    fault: str | None = None
    times: int | None = None
    scope: str = "last_user"
    hits: int = 0

    def matches(self, body: dict[str, Any]) -> bool:
        """Whether this rule answers the request."""
        if self.times is not None and self.hits >= self.times:
            return False
        if callable(self.match):
            return bool(self.match(body))
        return self.match in request_text(body, self.scope)


@dataclass
class Recorded:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    at: float = field(default_factory=time.time)


def request_text(body: dict[str, Any], scope: str = "all") -> str:
    """The text of a chat request: the last user message, or all messages joined."""
    messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
    if scope == "last_user":
        users = [m for m in messages if m.get("role") == "user"]
        messages = users[-1:]
    return "\n".join(str(m.get("content", "")) for m in messages)


def extraction_reply(*observations: dict[str, Any], links: list[Any] | None = None) -> dict:
    """``{"observations": [...], "links": [...]}`` with defaults filled in for brevity."""
    full = [
        {
            "event_time": None,
            "time_granularity": None,
            "keywords": [],
            "importance": 0.6,
            "source_turns": [1],
            "about": "user",
            "subject": None,
            **obs,
        }
        for obs in observations
    ]
    return {"observations": full, "links": links or []}


def hash_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    rng = random.Random(hashlib.sha256(text.encode("utf-8")).digest())
    vec = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


class LLMServer:
    """The fake OpenAI-compatible endpoint (``url`` ends in ``/v1``)."""

    def __init__(self, embedding_dims: int = 384, timeout_sleep_s: float = 3.0) -> None:
        self.embedding_dims = embedding_dims
        self.timeout_sleep_s = timeout_sleep_s
        self.reply_delay_s = 0.0  # every chat answer waits this long (a slow local model)
        self.embedding_delay_s = 0.0  # every embedding answer waits this long
        self.retry_after: str | None = None  # sent as Retry-After with every 429 when set
        self._embedding_faults: list[str] = []
        self.refused_formats: dict[str, tuple[int, str]] = {}
        self.default_reply: Reply = DEFAULT_REPLY
        self.rules: list[Rule] = []
        self.requests: list[Recorded] = []
        self._faults: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LLMServer:
        """Listen on a free port of 127.0.0.1 in a background thread."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still sleeping in a timeout fault are woken up."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client."""
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    # -- scripting -------------------------------------------------------------------------

    def add_rule(
        self,
        match: str | Callable[[dict[str, Any]], bool],
        reply: Reply | None = None,
        fault: str | None = None,
        times: int | None = None,
        scope: str = "last_user",
    ) -> Rule:
        """Add a rule; earlier rules win."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        rule = Rule(match, reply, fault, times, scope)
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail_next(self, n: int, fault: str) -> None:
        """Answer the next ``n`` chat calls with ``fault``, whatever they ask."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        with self._lock:
            self._faults.extend([fault] * n)

    def fail_next_embeddings(self, n: int, fault: str) -> None:
        """Answer the next ``n`` embedding calls with ``fault`` (``"429"`` or ``"500"``)."""
        if fault not in ("429", "500"):
            raise ValueError(f"unknown embeddings fault {fault!r}; one of ('429', '500')")
        with self._lock:
            self._embedding_faults.extend([fault] * n)

    def refuse_format(self, kind: str, status: int = 500, message: str | None = None) -> None:
        """Answer every chat call whose ``response_format`` type is ``kind`` with ``status``.

        The message defaults to llama.cpp's, which names the format; pass one that does not
        (``"bad request"``) for a server that refuses without saying why.
        """
        text = message if message is not None else LLAMA_CPP_REFUSAL.format(kind=kind)
        with self._lock:
            self.refused_formats[kind] = (status, text)

    def reset(self) -> None:
        """Forget rules, pending faults, refused formats and recorded requests."""
        with self._lock:
            self.refused_formats.clear()
            self.rules.clear()
            self._faults.clear()
            self._embedding_faults.clear()
            self.requests.clear()

    # -- inspection ------------------------------------------------------------------------

    def chat_requests(self) -> list[dict[str, Any]]:
        """The bodies of every chat request so far."""
        with self._lock:
            return [r.body for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def chat_calls(self) -> int:
        """How many chat requests arrived (faulted ones included)."""
        return len(self.chat_requests())

    @property
    def embedding_calls(self) -> int:
        """How many embedding requests arrived."""
        with self._lock:
            return sum(1 for r in self.requests if r.path.endswith("/embeddings"))

    def arrivals(self, suffix: str) -> list[float]:
        """When each request whose path ends in ``suffix`` arrived (``time.time()``), in order."""
        with self._lock:
            return sorted(r.at for r in self.requests if r.path.endswith(suffix))

    def max_in_window(self, suffix: str, window_s: float) -> int:
        """The most ``suffix`` requests that arrived within any ``window_s`` seconds."""
        times, best, first = self.arrivals(suffix), 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= window_s:
                first += 1
            best = max(best, last - first + 1)
        return best

    def embedding_batches(self) -> list[list[str]]:
        """The inputs of every embedding request, in arrival order."""
        with self._lock:
            bodies = [r.body for r in self.requests if r.path.endswith("/embeddings")]
        return [
            [b["input"]] if isinstance(b.get("input"), str) else list(b["input"]) for b in bodies
        ]

    # -- answering (called from the handler threads) ---------------------------------------

    def _embedding_fault(self) -> str | None:
        with self._lock:
            return self._embedding_faults.pop(0) if self._embedding_faults else None

    def _record(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(Recorded(path, body, headers))

    def _choose(self, body: dict[str, Any]) -> tuple[Reply | None, str | None]:
        with self._lock:
            if self._faults:
                return None, self._faults.pop(0)
            for rule in self.rules:
                if rule.matches(body):
                    rule.hits += 1
                    return rule.reply, rule.fault
        return self.default_reply, None

    def _sleep_for_timeout(self) -> None:
        self._stopping.wait(self.timeout_sleep_s)

    def _refusal(self, body: dict[str, Any]) -> tuple[int, str] | None:
        fmt = body.get("response_format")
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        with self._lock:
            return self.refused_formats.get(kind) if isinstance(kind, str) else None


def _content_of(reply: Reply | None, body: dict[str, Any]) -> str:
    value = reply(body) if callable(reply) else reply
    if value is None:
        value = DEFAULT_REPLY
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _fault_content(fault: str) -> str | None:
    if fault == "malformed":
        return 'Sure! Here you go: {"observations": [{"content": "The user likes'
    if fault == "wrong_schema":
        return json.dumps({"memories": [{"text": "The user likes tea."}], "delete": ["*"]})
    if fault == "empty":
        return ""
    return None


def _completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    prompt_chars = len(request_text(body, "all"))
    return {
        "id": f"chatcmpl-{hashlib.sha1(content.encode()).hexdigest()[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        # Rough token counts (4 chars a token): the benchmark counts with a real tokenizer.
        "usage": {
            "prompt_tokens": max(1, prompt_chars // 4),
            "completion_tokens": max(1, len(content) // 4),
            "total_tokens": max(1, prompt_chars // 4) + max(1, len(content) // 4),
        },
    }


def _handler_for(server: LLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "request body is not JSON"}})
                return
            server._record(self.path, body, {k.lower(): v for k, v in self.headers.items()})
            if self.path.endswith("/chat/completions"):
                self._chat(body)
            elif self.path.endswith("/embeddings"):
                self._embeddings(body)
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def _chat(self, body: dict[str, Any]) -> None:
            refused = server._refusal(body)
            if refused is not None:
                status, message = refused
                kind = "server_error" if status >= 500 else "invalid_request_error"
                self._send(status, {"error": {"code": status, "message": message, "type": kind}})
                return
            if server.reply_delay_s > 0:
                server._stopping.wait(server.reply_delay_s)
            reply, fault = server._choose(body)
            if fault == "401_echo":
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                message = f"Incorrect API key provided: {key}. Check your key and retry."
                self._send(401, {"error": {"message": message, "code": "invalid_api_key"}})
            elif fault == "400":
                self._send(400, {"error": {"message": "bad request", "type": "invalid_request"}})
            elif fault == "429":
                self._send_429()
            elif fault == "500":
                self._send(500, {"error": {"message": "upstream exploded", "type": "server"}})
            elif fault == "timeout":
                server._sleep_for_timeout()
                self._send(200, _completion(body, _content_of(reply, body)))
            else:
                faulty = _fault_content(fault) if fault else None
                content = faulty if faulty is not None else _content_of(reply, body)
                self._send(200, _completion(body, content))

        def _send_429(self) -> None:
            extra = {"Retry-After": server.retry_after} if server.retry_after is not None else {}
            payload = {"error": {"message": "rate limited", "type": "rate_limit"}}
            self._send(429, payload, extra)

        def _embeddings(self, body: dict[str, Any]) -> None:
            if server.embedding_delay_s > 0:
                server._stopping.wait(server.embedding_delay_s)
            fault = server._embedding_fault()
            if fault == "429":
                self._send_429()
                return
            if fault == "500":
                self._send(500, {"error": {"message": "upstream exploded", "type": "server"}})
                return
            texts = body.get("input", [])
            texts = [texts] if isinstance(texts, str) else texts
            dims = server.embedding_dims
            data = [
                {"object": "embedding", "index": i, "embedding": hash_vector(str(t), dims)}
                for i, t in enumerate(texts)
            ]
            usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
            self._send(200, {"object": "list", "data": data, "model": "fake", "usage": usage})

        def _send(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout fault): nothing left to answer

    return Handler
