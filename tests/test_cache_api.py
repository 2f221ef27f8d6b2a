"""TTLCache: mapping API, TTLs with an injected timer, validation, lifetime."""

import collections.abc
import copy
import gc
import math
import os
import pickle
import sys
import threading
import time
import weakref

import pytest

import pygamesvc
from pygamesvc import TTLCache


class FakeClock:
    def __init__(self, start=1000.0):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def clocked(maxsize=None, ttl=10, **kwargs):
    clock = FakeClock()
    return TTLCache(maxsize, ttl, timer=clock, **kwargs), clock


class Value:
    """A value that can be weakly referenced."""


def test_exported_and_mutable_mapping():
    assert "TTLCache" in pygamesvc.__all__
    cache = TTLCache(10, 1)
    assert isinstance(cache, collections.abc.MutableMapping)
    cache.close()


def test_mapping_operations():
    cache, _ = clocked(100)
    cache["a"] = 1
    cache[2] = "two"
    cache[b"x"] = 3
    cache[(1, 2)] = 4
    assert cache["a"] == 1
    assert cache[2] == "two"
    assert cache[b"x"] == 3
    assert cache[(1, 2)] == 4
    assert len(cache) == 4
    assert cache.currsize == 4
    assert "a" in cache
    assert "b" not in cache
    assert cache.get("b") is None
    assert cache.get("b", 7) == 7
    del cache["a"]
    assert "a" not in cache
    with pytest.raises(KeyError):
        cache["a"]
    with pytest.raises(KeyError):
        del cache["a"]
    assert cache.pop(2) == "two"
    assert cache.pop(2, "gone") == "gone"
    with pytest.raises(KeyError):
        cache.pop(2)
    assert cache.setdefault("s", 5) == 5
    assert cache.setdefault("s", 6) == 5
    assert sorted(map(repr, cache)) == sorted(map(repr, [b"x", (1, 2), "s"]))
    assert dict(cache.items()) == {b"x": 3, (1, 2): 4, "s": 5}
    assert sorted(cache.values()) == [3, 4, 5]
    assert set(cache.keys()) == {b"x", (1, 2), "s"}
    cache.update({"u": 1}, v=2)
    assert cache["v"] == 2
    cache.clear()
    assert len(cache) == 0


def test_numeric_keys_follow_python_equality():
    cache, _ = clocked()
    cache[1] = "int"
    assert cache[1.0] == "int"
    assert cache[True] == "int"
    cache[1.0] = "float"
    assert cache[1] == "float"
    assert len(cache) == 1


def test_unhashable_key_raises_type_error():
    cache, _ = clocked()
    with pytest.raises(TypeError):
        cache[[1]] = 1
    with pytest.raises(TypeError):
        cache.get({})


def test_entries_expire_with_injected_timer():
    cache, clock = clocked(ttl=10)
    cache["a"] = 1
    cache.set("short", 2, ttl=1)
    assert cache.ttl_of("a") == pytest.approx(10)
    clock.advance(1)
    assert "short" not in cache
    assert cache["a"] == 1
    assert cache.ttl_of("a") == pytest.approx(9)
    clock.advance(9)
    assert cache.get("a") is None
    with pytest.raises(KeyError):
        cache.ttl_of("a")
    stats = cache.stats()
    assert stats["expirations"] == 2


def test_expire_removes_expired_now():
    cache, clock = clocked(ttl=5)
    for i in range(100):
        cache.set(i, i, ttl=1 if i % 2 else 5)
    clock.advance(2)
    assert cache.stats()["entries"] == 100
    assert cache.expire() == 50
    assert cache.stats()["entries"] == 50
    assert len(cache) == 50
    assert sorted(cache) == list(range(0, 100, 2))


