"""Workers borrow idle cores to embed, and give them back when another worker gets busy.

Real processes hold real ``flock`` slots in a temporary directory of 2 slots, whatever the
host's core count; the last test runs the local model on the threads it borrowed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memlane.llm.core_slots import OWN_WAIT_S, Borrowing, CoreSlots
from tests.support.probe import run_probe

ROOT = Path(__file__).resolve().parents[2]

# Another worker: holds its own core for a task, optionally one borrowed core for `hold_s`.
OTHER = """
import sys, time
from pathlib import Path
from memlane.llm.core_slots import Borrowing, CoreSlots
b = Borrowing(1, 4, CoreSlots(2, Path(sys.argv[1])))
b.begin_task()
borrowed = CoreSlots(2, Path(sys.argv[1])).grab(int(sys.argv[2]))
print("holding", bool(b._own) + len(borrowed), flush=True)
time.sleep(float(sys.argv[3]))
CoreSlots.release(borrowed)
print("gave back", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def other(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(borrow: int = 0, hold_s: float = 0.0) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [sys.executable, "-c", OTHER, str(tmp_path / "slots"), str(borrow), str(hold_s)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(p)
        assert p.stdout is not None
        assert p.stdout.readline().startswith("holding")
        return p

    yield start
    for p in procs:
        p.kill()
        p.communicate(timeout=10)  # reaps it and closes its pipes


def worker(tmp_path: Path, most: int = 4) -> Borrowing:
    return Borrowing(1, most, CoreSlots(2, tmp_path / "slots"))


def test_a_lone_worker_borrows_every_idle_core(tmp_path: Path) -> None:
    b = worker(tmp_path)
    with b.task(), b.threads() as n:
        assert n == 2  # 2 slots: its own and the idle one (most=4 is capped by the slots)
    with b.task(), worker(tmp_path, most=1).threads() as m:
        assert m == 1  # most=1: borrowing off


def test_a_busy_worker_keeps_its_core(tmp_path: Path, other: object) -> None:
    other(borrow=0)  # type: ignore[operator]
    b = worker(tmp_path)
    with b.task(), b.threads() as n:
        assert n == 1


def test_a_worker_starting_a_task_gets_a_core_back_from_a_borrower(
    tmp_path: Path, other: object
) -> None:
    """The other worker holds both slots (its own and a borrowed one) for 0.2 s."""
    other(borrow=1, hold_s=0.2)  # type: ignore[operator]
    b = worker(tmp_path)
    t0 = time.monotonic()
    with b.task():
        waited = time.monotonic() - t0
        with b.threads() as n:
            assert n == 1  # its own core; the other worker keeps its own
    assert 0.05 < waited < OWN_WAIT_S + 0.3


def test_no_core_free_means_floor_threads_not_a_hang(tmp_path: Path, other: object) -> None:
    other(borrow=1, hold_s=60)  # type: ignore[operator]
    b = worker(tmp_path)
    t0 = time.monotonic()
    with b.task(), b.threads() as n:
        assert n == 1
    assert time.monotonic() - t0 < OWN_WAIT_S + 0.5


def test_with_every_core_owned_a_starting_worker_does_not_wait(
    tmp_path: Path, other: object
) -> None:
    """More busy workers than cores (two others own both slots): no wait, its own threads."""
    other(borrow=0)  # type: ignore[operator]
    other(borrow=0)  # type: ignore[operator]
    b = worker(tmp_path)
    t0 = time.monotonic()
    with b.task(), b.threads() as n:
        assert n == 1
    assert time.monotonic() - t0 < 0.1


def test_a_killed_worker_leaves_no_slot_held(tmp_path: Path, other: object) -> None:
    p = other(borrow=1, hold_s=60)  # type: ignore[operator]
    slots = CoreSlots(2, tmp_path / "slots")
    assert slots.grab(2) == []
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    held = slots.grab(2)
    assert len(held) == 2
    CoreSlots.release(held)


def test_an_unusable_directory_borrows_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    b = Borrowing(1, 4, CoreSlots(2, blocker / "slots"))
    with b.task(), b.threads() as n:
        assert n == 1


PROBE = """
import json, os, sys
from pathlib import Path
from memlane.llm import core_slots
from memlane.llm.embeddings import LocalEmbedder
texts = ["I play the guitar.", "我的爱好是吉他。", "Next week I fly to Lisbon."] * 7
emb = LocalEmbedder(threads=1)
alone = [emb.embed_passages([t])[0] for t in texts]
threads_before = len(os.listdir("/proc/self/task"))
policy = core_slots.Borrowing(1, 2, core_slots.CoreSlots(2, Path(sys.argv[1])))
core_slots._policy = policy
with policy.task():
    together = emb.embed_passages(texts)
print(json.dumps({"before": threads_before, "after": len(os.listdir("/proc/self/task")),
    "diff": max(abs(a - b) for x, y in zip(alone, together) for a, b in zip(x, y))}))
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in /proc")
def test_the_model_runs_on_the_borrowed_cores_and_embeds_the_same(tmp_path: Path) -> None:
    """One core borrowed: the chunks run on two threads side by side; chunked and side by
    side, every vector is the one of the text embedded alone."""
    got = run_probe(PROBE, str(tmp_path / "slots"), OMP_NUM_THREADS="1")
    assert got["after"] - got["before"] == 2  # one engine thread per core held
    assert got["diff"] < 1e-5
