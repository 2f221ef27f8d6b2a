"""WorkerPool lifetime: references, threads, exit, fork and Ctrl-C."""

import _thread
import gc
import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest

import pygamesvc
from pygamesvc import WorkerPool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pygamesvc.__file__)))


def native_threads():
    return len(os.listdir("/proc/self/task"))


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def run_python(code, timeout=30, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )


def test_references_return_to_baseline():
    class Payload:
        pass

    fn = Payload.__init__
    arg, kwarg = Payload(), Payload()
    before = (sys.getrefcount(fn), sys.getrefcount(arg), sys.getrefcount(kwarg))
    with WorkerPool(2) as pool:
        for _ in range(1000):
            pool.execute(lambda a, k=None: None, arg, k=kwarg)
            pool.submit(lambda a, k=None: None, arg, k=kwarg).result(10)
            pool.try_execute(fn, arg)
        assert pool.wait(10)
    gc.collect()
    after = (sys.getrefcount(fn), sys.getrefcount(arg), sys.getrefcount(kwarg))
    assert after == before


def test_failed_tasks_release_references():
    arg = object()
    before = sys.getrefcount(arg)
    with WorkerPool(2, on_error=lambda exc: None) as pool:
        for _ in range(500):
            pool.execute(lambda a: 1 / 0, arg)
            pool.submit(lambda a: 1 / 0, arg).exception(10)
        assert pool.wait(10)
    gc.collect()
    assert sys.getrefcount(arg) == before


def test_cancelled_tasks_release_references():
    arg = object()
    before = sys.getrefcount(arg)
    event = threading.Event()
    pool = WorkerPool(1)
    pool.execute(event.wait, 10)
    for _ in range(100):
        pool.submit(id, arg)
        pool.execute(id, arg)
    pool.shutdown(wait=False, cancel_futures=True)
    event.set()
    pool.shutdown()
    gc.collect()
    assert sys.getrefcount(arg) == before


def test_no_native_threads_remain_after_close():
    before = native_threads()
    pool = WorkerPool(6)
    assert native_threads() == before + 6
    pool.execute(time.sleep, 0.01)
    pool.close()
    assert native_threads() == before


def test_dropped_pool_finishes_queue_and_threads_end():
    before = native_threads()
    out = []
    pool = WorkerPool(2)
    for i in range(200):
        pool.execute(out.append, i)
    del pool
    assert wait_for(lambda: len(out) == 200)
    assert wait_for(lambda: native_threads() == before)


