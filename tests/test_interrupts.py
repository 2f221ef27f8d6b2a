"""Ctrl-C (KeyboardInterrupt) during blocked pool calls and single-flight waits.

A timer thread calls _thread.interrupt_main(), which raises
KeyboardInterrupt in the main thread the way SIGINT does.  Each interrupted
call must raise it promptly and leave the pool or cache consistent.
"""

import _thread
import gc
import os
import signal
import sys
import threading
import time

import pytest

from pygamesvc import TTLCache, WorkerPool

PROMPT = 2.0  # seconds an interrupted call may take to raise


def interrupted(call, after=0.05):
    """Run call() in the main thread, interrupt it after `after` seconds,
    and return how long it took to raise KeyboardInterrupt."""
    assert threading.current_thread() is threading.main_thread()
    timer = threading.Timer(after, _thread.interrupt_main)
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        timer.join()
    return time.monotonic() - start


@pytest.fixture
def blocked_pool():
    """A one-worker pool whose worker and one-slot queue are both taken."""
    gate = threading.Event()
    pool = WorkerPool(1, 1)
    pool.execute(gate.wait, 30)
    pool.execute(gate.wait, 30)
    yield pool, gate
    gate.set()
    pool.close()


def test_execute_on_full_queue(blocked_pool):
    pool, gate = blocked_pool
    payload = object()
    before = sys.getrefcount(payload)
    assert interrupted(lambda: pool.execute(id, payload)) < PROMPT
    assert sys.getrefcount(payload) == before  # the task was not kept
    assert pool.stats()["queued"] == 1
    gate.set()
    assert pool.submit(abs, -3).result(10) == 3  # the pool still works


def test_submit_on_full_queue(blocked_pool):
    pool, gate = blocked_pool
    payload = object()
    before = sys.getrefcount(payload)
    assert interrupted(lambda: pool.submit(id, payload)) < PROMPT
    gc.collect()
    assert sys.getrefcount(payload) == before
    gate.set()
    assert pool.wait(10)
    assert pool.stats()["queued"] == 0


def test_submit_with_long_submit_timeout():
    gate = threading.Event()
    with WorkerPool(1, 1, submit_timeout=60) as pool:
        pool.execute(gate.wait, 30)
        pool.execute(gate.wait, 30)
        assert interrupted(lambda: pool.execute(id, 1)) < PROMPT
        gate.set()


def test_wait_with_and_without_timeout(blocked_pool):
    pool, gate = blocked_pool
    assert interrupted(pool.wait) < PROMPT
    assert interrupted(lambda: pool.wait(60)) < PROMPT
    gate.set()
    assert pool.wait(10)


def test_shutdown_and_close(blocked_pool):
    pool, gate = blocked_pool
    assert interrupted(lambda: pool.shutdown(wait=True)) < PROMPT
    assert pool.closed
    with pytest.raises(RuntimeError, match="shut down"):
        pool.execute(id, 1)
    assert interrupted(pool.close) < PROMPT
    gate.set()
    pool.close()  # now it can join the worker
    assert pool.stats()["workers"] == 0


def test_future_result_and_map_on_sigint(blocked_pool):
    # Future.result() waits in concurrent.futures' Python code, which only
    # a real signal wakes (interrupt_main() would wait for the timeout).
    _, gate = blocked_pool
    pool2 = WorkerPool(1)
    main_pid = os.getpid()

    def send_sigint():
        os.kill(main_pid, signal.SIGINT)

    def sigint_during(call):
        timer = threading.Timer(0.05, send_sigint)
        start = time.monotonic()
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                call()
        finally:
            timer.join()
        return time.monotonic() - start

    try:
        future = pool2.submit(gate.wait, 30)
        assert sigint_during(lambda: future.result()) < PROMPT
        assert sigint_during(lambda: list(pool2.map(gate.wait, [30]))) < PROMPT
    finally:
        gate.set()
        pool2.close()


def test_get_or_set_waiter_interrupted_value_still_lands():
    cache = TTLCache(100, 60)
    started, release = threading.Event(), threading.Event()
    calls = []

    class Value:
        pass

    value = Value()
    before = sys.getrefcount(value)

    def factory():
        calls.append(1)
        started.set()
        release.wait(30)  # runs on the leader thread, never interrupted
        return value

    leader = threading.Thread(target=cache.get_or_set, args=("k", factory))
    leader.start()
    assert started.wait(10)
    assert interrupted(lambda: cache.get_or_set("k", factory)) < PROMPT
    assert "k" not in cache  # the leader's factory has not returned yet
    # Another waiter still gets the leader's value once it lands.
    results = []
    other = threading.Thread(
        target=lambda: results.append(cache.get_or_set("k", factory))
    )
    other.start()
    release.set()
    leader.join(10)
    other.join(10)
    assert results == [value]
    assert cache["k"] is value
    assert calls == [1]
    assert cache._flights == {}
    assert cache.get_or_set("k", factory) is value
    assert calls == [1]
    cache.close()
    results.clear()
    assert sys.getrefcount(value) == before


def test_get_or_set_leader_interrupted_caches_nothing():
    cache = TTLCache(100, 60)
    release = threading.Event()
    waiting = threading.Event()
    outcomes = []

    def blocking_factory():
        # Short waits: interrupt_main() takes effect only between them.
        while not release.wait(0.01):
            pass
        return "never stored"

    def waiter():
        waiting.set()
        try:
            outcomes.append(cache.get_or_set("k", lambda: "from waiter"))
        except BaseException as exc:  # recorded for the asserts below
            outcomes.append(exc)

    def start_waiter():
        thread = threading.Thread(target=waiter)
        thread.start()
        return thread

    threads = []
    timer = threading.Timer(0.1, lambda: threads.append(start_waiter()))
    timer.start()
    assert interrupted(lambda: cache.get_or_set("k", blocking_factory), 0.3) < PROMPT
    timer.join()
    release.set()
    for thread in threads:
        thread.join(10)
    assert cache._flights == {}
    # The waiter does not inherit the main thread's KeyboardInterrupt: it
    # runs its own factory instead.
    assert outcomes == ["from waiter"]
    assert cache["k"] == "from waiter"
    cache.close()


def test_interrupt_storm_keeps_pool_and_cache_consistent():
    # Interrupts land at arbitrary points of a loop of pool and cache calls.
    cache = TTLCache(64, 60)
    interrupts = 0
    with WorkerPool(2, 2) as pool:
        for round_number in range(20):
            timer = threading.Timer(
                0.002 + round_number * 0.001, _thread.interrupt_main
            )
            timer.start()
            try:
                for i in range(100000):
                    pool.execute(cache.__setitem__, i % 200, i)
                    cache.get_or_set(i % 100, lambda: i)
                    if i % 10 == 0:
                        pool.wait()
            except KeyboardInterrupt:
                interrupts += 1
            finally:
                timer.join()
        assert pool.wait(10)
    assert interrupts == 20
    assert len(cache) <= 64
    assert cache._flights == {}
    for key in cache:
        assert isinstance(cache[key], int)
    cache.close()