def test_len_and_currsize_exclude_expired():
    cache, clock = clocked(ttl=10, stripes=4)
    for i in range(100):
        cache.set(i, i, ttl=1 if i < 30 else 10)
    assert len(cache) == 100
    clock.advance(0.999)
    assert len(cache) == 100
    clock.advance(0.001)
    assert len(cache) == 70
    assert cache.currsize == 70
    assert len(list(cache)) == 70
    # len() removed what it found expired, so expire() has nothing left.
    assert cache.stats()["entries"] == 70
    assert cache.stats()["expirations"] == 30
    assert cache.expire() == 0
    clock.advance(9)
    assert len(cache) == 0
    assert cache.currsize == 0


def test_len_sees_replaced_and_new_expiry_times():
    cache, clock = clocked(ttl=10, stripes=1)
    cache["a"] = 1
    cache["b"] = 2
    assert len(cache) == 2
    # A later entry with an earlier expiry must lower the stripe's bound.
    cache.set("c", 3, ttl=0.5)
    cache.set("a", 4, ttl=0.25)
    clock.advance(0.25)
    assert len(cache) == 2
    clock.advance(0.25)
    assert len(cache) == 1
    assert list(cache) == ["b"]
    cache.clear()
    assert len(cache) == 0
    cache["d"] = 5
    assert len(cache) == 1


def test_len_releases_expired_values():
    cache, clock = clocked(ttl=1)
    value = Value()
    ref = weakref.ref(value)
    cache["k"] = value
    del value
    clock.advance(1)
    assert ref() is not None
    assert len(cache) == 0
    assert ref() is None


def test_len_propagates_timer_error():
    def timer():
        raise OSError("clock unavailable")

    cache = TTLCache(10, 1, timer=timer)
    with pytest.raises(OSError, match="clock unavailable"):
        len(cache)
    with pytest.raises(OSError, match="clock unavailable"):
        _ = cache.currsize


def test_iteration_skips_expired_and_allows_mutation():
    cache, clock = clocked(ttl=5)
    for i in range(50):
        cache.set(i, i, ttl=1 if i < 10 else 5)
    clock.advance(1)
    seen = []
    for key in cache:
        seen.append(key)
        cache[key + 1000] = key
        del cache[key]
    assert sorted(seen) == list(range(10, 50))


def test_stats_count_hits_misses_evictions():
    cache, _ = clocked(maxsize=10, stripes=1)
    for i in range(30):
        cache[i] = i
    assert len(cache) == 10
    cache.get(29)
    cache.get("missing")
    stats = cache.stats()
    assert stats["evictions"] == 20
    assert stats["hits"] == 1
    assert stats["misses"] == 1
    assert stats["entries"] == 10


def test_maxsize_is_never_exceeded():
    cache, _ = clocked(maxsize=37)
    for i in range(2000):
        cache[f"k{i}"] = i
        assert len(cache) <= 37


def test_maxsize_none_is_unbounded_and_zero_stores_nothing():
    unbounded, _ = clocked(None)
    for i in range(5000):
        unbounded[i] = i
    assert len(unbounded) == 5000
    assert unbounded.maxsize is None
    nothing, _ = clocked(0)
    nothing["a"] = 1
    assert "a" not in nothing
    assert len(nothing) == 0


@pytest.mark.parametrize(
    "bad, error",
    [
        (0, ValueError),
        (-1.0, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (True, TypeError),
        ("5", TypeError),
        (None, TypeError),
    ],
)
def test_invalid_ttl_rejected(bad, error):
    with pytest.raises(error, match="ttl must be"):
        TTLCache(10, bad)
    cache, _ = clocked()
    with pytest.raises(error, match="ttl must be"):
        cache.set("k", 1, ttl=bad if bad is not None else "x")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"maxsize": -1}, ValueError, "maxsize must be a non-negative int"),
        ({"maxsize": 1.5}, TypeError, "maxsize must be a non-negative int"),
        ({"maxsize": True}, TypeError, "maxsize must be"),
        ({"stripes": 3}, ValueError, "stripes must be a power of two"),
        ({"stripes": 0}, ValueError, "stripes must be a power of two"),
        ({"stripes": "4"}, TypeError, "stripes must be"),
        ({"sweep_interval": -1}, ValueError, "sweep_interval must be"),
        ({"sweep_interval": math.nan}, ValueError, "sweep_interval must be"),
        ({"timer": 5}, TypeError, "timer must be callable"),
        ({"name": 5}, TypeError, "name must be a str"),
    ],
)
def test_invalid_arguments_rejected(kwargs, error, match):
    arguments = {"maxsize": 10, "ttl": 1, **kwargs}
    with pytest.raises(error, match=match):
        TTLCache(**arguments)


