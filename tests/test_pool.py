"""WorkerPool: execution, backpressure, the Executor interface and stats."""

import asyncio
import concurrent.futures
import logging
import sys
import threading
import time

import pytest

import pygamesvc
from pygamesvc import QueueFullError, WorkerPool


@pytest.fixture
def pool():
    with WorkerPool(4, name="test") as p:
        yield p


def wait_running(pool, count, timeout=10.0):
    """Wait until `count` tasks are running, so the queue state is known."""
    deadline = time.monotonic() + timeout
    while pool.stats()["running"] < count:
        assert time.monotonic() < deadline, pool.stats()
        time.sleep(0.001)


def blocker():
    """Return (event, task): task blocks its worker until event is set."""
    event = threading.Event()

    def task():
        assert event.wait(10)

    return event, task


def test_execute_runs_with_args_and_kwargs(pool):
    out = []
    lock = threading.Lock()

    def record(a, b=0):
        with lock:
            out.append(a + b)

    for i in range(100):
        pool.execute(record, i, b=1000)
    assert pool.wait(10) is True
    assert sorted(out) == [i + 1000 for i in range(100)]


def test_try_execute_rejects_when_full():
    event, task = blocker()
    with WorkerPool(1, 2) as pool:
        assert pool.try_execute(task) is True
        wait_running(pool, 1)
        assert pool.try_execute(task) is True
        assert pool.try_execute(task) is True
        assert pool.try_execute(task) is False
        assert pool.stats()["rejected"] == 1
        event.set()


def test_execute_blocks_until_room():
    event, task = blocker()
    with WorkerPool(1, 1) as pool:
        pool.execute(task)
        wait_running(pool, 1)
        pool.execute(task)  # fills the queue
        threading.Timer(0.2, event.set).start()
        start = time.monotonic()
        pool.execute(task)  # waits for the worker to take one
        assert time.monotonic() - start >= 0.15
        assert pool.wait(10)


def test_submit_timeout_raises_queue_full():
    event, task = blocker()
    with WorkerPool(1, 1, submit_timeout=0.1, name="tight") as pool:
        pool.execute(task)
        wait_running(pool, 1)
        pool.execute(task)
        start = time.monotonic()
        with pytest.raises(QueueFullError, match=r"submit timeout of 0\.1 s"):
            pool.execute(task)
        assert time.monotonic() - start >= 0.09
        with pytest.raises(QueueFullError):
            pool.submit(task)
        assert pool.stats()["rejected"] == 2
        event.set()


def test_queue_size_zero_hands_off_to_idle_worker():
    event, task = blocker()
    with WorkerPool(1, 0) as pool:
        # The worker accepts a hand-off only once it waits for work.
        deadline = time.monotonic() + 10
        while not pool.try_execute(task):
            assert time.monotonic() < deadline
            time.sleep(0.001)
        wait_running(pool, 1)
        assert pool.try_execute(task) is False
        event.set()
        assert pool.wait(10)


def test_default_queue_size_is_bounded():
    with WorkerPool(3) as pool:
        assert pool.queue_size == 3 * 256


def test_wait_times_out_then_succeeds():
    event, task = blocker()
    with WorkerPool(1) as pool:
        pool.execute(task)
        assert pool.wait(0.05) is False
        assert pool.wait(0) is False
        event.set()
        assert pool.wait(10) is True


def test_submit_returns_future_with_result(pool):
    future = pool.submit(pow, 2, 10)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(10) == 1024


def test_submit_exception_lands_on_future(pool):
    future = pool.submit(int, "not a number")
    with pytest.raises(ValueError, match="not a number"):
        future.result(10)
    assert pool.wait(10)
    assert pool.stats()["failed"] == 1


def test_submit_base_exception_lands_on_future(pool):
    def interrupt():
        raise KeyboardInterrupt("from task")

    future = pool.submit(interrupt)
    assert isinstance(future.exception(10), KeyboardInterrupt)


def test_map_preserves_order(pool):
    assert list(pool.map(lambda x: x * x, range(50))) == [x * x for x in range(50)]
    assert list(pool.map(pow, [2, 3], [3, 2])) == [8, 9]


def test_map_timeout():
    event, task = blocker()
    with WorkerPool(1) as pool:
        results = pool.map(lambda _: task(), range(2), timeout=0.05)
        with pytest.raises(TimeoutError):
            list(results)
        event.set()


