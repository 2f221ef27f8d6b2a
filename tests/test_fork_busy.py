"""fork() while a pool is busy, a cache is sweeping and the sampler is running.

Each scenario runs in a fresh interpreter, so the forks happen in a process
whose only threads are the ones the scenario starts, never pytest's.
"""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FORK_WHILE_BUSY = r"""
import os, signal, sys, threading, time

from pygamesvc import TTLCache, WorkerPool
from pygamesvc import _core
from pygamesvc.metrics import start_metrics_collector

FORKS = int(sys.argv[1])

handle = start_metrics_collector(interval=0.001)
cache = TTLCache(None, 0.005, sweep_interval=0.001, name="parent-cache")
pool = WorkerPool(3, 16, name="parent-pool")
stop = threading.Event()


def task(i):
    cache[i % 1000] = i
    cache.get((i * 7) % 1000)
    if i % 50 == 0:
        time.sleep(0.001)


def submitter():
    # Keeps the queue full, so execute often blocks with the GIL released.
    i = 0
    while not stop.is_set():
        i += 1
        pool.execute(task, i)


def writer():
    i = 0
    while not stop.is_set():
        i += 1
        cache[("w", i % 2000)] = i
        cache.pop(("w", (i * 3) % 2000), None)


threads = [threading.Thread(target=submitter), threading.Thread(target=writer)]
for thread in threads:
    thread.start()


def child(number):
    # Runs in the forked child: only this thread exists here.
    signal.alarm(20)  # a hang ends the child with SIGALRM instead
    fresh_pool = WorkerPool(2, 4, name="child-pool")
    fresh_cache = TTLCache(100, 0.01, sweep_interval=0.002, name="child-cache")
    fresh_handle = start_metrics_collector(interval=0.001)
    assert fresh_handle.wait_for_ticks(3, timeout=10), "child sampler"
    futures = [fresh_pool.submit(pow, i, 2) for i in range(50)]
    assert [f.result(10) for f in futures] == [i * i for i in range(50)]
    for i in range(50):
        fresh_pool.execute(fresh_cache.__setitem__, i, i)
    assert fresh_pool.wait(10), "child pool wait"
    assert len(fresh_cache) > 0
    deadline = time.monotonic() + 10
    while len(fresh_cache) and time.monotonic() < deadline:
        time.sleep(0.002)
    assert len(fresh_cache) == 0, "child sweeper removed nothing"
    # The inherited pool refuses work with a clear error, never hangs.
    try:
        pool.execute(print)
    except RuntimeError as exc:
        assert "before fork()" in str(exc), exc
    else:
        raise AssertionError("inherited pool accepted a task")
    # The inherited cache is still a working mapping.
    cache["child"] = number
    assert cache["child"] == number
    fresh_pool.close()
    fresh_cache.close()


for number in range(FORKS):
    time.sleep(0.005)
    pid = os.fork()
    if pid == 0:
        try:
            child(number)
            code = 0
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        if number % 2 == 0:
            os._exit(code)
        # Odd children exit through the normal interpreter shutdown, which
        # also shuts down the inherited pool and sweepers.
        stop.set()
        sys.exit(code)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print(f"child {number} hung", flush=True)
            status = -1
            break
        time.sleep(0.005)
    print(f"child {number} status {os.waitstatus_to_exitcode(status)}", flush=True)

# The parent's pool, cache and sampler keep working.
stop.set()
for thread in threads:
    thread.join(10)
assert all(not thread.is_alive() for thread in threads)
assert pool.submit(sum, [1, 2, 3]).result(10) == 6
assert pool.wait(10)
cache["after"] = 1
# Every entry has a 5 ms TTL, so the sweeper alone must empty the cache.
deadline = time.monotonic() + 10
while len(cache) and time.monotonic() < deadline:
    time.sleep(0.002)
assert len(cache) == 0, len(cache)
assert handle.running
assert handle.wait_for_ticks(3, timeout=10)
print("parent ok", flush=True)
"""


@pytest.mark.forks
def test_fork_while_pool_cache_sampler_busy():
    forks = 16
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FORK_WHILE_BUSY), str(forks)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=ROOT, PYTHONFAULTHANDLER="1"),
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Fatal Python error" not in result.stderr
    for number in range(forks):
        assert f"child {number} status 0" in lines, result.stdout + result.stderr
    assert "parent ok" in lines, result.stdout + result.stderr


SWEEPER_WAITING_AT_FORK = r"""
import os, signal, time
from pygamesvc import TTLCache

cache = TTLCache(100, 60, sweep_interval=0.002)
cache.set("short", 1, 0.001)
deadline = time.monotonic() + 10
while len(cache) and time.monotonic() < deadline:
    time.sleep(0.001)
assert len(cache) == 0  # the sweeper ran, and now waits for its next tick
for number in range(5):
    pid = os.fork()
    if pid == 0:
        signal.alarm(10)  # a hang ends the child with SIGALRM
        cache["b"] = 2  # the first store replaces the parent's sweeper
        assert cache._sweeper_running
        cache.close()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status), flush=True)
    time.sleep(0.003)
cache.close()
"""


@pytest.mark.forks
def test_fork_child_replaces_waiting_sweeper():
    # Regression: freeing the parent's sweeper in the child destroyed a
    # condition variable that the parent's (vanished) thread waited on,
    # and glibc's pthread_cond_destroy blocked forever.
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SWEEPER_WAITING_AT_FORK)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=ROOT, PYTHONFAULTHANDLER="1"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["child 0"] * 5, result.stderr
