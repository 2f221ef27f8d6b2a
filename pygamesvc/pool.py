"""WorkerPool: native worker threads behind a bounded queue."""

import concurrent.futures
import threading
import time

from pygamesvc import _core, _resources

__all__ = ["WorkerPool"]


class WorkerPool(_core.WorkerPool, concurrent.futures.Executor):
    """Native worker threads behind a bounded task queue.

    ``WorkerPool(workers, queue_size=None, *, name=None, on_error=None,
    submit_timeout=None)`` starts ``workers`` threads at once.  The queue
    holds at most ``queue_size`` pending tasks (default: 256 per worker; 0
    hands each task straight to an idle worker).  When it is full,
    ``execute`` and ``submit`` block with the GIL released until there is
    room, or raise :class:`QueueFullError` once ``submit_timeout`` seconds
    have passed; ``try_execute`` returns False instead of blocking.

    A task that submits to its own pool while the queue is full gets
    :class:`QueueFullError` at once instead of blocking, because waiting
    there could leave every worker stuck waiting for itself.

    Exceptions from ``execute`` tasks go to ``on_error(exc)`` or, without a
    handler, to the ``pygamesvc`` logger with their traceback; exceptions
    from ``submit`` tasks are set on their Future.  Both count as failed in
    :meth:`stats`.

    Pools left open at interpreter exit are shut down first (queued tasks
    still run), like ``ThreadPoolExecutor``.  In a child process made by
    ``fork()``, a pool inherited from the parent raises ``RuntimeError``.
    """

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls, *args, **kwargs)
        # Leak checks report pools that are still open after a test.
        _resources.track(self, "pool")
        return self

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """Return an iterator over fn applied to the iterables' items, in order.

        Like ``Executor.map``: every item is submitted before this returns,
        and results come in input order.  ``timeout`` bounds the whole call,
        including the wait for queue room while submitting: when it runs
        out, the futures already submitted are cancelled and TimeoutError is
        raised.  ``chunksize`` is accepted for compatibility and ignored.
        """
        if timeout is None:
            futures = [self.submit(fn, *args) for args in zip(*iterables, strict=False)]
            return _results_in_order(futures, None)
        end = time.monotonic() + timeout
        futures = []
        try:
            for args in zip(*iterables, strict=False):
                remaining = end - time.monotonic()
                futures.append(self._submit_within(remaining, fn, *args))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return _results_in_order(futures, end)


def _results_in_order(futures, end):
    """Yield each future's result in order; cancel the rest on early exit."""
    futures.reverse()
    try:
        while futures:
            if end is None:
                yield futures.pop().result()
            else:
                yield futures.pop().result(end - time.monotonic())
    finally:
        for future in futures:
            future.cancel()


def _shutdown_all_at_exit():
    _core._shutdown_all_pools()


# threading's exit hooks run before non-daemon threads are joined and long
# before finalization, the same moment ThreadPoolExecutor uses.
threading._register_atexit(_shutdown_all_at_exit)
