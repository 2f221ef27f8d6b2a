"""TTLCache: a thread-safe, lock-striped mapping whose entries expire."""

import collections.abc
import threading
import weakref

from pygamesvc import _core, _resources

__all__ = ["TTLCache"]

_MISSING = object()
# Maximum length of one wait of a get_or_set waiter, in seconds.
_WAIT_SLICE = 0.05


class _Flight:
    """One running factory call of get_or_set, shared by its waiters."""

    __slots__ = ("done", "error", "owner", "value")

    def __init__(self):
        self.owner = threading.get_ident()
        self.done = threading.Event()
        self.value = None
        self.error = None


class _ItemsView(collections.abc.ItemsView):
    def __iter__(self):
        for key, value, _ in self._mapping._snapshot():
            yield key, value


class _ValuesView(collections.abc.ValuesView):
    def __iter__(self):
        for _, value, _ in self._mapping._snapshot():
            yield value


class TTLCache(_core.TTLCache):
    """A thread-safe, lock-striped mapping whose entries expire.

    ``TTLCache(maxsize, ttl, *, stripes=None, sweep_interval=None,
    timer=None, name=None)`` holds at most ``maxsize`` entries (``None``: no
    bound; ``0``: stores nothing), each for ``ttl`` seconds unless
    :meth:`set` gives it its own TTL.  Reads, writes, ``len`` and iteration
    are safe from any thread.  Iteration, ``keys()``, ``values()`` and
    ``items()`` walk a snapshot of the live entries, so the cache may change
    meanwhile.

    Expiry is checked on every access and by a sweeper thread that visits a
    bounded number of entries per stripe every ``sweep_interval`` seconds
    (default: a quarter of ``ttl``, between 0.05 and 5 s; ``0``: no
    sweeper).  The sweeper holds no reference to the cache, so a cache
    that is dropped without :meth:`close` is freed and its thread ends.

    When the cache is full, an insert evicts by a W-TinyLFU policy: recent
    entries stay in a small LRU window, and an entry leaving that window
    replaces an older entry only if it was requested more often.  Reads
    take no lock and move no entry: they mark the entry, and eviction
    later gives a marked entry the move that a hit would have given it.

    ``timer`` is a zero-argument callable returning seconds, like
    ``time.monotonic`` (the default, read with the kernel's coarse clock,
    which is 1-4 ms granular on Linux).  Caches with a custom timer run no
    sweeper: call :meth:`expire` to drop expired entries.

    ``len(cache)`` and ``currsize`` count live entries only, like
    ``cachetools.TTLCache``.  They cost one check per stripe while no entry
    has expired since the last count; a stripe holding an expired entry is
    scanned once, removing its expired entries, so that call costs time in
    proportion to that stripe's size.  ``stats()["entries"]`` counts stored
    entries, including expired ones not yet removed.

    ``name`` labels the cache in metrics.  :meth:`get_or_set` calls its
    factory once for all threads that miss the same key at the same time.
    """

    __slots__ = ("_flights", "_flights_lock")

    def __init__(
        self, maxsize, ttl, *, stripes=None, sweep_interval=None, timer=None, name=None
    ):
        # The C type has parsed and validated every argument already.
        self._flights = {}
        # Reentrant: the flights dict hashes and compares keys, and a key's
        # __hash__ or __eq__ may itself call get_or_set on this cache.
        self._flights_lock = threading.RLock()
        _live_caches[id(self)] = self
        # Leak checks report caches that are still open after a test.
        _resources.track(self, "cache")

    # -- get_or_set miss path (the hit path is in C) ----------------------

    def _get_or_set_miss(self, key, factory, ttl):
        while True:
            flight = self._wait_or_lead(key)
            if flight is None:
                continue  # the leader was interrupted: look again
            if not isinstance(flight, _Flight):
                return flight[0]
            return self._run_flight(key, factory, ttl, flight)

    def _wait_or_lead(self, key):
        """Return a new _Flight if this thread must call the factory,
        (value,) once a value is there, or None to look again."""
        with self._flights_lock:
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = _Flight()
                return flight
        if flight.owner == threading.get_ident():
            raise RuntimeError(
                f"get_or_set factory for key {key!r} asked for the same "
                "key again; it would wait for itself"
            )
        # Wait in slices, like the pool's waits: a KeyboardInterrupt from
        # _thread.interrupt_main() is raised only when this thread runs
        # Python code, never inside one long Event.wait().
        while not flight.done.wait(_WAIT_SLICE):
            pass
        if flight.error is None:
            return (flight.value,)
        if isinstance(flight.error, Exception):
            raise flight.error
        # KeyboardInterrupt, SystemExit and the like stopped the leader's
        # thread and are unrelated to the key.
        return None

    def _run_flight(self, key, factory, ttl, flight):
        # NOTE: an asynchronous exception (Ctrl-C) that lands between
        # publishing the flight and this try, or inside the finally, leaves
        # the flight registered and its waiters waiting.
        try:
            # A previous leader may have stored the value after this
            # thread's miss.  Look again outside the flights lock, because
            # the lookup can run the key's Python code; get_or_set already
            # counted this lookup's miss.
            value = self._get_uncounted(key, _MISSING)
            if value is _MISSING:
                value = factory()
                if ttl is None:
                    self.set(key, value)
                else:
                    self.set(key, value, ttl)
            flight.value = value
            return value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._flights_lock:
                del self._flights[key]
            flight.done.set()

    # -- Mapping views over snapshots --------------------------------------

    def keys(self):
        return collections.abc.KeysView(self)

    def values(self):
        return _ValuesView(self)

    def items(self):
        return _ItemsView(self)

    def __eq__(self, other):
        if not isinstance(other, collections.abc.Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    __hash__ = None

    def update(self, other=(), /, **kwargs):
        collections.abc.MutableMapping.update(self, other, **kwargs)

    def popitem(self):
        for key, value, _ in self._snapshot():
            if self.pop(key, _MISSING) is not _MISSING:
                return key, value
        raise KeyError("popitem(): cache is empty")

    # -- Context manager, pickle and copy ----------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __reduce__(self):
        # Live entries keep their remaining time; a custom timer must itself
        # be picklable.
        return (
            _rebuild,
            (
                type(self),
                self.maxsize,
                self.ttl,
                {
                    "stripes": self.stripes,
                    "sweep_interval": (
                        None if self.timer is not None else self.sweep_interval
                    ),
                    "timer": self.timer,
                    "name": self.name,
                },
                self._snapshot(),
            ),
        )

    def __copy__(self):
        function, args = self.__reduce__()
        return function(*args)


def _rebuild(cls, maxsize, ttl, options, entries):
    cache = cls(maxsize, ttl, **options)
    for key, value, remaining in entries:
        if remaining > 0:
            cache.set(key, value, remaining)
    return cache


collections.abc.MutableMapping.register(TTLCache)

# Caches whose sweepers must stop before the interpreter finalizes: a
# native thread that asks for the GIL during finalization may hang.
_live_caches = weakref.WeakValueDictionary()


def _stop_sweepers_at_exit():
    _core._disable_cache_sweepers()
    for cache in list(_live_caches.values()):
        cache._stop_sweeper()


# threading's exit hooks run before non-daemon threads are joined and long
# before finalization, the same moment WorkerPool uses.
threading._register_atexit(_stop_sweepers_at_exit)