def test_pool_dropped_before_workers_start_keeps_on_error():
    # The workers of a pool dropped right after creation have not taken the
    # GIL yet; they must still find on_error and the logger alive.
    result = run_python(
        """
        import time
        from pygamesvc import WorkerPool

        errors = []
        for _ in range(50):
            pool = WorkerPool(1, on_error=errors.append)
            pool.execute(lambda: 1 / 0)
            del pool
            quiet = WorkerPool(1)
            quiet.execute(lambda: 1 / 0)
            del quiet
        deadline = time.monotonic() + 10
        while len(errors) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        print("handled", len(errors))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "handled 50" in result.stdout
    assert result.stderr.count("ZeroDivisionError") >= 50


def test_pool_in_cycle_through_on_error_is_collected():
    class Service:
        def __init__(self):
            self.pool = WorkerPool(2, on_error=self.handle)

        def handle(self, exc):
            pass

    before = native_threads()
    service = Service()
    ref = weakref.ref(service.pool)
    service.pool.execute(abs, -1)
    del service
    gc.collect()
    assert ref() is None
    assert wait_for(lambda: native_threads() == before)


def test_shutdown_without_wait_then_threads_end():
    before = native_threads()
    pool = WorkerPool(3)
    pool.execute(time.sleep, 0.05)
    pool.shutdown(wait=False)
    assert wait_for(lambda: native_threads() == before)
    pool.close()


def test_submit_storm_from_many_threads():
    threads_n, per_thread = 16, 2000
    barrier = threading.Barrier(threads_n)
    counter = []
    lock = threading.Lock()

    def add():
        with lock:
            counter.append(1)

    with WorkerPool(4, 64) as pool:

        def submitter():
            barrier.wait()
            for i in range(per_thread):
                if i % 3 == 0:
                    pool.submit(add)
                elif i % 3 == 1:
                    pool.execute(add)
                else:
                    while not pool.try_execute(add):
                        time.sleep(0)

        threads = [threading.Thread(target=submitter) for _ in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert pool.wait(30)
        stats = pool.stats()
    assert len(counter) == threads_n * per_thread
    assert stats["completed"] == threads_n * per_thread
    assert stats["queued"] == 0


def test_ctrl_c_interrupts_blocked_calls():
    event = threading.Event()
    with WorkerPool(1, 1) as pool:
        pool.execute(event.wait, 10)
        assert wait_for(lambda: pool.stats()["running"] == 1, timeout=10)
        pool.execute(event.wait, 10)
        for blocked in (
            lambda: pool.execute(event.wait, 10),
            lambda: pool.submit(event.wait, 10),
            lambda: pool.wait(),
        ):
            timer = threading.Timer(0.1, _thread.interrupt_main)
            timer.start()
            start = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                blocked()
            assert time.monotonic() - start < 2
            timer.join()
        event.set()


def test_module_state_is_per_module_object():
    spec = importlib.util.find_spec("pygamesvc._core")
    modules = []
    for _ in range(2):
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    first, second = modules
    assert first.WorkerPool is not second.WorkerPool
    assert first.QueueFullError is not second.QueueFullError
    for module in modules:
        pool = module.WorkerPool(1)
        assert pool.submit(abs, -5).result(10) == 5
        pool.close()


EXIT_SCRIPT = """
import os, signal, sys, threading, time
from pygamesvc import WorkerPool

marker = sys.argv[1]
mode = sys.argv[2]
pool = WorkerPool(2, 4)
event = threading.Event()

def record(i):
    time.sleep(0.01)
    with open(marker, "a") as f:
        f.write(f"{i}\\n")

for i in range(6):
    pool.execute(record, i)
if mode == "full":
    # Fill the queue behind two sleeping workers, and block a submitter.
    slow = WorkerPool(1, 1)
    slow.execute(time.sleep, 0.2)
    slow.execute(time.sleep, 0.2)
    threading.Thread(target=slow.execute, args=(time.sleep, 0.2), daemon=True).start()
if mode == "exit":
    sys.exit(3)
if mode == "raise":
    raise ValueError("uncaught")
if mode == "sigterm":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(4))
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
if mode == "dropped":
    del pool
"""


@pytest.mark.parametrize(
    "mode, status",
    [
        ("end", 0),
        ("full", 0),
        ("exit", 3),
        ("raise", 1),
        ("sigterm", 4),
        ("dropped", 0),
    ],
)
def test_open_pools_finish_at_exit(tmp_path, mode, status):
    marker = tmp_path / "marker"
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(marker), mode],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    assert result.returncode == status, result.stderr
    assert time.monotonic() - start < 10
    assert "Fatal Python error" not in result.stderr
    assert sorted(marker.read_text().split()) == [str(i) for i in range(6)]


@pytest.mark.forks
def test_fork_child_gets_clear_error_and_new_pools():
    result = run_python(
        """
        import os, time
        from pygamesvc import WorkerPool

        pool = WorkerPool(2)
        for _ in range(50):
            pool.execute(time.sleep, 0.001)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                pool.execute(print)
                code = 10
            except RuntimeError as exc:
                if "before fork()" not in str(exc):
                    code = 11
            try:
                pool.wait()
                code = 12
            except RuntimeError:
                pass
            if not pool.closed or "inherited by fork" not in repr(pool):
                code = 14
            pool.close()
            fresh = WorkerPool(2)
            if fresh.submit(sum, [1, 2]).result(10) != 3:
                code = 13
            fresh.close()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent", pool.submit(abs, -7).result(10))
        pool.close()
        """
    )
    assert result.returncode == 0, result.stderr
    assert "child 0" in result.stdout
    assert "parent 7" in result.stdout


def test_pool_creation_refused_after_shutdown_started():
    result = run_python(
        """
        import atexit
        from pygamesvc import WorkerPool

        def late():
            try:
                WorkerPool(1)
            except RuntimeError as exc:
                print("refused:", exc)

        atexit.register(late)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "refused: cannot create a WorkerPool after interpreter shutdown" in (
        result.stdout
    )
