"""Load generators for api_bench: a minimal keep-alive HTTP/1.1 client on asyncio, and the
same call pattern in-process on threads, so the two sets of figures are measured alike.

The HTTP client is deliberately tiny (write the request, read the headers, read
Content-Length bytes): a general-purpose client library costs about as much CPU per request as
the server does, and on two shared cores that would be measured as server latency.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Run:
    """Latencies (seconds) of the calls that succeeded, and what failed."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0


class Conn:
    """One keep-alive connection."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect."""
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        """Send one request, return (status, body)."""
        assert self.reader is not None and self.writer is not None
        data = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        self.writer.write(head + data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(
            int(h.split(":", 1)[1]) for h in lines[1:] if h.lower().startswith("content-length:")
        )
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


Job = Callable[[int], tuple[str, str, Any]]  # call number -> (method, path, body)


def http_run(host: str, port: int, key: str, clients: int, calls: int, job: Job) -> Run:
    """``calls`` requests from ``clients`` concurrent connections (each waits for its answer)."""
    return asyncio.run(_http_run(host, port, key, clients, calls, job))


async def _http_run(host: str, port: int, key: str, clients: int, calls: int, job: Job) -> Run:
    run = Run()
    conns = [Conn(host, port, key) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in conns))
    # One untimed request per connection: the server accepts a connection when it gets to it,
    # so a first request measures that too. A bot's keep-alive connection is past it.
    await asyncio.gather(*(c.request("GET", "/healthz", None) for c in conns))
    counter = iter(range(calls))

    async def worker(conn: Conn) -> None:
        for i in counter:
            method, path, body = job(i)
            t0 = time.perf_counter()
            try:
                status, data = await conn.request(method, path, body)
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                run.errors.append(f"{type(e).__name__}: {e}")
                return
            if 200 <= status < 300:
                run.latencies.append(time.perf_counter() - t0)
            else:
                run.errors.append(f"{status}: {data[:200]!r}")

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    run.wall_s = time.perf_counter() - start
    await asyncio.gather(*(c.close() for c in conns))
    return run


def thread_run(clients: int, calls: int, call: Callable[[int], object]) -> Run:
    """``calls`` in-process calls from ``clients`` threads."""
    run = Run()
    counter = iter(range(calls))

    def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            try:
                call(i)
            except Exception as e:  # noqa: BLE001 - counted as an error of the run
                run.errors.append(f"{type(e).__name__}: {e}")
                continue
            run.latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(worker) for _ in range(clients)]:
            f.result()
    run.wall_s = time.perf_counter() - start
    return run


Chunk = Callable[[int, int], Run]  # (first call number, calls) -> the run of those calls
Meter = Callable[[], tuple[float, float]]  # CPU seconds so far: (this side, the server)


@dataclass
class Paired:
    """Two ways of making the same calls, measured alternately (:func:`abba`)."""

    first: Run
    second: Run
    first_cpu: tuple[float, float]  # CPU seconds spent during the first's chunks
    second_cpu: tuple[float, float]


def abba(first: Chunk, second: Chunk, calls: int, meter: Meter) -> Paired:
    """``calls`` calls each way, in four chunks: half of ``first``, half of ``second``, the
    other half of ``second``, the other half of ``first``. A machine whose speed drifts during
    the measurement (a shared VM) then weighs on both alike, to first order."""
    half = calls // 2
    runs: list[list[Run]] = [[], []]
    spent = [[0.0, 0.0], [0.0, 0.0]]
    for side, start, count in (
        (0, 0, half),
        (1, 0, half),
        (1, half, calls - half),
        (0, half, calls - half),
    ):
        before = meter()
        runs[side].append((first, second)[side](start, count))
        after = meter()
        spent[side][0] += after[0] - before[0]
        spent[side][1] += after[1] - before[1]
    return Paired(
        merge(runs[0]), merge(runs[1]), (spent[0][0], spent[0][1]), (spent[1][0], spent[1][1])
    )


def merge(runs: list[Run]) -> Run:
    """One run of several: every latency and error, the walls added."""
    out = Run()
    for run in runs:
        out.latencies += run.latencies
        out.errors += run.errors
        out.wall_s += run.wall_s
    return out