def test_timer_with_sweep_interval_rejected():
    with pytest.raises(ValueError, match="sweep_interval cannot be combined"):
        TTLCache(10, 1, timer=time.monotonic, sweep_interval=1)


def test_properties():
    cache = TTLCache(100, 2, stripes=4, name="profiles")
    assert cache.maxsize == 100
    assert cache.ttl == 2.0
    assert cache.stripes == 4
    assert cache.name == "profiles"
    assert cache.sweep_interval == pytest.approx(0.5)
    assert "profiles" in repr(cache)
    cache.close()


def test_close_is_idempotent_and_context_manager():
    with TTLCache(10, 1) as cache:
        cache["a"] = 1
        assert cache._sweeper_running
    assert cache.closed
    assert not cache._sweeper_running
    cache.close()
    with pytest.raises(RuntimeError, match="is closed"):
        cache["a"] = 1
    with pytest.raises(RuntimeError, match="is closed"):
        cache.get("a")


def test_pickle_and_copy_keep_remaining_ttl():
    cache = TTLCache(100, 30, name="p")
    cache["a"] = 1
    cache.set("b", [2], ttl=5)
    for clone in (pickle.loads(pickle.dumps(cache)), copy.copy(cache)):
        assert isinstance(clone, TTLCache)
        assert dict(clone.items()) == {"a": 1, "b": [2]}
        assert clone.ttl_of("b") <= 5
        assert clone.ttl_of("a") > 5
        assert clone.maxsize == 100
        clone.close()
    cache.close()


@pytest.mark.parametrize("key", ["str-key", 12345678901, b"bytes", ("tuple",)])
def test_lookups_return_one_new_reference(key):
    cache, _ = clocked(maxsize=10)
    value = Value()
    cache[key] = value
    base = sys.getrefcount(value)
    results = [cache.get(key) for _ in range(100)]
    results += [cache[key] for _ in range(100)]
    assert all(result is value for result in results)
    assert sys.getrefcount(value) == base + 200
    del results
    assert all(key in cache for _ in range(100))
    assert cache.get_or_set(key, Value) is value
    assert sys.getrefcount(value) == base
    cache.close()


def test_refcounts_released_on_delete_expiry_eviction_clear_close():
    key, value = "key-" + str(id(object())), Value()
    base_key, base_value = sys.getrefcount(key), sys.getrefcount(value)

    def check_released():
        assert sys.getrefcount(key) == base_key
        assert sys.getrefcount(value) == base_value

    cache, clock = clocked(maxsize=4, stripes=1)
    cache[key] = value
    assert sys.getrefcount(value) == base_value + 1
    assert sys.getrefcount(key) == base_key + 1
    del cache[key]
    check_released()

    cache.set(key, value, ttl=1)
    clock.advance(2)
    assert cache.expire() == 1
    check_released()

    # With room for one entry, every insert evicts the previous one.
    single, _ = clocked(maxsize=1)
    single[key] = value
    single["other"] = 1
    assert key not in single
    assert single.stats()["evictions"] == 1
    check_released()

    cache[key] = value
    cache.clear()
    check_released()

    cache[key] = value
    assert cache.get(key) is value
    assert cache.pop(key) is value
    check_released()

    cache[key] = value
    cache.close()
    check_released()


def test_replaced_value_released():
    cache, _ = clocked()
    old = Value()
    ref = weakref.ref(old)
    cache["k"] = old
    del old
    cache["k"] = 2
    assert ref() is None


