"""PoolFuture: the concurrent.futures.Future that WorkerPool.submit returns.

A standard Future builds a Condition, an RLock, two lists and several bound
methods up front, about ten garbage-collected objects per task.  PoolFuture
is one object until somebody needs to synchronize: its condition and lists
are created on first use.  While no thread has touched the condition, no
thread can be waiting on it or have added a callback, so the pool's worker
(in C, holding the GIL) completes the future by setting its fields directly;
otherwise it calls the standard set_result/set_exception, which lock and
notify as usual.  Everything else is inherited from Future unchanged, so
asyncio.wrap_future, concurrent.futures.wait and as_completed accept it.
"""

import threading
from concurrent.futures import Future
from concurrent.futures._base import FINISHED, PENDING

__all__ = ["PoolFuture"]


class PoolFuture(Future):
    """A Future whose synchronization objects are created on first use."""

    # Class-level defaults stand in for what Future.__init__ would set.  The
    # worker reads _cond to decide between the direct and the locked path.
    _state = PENDING
    _result = None
    _exception = None
    _cond = None

    def __init__(self):
        pass

    def _lazy(self, name, factory):
        # dict.setdefault is atomic under the GIL, so racing threads all get
        # the same object even if each built a candidate.
        value = self.__dict__.get(name)
        if value is None:
            value = self.__dict__.setdefault(name, factory())
        return value

    @property
    def _condition(self):
        return self._lazy("_cond", threading.Condition)

    @property
    def _waiters(self):
        return self._lazy("_waiter_list", list)

    @property
    def _done_callbacks(self):
        return self._lazy("_callback_list", list)

    def result(self, timeout=None):
        # FINISHED is stored after the result, so no lock is needed to read a
        # finished future; anything else takes the standard, locked path.
        if self._state == FINISHED:
            return self._Future__get_result()
        return super().result(timeout)

    def exception(self, timeout=None):
        if self._state == FINISHED:
            return self._exception
        return super().exception(timeout)
