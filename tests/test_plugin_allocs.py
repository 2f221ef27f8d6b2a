"""Exact allocation counts from the allocator hook (pygamesvc._core)."""

import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import pytest

from pygamesvc import _core
from pygamesvc.testing import count_allocations, measure

ITERATIONS = 10_000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def allocs_per_call(fn, iterations=ITERATIONS):
    _core._loop(fn, 100)  # warm up caches and free lists
    _, allocs = _core._loop(fn, iterations, count_allocs=True)
    return allocs / iterations


def nothing():
    pass


def new_list_of_three(a=1, b=2, c=3):
    return [a, b, c]


def concatenate(left="x" * 40, right="y" * 40):
    return left + right


def test_function_that_allocates_nothing():
    assert allocs_per_call(nothing) == 0


def test_new_three_element_list():
    # The list object comes from CPython's list free list; its item array
    # is one PyMem_Malloc call.
    assert allocs_per_call(new_list_of_three) == 1


def test_string_concatenation():
    assert allocs_per_call(concatenate) == 1


def test_counts_repeat_exactly():
    counts = {allocs_per_call(new_list_of_three) for _ in range(5)}
    assert counts == {1}


def test_measure_reports_exact_allocs():
    result = measure(new_list_of_three, min_time=0.01)
    assert result.allocs_per_op == 1
    assert result.allocs == result.iterations


def test_counts_unchanged_under_tracemalloc():
    without = allocs_per_call(new_list_of_three)
    tracemalloc.start()
    try:
        with_tracemalloc = allocs_per_call(new_list_of_three)
        traced_before, _ = tracemalloc.get_traced_memory()
        kept = [bytearray(100_000)]
        traced_after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert with_tracemalloc == without
    # tracemalloc still sees allocations after the hook was removed.
    assert traced_after - traced_before >= 100_000
    assert kept


def test_other_threads_not_counted():
    stop = threading.Event()
    started = threading.Event()

    def allocate_forever():
        started.set()
        while not stop.is_set():
            [bytes(64) for _ in range(100)]

    # switchinterval is short, so the allocating thread runs during the
    # count; its allocations must not show up.
    thread = threading.Thread(target=allocate_forever, name="allocator")
    thread.start()
    started.wait()
    try:
        assert allocs_per_call(nothing, iterations=200_000) == 0
    finally:
        stop.set()
        thread.join()


def test_count_allocations_block():
    with count_allocations() as counted:
        data = bytearray(1000)
    assert counted.count >= 1
    assert len(data) == 1000


def test_nested_counts():
    with count_allocations() as outer:
        with count_allocations() as inner:
            _core._loop(new_list_of_three, 1000)
        _, loop_allocs = _core._loop(new_list_of_three, 1000, count_allocs=True)
    assert inner.count >= 1000
    assert loop_allocs == 1000
    assert outer.count >= inner.count + loop_allocs
    # The outermost stop removed the hooks: a fresh count starts at zero.
    assert allocs_per_call(nothing) == 0


def test_count_on_second_thread_raises():
    errors = []

    def count_elsewhere():
        try:
            _core._alloc_count_start()
        except RuntimeError as exc:
            errors.append(exc)

    with count_allocations():
        thread = threading.Thread(target=count_elsewhere)
        thread.start()
        thread.join()
    assert len(errors) == 1
    assert "already running on another thread" in str(errors[0])


def test_stop_from_other_thread_raises():
    errors = []

    def stop_elsewhere(token):
        try:
            _core._alloc_count_stop(token)
        except RuntimeError as exc:
            errors.append(exc)

    token = _core._alloc_count_start()
    try:
        thread = threading.Thread(target=stop_elsewhere, args=(token,))
        thread.start()
        thread.join()
    finally:
        _core._alloc_count_stop(token)
    assert len(errors) == 1
    assert "not running on this thread" in str(errors[0])


def test_exception_in_loop_restores_allocators():
    def fail():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        _core._loop(fail, 10, count_allocs=True)
    # A new count can start, so the first one was stopped.
    assert allocs_per_call(nothing) == 0


def test_loop_argument_errors():
    with pytest.raises(TypeError, match="fn must be callable, got int"):
        _core._loop(1, 10)
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        _core._loop(nothing, -1)


def test_count_call_returns_result_and_count():
    result, allocs = _core._count_call(new_list_of_three, (4, 5, 6), None)
    assert result == [4, 5, 6]
    assert allocs == 1


def test_tracemalloc_started_during_count():
    # Replacing the allocator mid-count leaves global state behind, so this
    # runs in a child interpreter.
    script = textwrap.dedent(
        """
        import tracemalloc
        from pygamesvc import _core

        def count():
            try:
                return _core._loop(lambda: [1, 2, 3], 1000, count_allocs=True)[1]
            except RuntimeError as exc:
                return "refused"

        token = _core._alloc_count_start()
        tracemalloc.start()
        try:
            _core._alloc_count_stop(token)
            print("no error")
        except RuntimeError as exc:
            print("stop raised")
        print(count())
        tracemalloc.stop()
        print(count())
        tracemalloc.start()
        token = _core._alloc_count_start()
        tracemalloc.stop()
        try:
            _core._alloc_count_stop(token)
        except RuntimeError:
            print("stop raised")
        print(count())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "stop",
        "raised",
        "refused",
        "1000",
        "stop",
        "raised",
        "1000",
    ]