def test_map_timeout_covers_waiting_for_room():
    event, task = blocker()
    with WorkerPool(1, 1) as pool:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="map\\(\\) timeout"):
            pool.map(lambda _: task(), range(5), timeout=0.2)
        elapsed = time.monotonic() - start
        assert 0.15 < elapsed < 1.0
        event.set()
        assert pool.wait(10)
        stats = pool.stats()
    # One task ran (it held the worker); the queued one was cancelled.
    assert stats["completed"] == 1
    assert stats["cancelled"] == 1
    assert stats["rejected"] == 1


def test_asyncio_accepts_futures(pool):
    async def main():
        loop = asyncio.get_running_loop()
        a = await loop.run_in_executor(pool, sum, [1, 2, 3])
        b = await asyncio.wrap_future(pool.submit(max, 4, 9))
        return a, b

    assert asyncio.run(main()) == (6, 9)


def test_futures_wait_and_as_completed(pool):
    futures = [pool.submit(time.sleep, 0.01) for _ in range(8)]
    done, not_done = concurrent.futures.wait(futures, timeout=10)
    assert len(done) == 8
    assert not not_done
    futures = [pool.submit(abs, -i) for i in range(8)]
    results = {f.result() for f in concurrent.futures.as_completed(futures, 10)}
    assert results == set(range(8))


def test_shutdown_cancel_futures():
    event, task = blocker()
    pool = WorkerPool(1)
    running = pool.submit(task)
    wait_running(pool, 1)
    queued = [pool.submit(abs, -1) for _ in range(5)]
    ran = []
    pool.execute(ran.append, 1)
    pool.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    event.set()
    pool.shutdown(wait=True)
    assert running.done() and not running.cancelled()
    assert ran == []


def test_shutdown_waits_for_queued_tasks():
    out = []
    pool = WorkerPool(2)
    for i in range(50):
        pool.execute(out.append, i)
    pool.shutdown()
    assert sorted(out) == list(range(50))


def test_close_is_idempotent_and_rejects_submits():
    pool = WorkerPool(2, name="done")
    pool.close()
    pool.close()
    pool.shutdown(wait=False)
    assert pool.closed
    with pytest.raises(RuntimeError, match="'done': it was shut down"):
        pool.execute(print)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(print)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.try_execute(print)
    assert pool.wait() is True


def test_context_manager_closes():
    with WorkerPool(2) as pool:
        pool.execute(time.sleep, 0.01)
    assert pool.closed
    assert pool.stats()["completed"] == 1


def test_execute_error_goes_to_on_error():
    errors = []
    with WorkerPool(2, on_error=errors.append) as pool:
        pool.execute(int, "x")
        pool.execute(sys.exit, 3)
        assert pool.wait(10)
    assert sorted(type(e).__name__ for e in errors) == ["SystemExit", "ValueError"]
    assert pool.stats()["failed"] == 2


def test_execute_error_is_logged_with_traceback(caplog):
    def explode():
        raise LookupError("boom")

    with caplog.at_level(logging.ERROR, logger="pygamesvc"):
        with WorkerPool(1, name="logs") as pool:
            pool.execute(explode)
            assert pool.wait(10)
    records = [r for r in caplog.records if r.name == "pygamesvc"]
    assert len(records) == 1
    assert "WorkerPool 'logs' raised" in records[0].getMessage()
    assert records[0].exc_info[0] is LookupError
    assert "explode" in caplog.text


def test_failing_on_error_is_logged(caplog):
    def handler(exc):
        raise RuntimeError("handler broke")

    with caplog.at_level(logging.ERROR, logger="pygamesvc"):
        with WorkerPool(1, on_error=handler) as pool:
            pool.execute(int, "x")
            assert pool.wait(10)
    messages = [r.getMessage() for r in caplog.records if r.name == "pygamesvc"]
    assert any("on_error handler" in m for m in messages)
    assert pool.stats()["failed"] == 1


def test_stats_counts(pool):
    for _ in range(10):
        pool.execute(abs, 1)
    pool.execute(int, "x")
    assert pool.wait(10)
    stats = pool.stats()
    assert stats["workers"] == 4
    assert stats["queued"] == 0
    assert stats["running"] == 0
    assert stats["completed"] == 10
    assert stats["failed"] == 1
    assert stats["cancelled"] == 0
    assert stats["rejected"] == 0
    assert stats["submitted"] == 11


