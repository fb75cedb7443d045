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


CROWDED = """
import ctypes, json, os, threading, time
from memlane.config_sections import EmbeddingSettings
from memlane.llm.embeddings import build_embedder
from memlane.llm.openmp import loaded_libgomp
emb = build_embedder(EmbeddingSettings(threads=2), max_chars=2000)
texts = [f"what did I tell you about trip number {i}?" for i in range(6)]
alone = [emb.inner.embed_query(t) for t in texts]  # one at a time: the engine's whole team
gomp = ctypes.CDLL(loaded_libgomp())
model, calls = emb.inner._model, []

class Recording:  # the real model, holding each call 50 ms so that the callers overlap
    def __getattr__(self, name):
        return getattr(model, name)
    def query(self, text):
        calls.append((threading.current_thread().name, gomp.omp_get_max_threads()))
        time.sleep(0.05)
        return model.query(text)

emb.inner._model = Recording()
before = len(os.listdir("/proc/self/task"))
start, got, counts = threading.Barrier(6), {}, []
def caller(i):
    start.wait()
    got[i] = emb.inner.embed_query(texts[i])
    counts.append(len(os.listdir("/proc/self/task")))
threads = [threading.Thread(target=caller, args=(i,), name=f"caller-{i}") for i in range(6)]
for t in threads: t.start()
for t in threads: t.join()
diff = max(abs(a - b) for i in range(6) for a, b in zip(got[i], alone[i]))
print(json.dumps({"calls": calls, "diff": diff, "before": before, "most": max(counts)}))
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in /proc")
def test_concurrent_queries_run_side_by_side_on_one_thread_each() -> None:
    """Six overlapping queries: the first takes the engine's team of two, the others run on
    their callers' threads with one OpenMP thread each (no team, so no new OS threads), and
    every vector equals the one embedded alone."""
    got = run_probe(CROWDED)
    calls = [(name, n) for name, n in got["calls"]]
    on_callers = [n for name, n in calls if name.startswith("caller-")]
    on_engine = [n for name, n in calls if name.startswith("memlane-embed")]
    assert len(calls) == 6 and len(on_callers) + len(on_engine) == 6, calls
    assert len(on_callers) >= 4 and set(on_callers) == {1}, calls
    assert set(on_engine) <= {2}, calls
    assert got["most"] <= got["before"] + 6, got  # the six callers, and no OpenMP thread more
    assert got["diff"] < 1e-5, got


SEARCHING = """
import ctypes, json, threading
from memlane.config_sections import EmbeddingSettings
from memlane.llm.embeddings import build_embedder
from memlane.llm.openmp import loaded_libgomp
from memlane.llm.searches import in_progress, searching
emb = build_embedder(EmbeddingSettings(threads=2), max_chars=2000)
emb.inner.embed_query("load the model")
gomp = ctypes.CDLL(loaded_libgomp())
model, calls = emb.inner._model, []

class Recording:  # the real model, recording which thread embeds and with how many threads
    def __getattr__(self, name):
        return getattr(model, name)
    def query(self, text):
        calls.append((threading.current_thread().name, gomp.omp_get_max_threads()))
        return model.query(text)

emb.inner._model = Recording()
threading.current_thread().name = "caller"
with searching():  # this search alone
    alone = in_progress()
    emb.inner.embed_query("what did I tell you about my trip?")
busy, held = threading.Event(), threading.Event()
def other_search():  # another search, in its store and ranking steps (no embedding)
    with searching():
        busy.set()
        held.wait()
other = threading.Thread(target=other_search)
other.start()
busy.wait()
with searching():
    both = in_progress()
    emb.inner.embed_query("what did I tell you about my sister?")
held.set()
other.join()
print(json.dumps({"calls": calls, "alone": alone, "both": both, "after": in_progress()}))
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads libgomp from /proc")
def test_a_query_embedded_while_another_search_runs_goes_side_by_side() -> None:
    """A search alone embeds its query on the engine's team; while another search is in
    progress (even one not embedding), the query runs on its caller's thread with one OpenMP
    thread. The count goes back to zero."""
    got = run_probe(SEARCHING)
    assert got["alone"] == 1 and got["both"] == 2 and got["after"] == 0, got
    (first, n1), (second, n2) = got["calls"]
    assert first.startswith("memlane-embed") and n1 == 2, got
    assert second == "caller" and n2 == 1, got