def test_reference_cycle_through_value_is_collected():
    cache = TTLCache(10, 60)
    holder = Value()
    holder.cache = cache
    cache["self"] = holder
    cache_ref = weakref.ref(cache)
    del cache, holder
    gc.collect()
    assert cache_ref() is None


def test_dropped_cache_frees_and_stops_sweeper():
    before = threading.active_count()
    cache = TTLCache(10, 0.01, sweep_interval=0.001)
    cache["a"] = Value()
    ref = weakref.ref(cache)
    del cache
    assert ref() is None
    assert threading.active_count() == before


def test_sweeper_removes_expired_entries():
    cache = TTLCache(None, 0.02, sweep_interval=0.005, stripes=2)
    for i in range(100):
        cache[i] = i
    deadline = time.monotonic() + 5
    while len(cache) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cache) == 0
    assert cache.stats()["expirations"] == 100
    cache.close()


def test_sweeper_releasing_last_reference_to_cache():
    # The value's only path to the cache is the cache itself, so the sweep
    # that expires it may free the cache on the sweeper thread.
    cache = TTLCache(10, 0.01, sweep_interval=0.002)
    holder = Value()
    holder.cache = cache
    cache["k"] = holder
    gc.disable()
    try:
        del cache, holder
        time.sleep(0.2)
    finally:
        gc.enable()
    gc.collect()


@pytest.mark.forks
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_gets_a_working_cache_and_sweeper():
    cache = TTLCache(100, 0.05, sweep_interval=0.005)
    cache["a"] = 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            ok = cache["a"] == 1
            cache["b"] = 2
            ok = ok and cache._sweeper_running
            deadline = time.monotonic() + 5
            while len(cache) and time.monotonic() < deadline:
                time.sleep(0.01)
            ok = ok and len(cache) == 0
            cache.close()
            os.write(write, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(write)
    result = os.read(read, 2)
    os.close(read)
    os.waitpid(pid, 0)
    assert result == b"ok"
    cache.close()


def test_get_or_set_counts_one_lookup_per_call():
    with TTLCache(100, 60) as cache:
        assert cache.get_or_set("k", lambda: 1) == 1
        stats = cache.stats()
        assert stats["misses"] == 1
        assert stats["hits"] == 0
        assert cache.get_or_set("k", lambda: 2) == 1
        stats = cache.stats()
        assert stats["misses"] == 1
        assert stats["hits"] == 1
        assert cache.get_or_set(("tuple", 1), lambda: 3) == 3
        assert cache.stats()["misses"] == 2


def test_get_or_set_key_hash_reenters_cache():
    # A key whose __hash__ calls get_or_set on the same cache must not
    # deadlock on the single-flight bookkeeping.
    cache = TTLCache(100, 60, sweep_interval=0)
    calls = []

    class ReentrantKey:
        def __hash__(self):
            calls.append(1)
            cache.get_or_set(("inner", len(calls)), lambda: 0)
            return 1

    key = ReentrantKey()
    assert cache.get_or_set(key, lambda: "made") == "made"
    assert cache.get(key) == "made"
    assert len(calls) >= 2
    cache.close()


def test_store_racing_close_keeps_nothing():
    # A set whose key __eq__ releases the GIL can finish after close() has
    # cleared the cache; the closed cache must still end up empty.
    cache = TTLCache(100, 60, sweep_interval=0)

    class SlowKey:
        def __init__(self, n):
            self.n = n

        def __hash__(self):
            return 7

        def __eq__(self, other):
            time.sleep(0.2)
            return isinstance(other, SlowKey) and other.n == self.n

    class Value:
        pass

    cache[SlowKey(1)] = "old"
    values = [Value()]
    ref = weakref.ref(values[0])
    errors = []

    def store():
        try:
            cache.set(SlowKey(2), values[0])
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=store)
    thread.start()
    time.sleep(0.05)
    cache.close()
    thread.join(10)
    values.clear()
    gc.collect()
    assert cache.stats()["entries"] == 0
    assert ref() is None
    assert len(errors) == 1
    assert "is closed" in str(errors[0])