def test_gil_releasing_tasks_run_in_parallel():
    with WorkerPool(8) as pool:
        start = time.monotonic()
        for _ in range(16):
            pool.execute(time.sleep, 0.05)
        assert pool.wait(10)
        elapsed = time.monotonic() - start
    # Two rounds of 50 ms; serial execution would take 0.8 s.
    assert elapsed < 0.3


def test_running_count_visible():
    event, task = blocker()
    with WorkerPool(2) as pool:
        pool.execute(task)
        pool.execute(task)
        pool.execute(task)
        wait_running(pool, 2)
        stats = pool.stats()
        assert stats["running"] == 2
        assert stats["queued"] == 1
        event.set()


def test_task_submitting_to_own_full_pool_is_rejected():
    outcome = []
    event, task = blocker()

    def flood():
        try:
            while True:
                pool.execute(task)
        except QueueFullError as exc:
            outcome.append(str(exc))
        event.set()

    pool = WorkerPool(1, 4)
    pool.execute(flood)
    assert pool.wait(10)
    pool.close()
    assert len(outcome) == 1
    assert "its own pool" in outcome[0]


def test_wait_inside_own_task_raises(pool):
    future = pool.submit(pool.wait)
    with pytest.raises(RuntimeError, match="its own tasks"):
        future.result(10)
    future = pool.submit(pool.shutdown)
    with pytest.raises(RuntimeError, match="wait for itself"):
        future.result(10)
    # The rejected shutdown left the pool open.
    assert not pool.closed
    assert pool.submit(abs, -2).result(10) == 2


def test_cancelled_tasks_are_counted():
    event, task = blocker()
    pool = WorkerPool(1)
    pool.execute(task)
    wait_running(pool, 1)
    futures = [pool.submit(abs, -1) for _ in range(3)]
    assert futures[0].cancel()
    pool.execute(abs, -1)
    pool.shutdown(wait=False, cancel_futures=True)
    event.set()
    pool.shutdown()
    stats = pool.stats()
    # The future cancelled by hand is popped and skipped; the other two
    # futures and the execute() task are drained by cancel_futures.
    assert stats["completed"] == 1
    assert stats["cancelled"] == 4
    assert stats["submitted"] == 5


def test_repr_and_properties():
    with WorkerPool(2, 8, name="repr", submit_timeout=1.5) as pool:
        assert repr(pool) == "<WorkerPool name='repr' workers=2 queue_size=8 open>"
        assert pool.name == "repr"
        assert pool.workers == 2
        assert pool.queue_size == 8
        assert pool.submit_timeout == 1.5
    assert repr(pool).endswith("shut down>")


def test_default_names_are_unique():
    with WorkerPool(1) as a, WorkerPool(1) as b:
        assert a.name != b.name


def test_is_executor():
    assert issubclass(WorkerPool, concurrent.futures.Executor)
    assert pygamesvc.WorkerPool is WorkerPool


def test_future_callbacks_race_with_completion(pool):
    # Callbacks added from another thread while workers complete futures:
    # each must run exactly once, whichever side wins the race.
    for _ in range(20):
        futures = [pool.submit(abs, -i) for i in range(200)]
        calls = []
        barrier = threading.Barrier(2)

        def add_callbacks():
            barrier.wait()
            for f in futures:
                f.add_done_callback(lambda f: calls.append(f.result()))

        thread = threading.Thread(target=add_callbacks)
        thread.start()
        barrier.wait()
        thread.join()
        assert pool.wait(10)
        assert sorted(calls) == list(range(200))


def test_future_cancel_races_with_start(pool):
    cancelled = ran = 0
    for _ in range(20):
        futures = [pool.submit(abs, -1) for _ in range(200)]
        for f in futures:
            if f.cancel():
                cancelled += 1
        assert pool.wait(10)
        for f in futures:
            assert f.done()
            if not f.cancelled():
                assert f.result() == 1
                ran += 1
    assert cancelled + ran == 20 * 200


def test_future_states_while_running():
    event = threading.Event()
    started = threading.Event()

    def task():
        started.set()
        event.wait(10)
        return "done"

    with WorkerPool(1) as pool:
        future = pool.submit(task)
        assert started.wait(10)
        assert future.running()
        assert not future.done()
        assert not future.cancel()
        with pytest.raises(TimeoutError):
            future.result(0.01)
        event.set()
        assert future.result(10) == "done"
        assert future.done()
        assert not future.running()
        assert "finished returned str" in repr(future)
