"""The local model's OpenMP threads are set before it loads: configurable, passive, env wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from memlane.llm.openmp import SHORT_SPIN
from tests.support.probe import run_probe

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, os
from memlane.config_sections import EmbeddingSettings
from memlane.llm.embeddings import build_embedder
emb = build_embedder(EmbeddingSettings(threads={threads}))
emb.embed_query("what instrument do I play?")
emb.embed_passages(["I play the guitar.", "我的爱好是吉他。"] * 8)
print(json.dumps({{
    "threads": len(os.listdir("/proc/self/task")),
    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
    "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
}}))
"""


def probe(threads: int, **env: str) -> dict[str, object]:
    """Embed in a fresh process; its OS thread count and OpenMP environment afterwards."""
    return run_probe(PROBE.format(threads=threads), **env)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in /proc")
def test_thread_count_is_set_before_the_model_loads_and_spins_briefly() -> None:
    """threads=N gives the model N OpenMP threads (N-1 more OS threads), a short spin."""
    one, three = probe(1), probe(3)
    assert one["OMP_NUM_THREADS"] == "1" and three["OMP_NUM_THREADS"] == "3"
    assert one["GOMP_SPINCOUNT"] == three["GOMP_SPINCOUNT"] == SHORT_SPIN
    assert one["OMP_WAIT_POLICY"] is None
    assert isinstance(one["threads"], int) and isinstance(three["threads"], int)
    assert three["threads"] - one["threads"] == 2


def test_the_users_environment_wins() -> None:
    """OMP_* variables already set are left alone."""
    got = probe(1, OMP_NUM_THREADS="2", OMP_WAIT_POLICY="ACTIVE")
    assert (got["OMP_NUM_THREADS"], got["OMP_WAIT_POLICY"]) == ("2", "ACTIVE")
    assert got["GOMP_SPINCOUNT"] is None  # a wait policy of the user's own is not mixed with ours


MANY_CALLERS = """
import json, os, threading
from memlane.config_sections import EmbeddingSettings
from memlane.llm.embeddings import build_embedder
emb = build_embedder(EmbeddingSettings(threads=2))
emb.embed_query("warm up: the engine thread and its OpenMP team start here")
before = len(os.listdir("/proc/self/task"))
hold, done = threading.Event(), threading.Barrier(6)
def caller(i):
    emb.embed_query(f"question number {i} from a thread of its own")
    emb.embed_passages([f"passage {i}", f"段落 {i}"])
    done.wait()
    hold.wait()
threads = [threading.Thread(target=caller, args=(i,)) for i in range(5)]
for t in threads: t.start()
done.wait()
during = len(os.listdir("/proc/self/task"))
hold.set()
for t in threads: t.join()
print(json.dumps({"before": before, "during": during}))
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in /proc")
def test_every_caller_thread_shares_one_openmp_team() -> None:
    """Five live caller threads add five OS threads, not five more OpenMP teams: the engine
    runs on one thread, so the process never holds more OpenMP threads than it was given (with
    more, libgomp stops spinning between regions and a query took 25 ms instead of 10)."""
    got = run_probe(MANY_CALLERS)
    assert got["during"] - got["before"] == 5
