"""benchmarks/http_load.py: the alternating (A B B A) measurement api_bench compares with."""

from __future__ import annotations

from benchmarks.http_load import Chunk, Run, abba, merge


def test_abba_runs_each_way_in_two_halves_first_and_last_and_counts_their_cpu_apart() -> None:
    """The first way runs first and last, the second in the middle; every call number is made
    once each way; each side gets the CPU spent during its own chunks."""
    order: list[tuple[str, int, int]] = []
    clock = {"t": 0.0}

    def chunk(name: str, cost: float) -> Chunk:
        def run(start: int, count: int) -> Run:
            order.append((name, start, count))
            clock["t"] += cost * count
            return Run(latencies=[float(start + i) for i in range(count)], wall_s=count / 10)

        return run

    paired = abba(chunk("a", 1.0), chunk("b", 3.0), 7, lambda: (clock["t"], 2 * clock["t"]))
    assert order == [("a", 0, 3), ("b", 0, 3), ("b", 3, 4), ("a", 3, 4)]
    assert sorted(paired.first.latencies) == sorted(paired.second.latencies) == list(range(7))
    assert paired.first.wall_s == paired.second.wall_s == 0.7
    assert paired.first_cpu == (7.0, 14.0)
    assert paired.second_cpu == (21.0, 42.0)


def test_merge_keeps_every_latency_and_error_and_adds_the_walls() -> None:
    merged = merge([Run([1.0], ["x"], 2.0), Run([2.0, 3.0], [], 1.5)])
    assert (merged.latencies, merged.errors, merged.wall_s) == ([1.0, 2.0, 3.0], ["x"], 3.5)
