"""WorkerPool vs ThreadPoolExecutor: 100,000 no-op tasks, same worker count.

Run:  python -m pytest benchmarks/bench_pool.py --benchmark-json=pool.json
      python benchmarks/ratios.py pool.json
"""

import concurrent.futures

import pytest

from pygamesvc import WorkerPool

TASKS = 100_000
WORKERS = 4


def noop():
    pass


@pytest.fixture
def pool():
    with WorkerPool(WORKERS) as p:
        yield p


@pytest.fixture
def tpe():
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as executor:
        yield executor


def run_execute_wait(pool):
    execute = pool.execute
    for _ in range(TASKS):
        execute(noop)
    assert pool.wait()


def run_submit_result(executor):
    submit = executor.submit
    futures = [submit(noop) for _ in range(TASKS)]
    for future in futures:
        future.result()


def run_tpe_submit_wait(executor):
    submit = executor.submit
    futures = [submit(noop) for _ in range(TASKS)]
    done, _ = concurrent.futures.wait(futures)
    assert len(done) == TASKS


@pytest.mark.benchmark(group="fire-and-forget: 100k tasks, then wait")
def test_pygamesvc_execute_wait(benchmark, pool):
    benchmark.pedantic(run_execute_wait, args=(pool,), rounds=5, warmup_rounds=1)
    assert pool.stats()["completed"] == 6 * TASKS


@pytest.mark.benchmark(group="fire-and-forget: 100k tasks, then wait")
def test_threadpoolexecutor_submit_wait(benchmark, tpe):
    benchmark.pedantic(run_tpe_submit_wait, args=(tpe,), rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group="futures: 100k submit, then result")
def test_pygamesvc_submit_result(benchmark, pool):
    benchmark.pedantic(run_submit_result, args=(pool,), rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group="futures: 100k submit, then result")
def test_threadpoolexecutor_submit_result(benchmark, tpe):
    benchmark.pedantic(run_submit_result, args=(tpe,), rounds=5, warmup_rounds=1)
