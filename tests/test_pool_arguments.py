"""WorkerPool argument validation: every bad argument gets a clear error."""

import math

import pytest

from pygamesvc import WorkerPool


@pytest.mark.parametrize(
    "workers, error, message",
    [
        (0, ValueError, "workers must be a positive int, got 0"),
        (-3, ValueError, "workers must be a positive int, got -3"),
        (True, TypeError, "workers must be a positive int, got bool"),
        ("4", TypeError, "workers must be a positive int, got str"),
        (2.0, TypeError, "workers must be a positive int, got float"),
        (None, TypeError, "workers must be a positive int, got NoneType"),
        (10**30, ValueError, "workers must be at most 4096, got 1000000000000"),
        (-(10**30), ValueError, "workers must be a positive int, got -1000000"),
        (5000, ValueError, "workers must be at most 4096, got 5000"),
    ],
)
def test_bad_workers(workers, error, message):
    with pytest.raises(error, match=message):
        WorkerPool(workers)


@pytest.mark.parametrize(
    "queue_size, error, message",
    [
        (-1, ValueError, "queue_size must be a non-negative int, got -1"),
        (False, TypeError, "queue_size must be a non-negative int, got bool"),
        (1.5, TypeError, "queue_size must be a non-negative int, got float"),
        ("8", TypeError, "queue_size must be a non-negative int, got str"),
        (2**40, ValueError, "queue_size must be at most"),
    ],
)
def test_bad_queue_size(queue_size, error, message):
    with pytest.raises(error, match=message):
        WorkerPool(1, queue_size)


@pytest.mark.parametrize(
    "timeout, error, message",
    [
        (-1, ValueError, "submit_timeout must be a non-negative number"),
        (math.nan, ValueError, "submit_timeout must be a non-negative number"),
        ("1", TypeError, "submit_timeout must be a number of seconds or None"),
        (True, TypeError, "submit_timeout must be a number of seconds or None"),
    ],
)
def test_bad_submit_timeout(timeout, error, message):
    with pytest.raises(error, match=message):
        WorkerPool(1, submit_timeout=timeout)


def test_bad_name_and_on_error():
    with pytest.raises(TypeError, match="name must be a str or None, got int"):
        WorkerPool(1, name=5)
    with pytest.raises(TypeError, match="on_error must be callable or None, got str"):
        WorkerPool(1, on_error="print")


def test_unknown_and_positional_only_arguments():
    with pytest.raises(TypeError):
        WorkerPool()
    with pytest.raises(TypeError):
        WorkerPool(1, 2, "name")
    with pytest.raises(TypeError):
        WorkerPool(1, threads=3)


def test_bad_task_arguments():
    with WorkerPool(1) as pool:
        for method in (pool.execute, pool.try_execute, pool.submit):
            with pytest.raises(TypeError, match="fn must be callable, got int"):
                method(42)
            with pytest.raises(TypeError, match="missing required argument 'fn'"):
                method()
        with pytest.raises(TypeError, match="timeout must be a number"):
            pool.wait("soon")
        with pytest.raises(ValueError, match="timeout must be a non-negative"):
            pool.wait(-1)
        with pytest.raises(TypeError):
            pool.shutdown(True, True)


def test_fn_keyword_goes_to_task():
    with WorkerPool(1) as pool:
        future = pool.submit(dict, fn=1)
        assert future.result(10) == {"fn": 1}
