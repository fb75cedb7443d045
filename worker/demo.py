"""``memlane demo``: the seed scenario on the embedded default, with timings.

Starts embedded Redis, a worker and beat; pushes 我的爱好是吉他。 among unrelated turns; waits for
consolidation; asks 你知道我的乐器爱好是什么? and prints the recalled memory lines. Exits
non-zero when the memory was not recalled.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.retrieval.context import format_context
from worker.supervisor import Supervisor

USER = "demo-user"
TURNS = [
    {"role": "user", "content": "今天天气真不错，我们去公园散步了。"},
    {"role": "assistant", "content": "听起来很惬意！公园里人多吗？"},
    {"role": "user", "content": "我的爱好是吉他。"},
    {"role": "assistant", "content": "太棒了，弹吉他多久了？"},
    {"role": "user", "content": "晚饭吃了饺子，有点撑。"},
    {"role": "user", "content": "明天要早起开会，先睡了。"},
]
QUESTION = "你知道我的乐器爱好是什么?"
EXPECTED = "吉他"


@contextmanager
def _step(name: str, timings: list[tuple[str, float]]) -> Iterator[None]:
    print(f"-> {name} ...", flush=True)
    t0 = time.perf_counter()
    yield
    timings.append((name, time.perf_counter() - t0))
    print(f"   done in {timings[-1][1] * 1000:.0f} ms", flush=True)


def run_demo(settings: Settings, keep_data: bool = False) -> int:
    """Run the seed scenario end to end; returns the process exit code."""
    data_dir = tempfile.mkdtemp(prefix="memlane-demo-")
    settings = settings.model_copy(update={"data_dir": data_dir})
    mode = "LLM" if settings.llm.configured else "raw"
    print(f"memlane demo: embedded Redis + SQLite + local embedding model, {mode} mode")
    if settings.llm.configured:
        print(f"   observations are extracted by {settings.llm.model} (at most 2 calls per batch)")
    else:
        print("   (no LLM configured: each turn is stored verbatim as a raw memory)")
    timings: list[tuple[str, float]] = []
    sup = Supervisor(settings, concurrency=1, log_dir=Path(data_dir) / "logs")
    exit_code = 3
    try:
        with _step("start embedded Redis, worker and beat", timings):
            sup.start()
        redis_cfg = settings.redis.model_copy(update={"url": sup.redis_url})
        client = MemoryClient(settings.model_copy(update={"redis": redis_cfg}))
        exit_code = _scenario(client, timings)
        return exit_code
    finally:
        with _step("shut everything down", timings):
            sup.stop()
        if exit_code != 0:
            _print_log_tails(Path(data_dir) / "logs")
        if not keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        _print_timings(timings)


def _scenario(client: MemoryClient, timings: list[tuple[str, float]]) -> int:
    with client:
        with _step(f"push {len(TURNS)} turns (add_turns)", timings):
            client.add_turns(USER, TURNS, session_id="demo")
        with _step("wait for consolidation (flush)", timings):
            done = client.flush(USER, wait=True, timeout=90)
        if not done:
            print("FAILED: consolidation did not finish within 90 s", file=sys.stderr)
            return 2
        with _step(f"retrieve: {QUESTION}", timings):
            results = client.retrieve(USER, QUESTION, top_k=3)
        print("\nRecalled memories:")
        for line in format_context(results, "zh", client.settings.tz):
            print(f"   {line}")
        if results and EXPECTED in results[0].memory.content:
            print(f"\nOK: the top memory mentions {EXPECTED}.")
            return 0
        print(f"\nFAILED: {EXPECTED} was not the top memory.", file=sys.stderr)
        return 1


def _print_timings(timings: list[tuple[str, float]]) -> None:
    print("\nTimings:")
    for name, seconds in timings:
        print(f"   {seconds * 1000:8.1f} ms  {name}")


def _print_log_tails(log_dir: Path, lines: int = 30) -> None:
    for log in sorted(log_dir.glob("*.log")):
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        print(f"\n--- last {lines} lines of {log.name} ---", file=sys.stderr)
        print("\n".join(tail), file=sys.stderr)
