"""Cost of the allocation-counting hook, against no hook and tracemalloc.

Run:  python -m pytest benchmarks/bench_allochook.py --benchmark-json=hook.json
      python benchmarks/ratios.py hook.json

One workload, three ways, in one run: each round calls it CALLS times from
the C loop that measure() uses (pygamesvc._core._loop), with no hook, with
the counting hook installed around the loop, and with tracemalloc tracing
(started before the rounds, so its start-up cost is not timed).
"""

import tracemalloc

import pytest

from pygamesvc import _core

CALLS = 1_000
GROUP = "allocation hook: 1,000 calls of a dict-building workload"


def build_players():
    # Mostly small allocations: 20 dicts and their str values, one list.
    return [{"id": i, "name": f"player {i}", "tags": [i]} for i in range(20)]


@pytest.fixture
def tracing():
    tracemalloc.start()
    yield
    tracemalloc.stop()


@pytest.mark.benchmark(group=GROUP)
def test_no_hook(benchmark):
    benchmark(_core._loop, build_players, CALLS)


@pytest.mark.benchmark(group=GROUP)
def test_counting_hook(benchmark):
    _, allocs = benchmark(_core._loop, build_players, CALLS, count_allocs=True)
    assert allocs >= CALLS


@pytest.mark.benchmark(group=GROUP)
def test_tracemalloc(benchmark, tracing):
    assert tracemalloc.is_tracing()
    benchmark(_core._loop, build_players, CALLS)
