"""TTLCache under threads: single-flight, a storm of mixed operations, and
keys whose __eq__ misbehaves."""

import threading
import time

import pytest

from pygamesvc import TTLCache


def run_threads(count, target):
    barrier = threading.Barrier(count)
    errors = []

    def body(index):
        try:
            barrier.wait()
            target(index)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def test_get_or_set_calls_factory_once():
    cache = TTLCache(100, 60)
    calls = []
    release = threading.Event()
    results = []

    def factory():
        calls.append(1)
        release.wait(5)
        return "value"

    def caller(index):
        if index == 0:
            threading.Timer(0.05, release.set).start()
        results.append(cache.get_or_set("k", factory))

    assert run_threads(8, caller) == []
    assert len(calls) == 1
    assert results == ["value"] * 8
    assert cache["k"] == "value"
    assert cache.get_or_set("k", lambda: "other") == "value"
    cache.close()


def test_get_or_set_error_reaches_every_waiter_and_caches_nothing():
    cache = TTLCache(100, 60)
    calls = []
    release = threading.Event()

    def factory():
        calls.append(1)
        release.wait(5)
        raise LookupError("backend down")

    def caller(index):
        if index == 0:
            threading.Timer(0.05, release.set).start()
        cache.get_or_set("k", factory)

    errors = run_threads(6, caller)
    assert len(calls) == 1
    assert len(errors) == 6
    assert all(isinstance(error, LookupError) for error in errors)
    assert "k" not in cache
    cache.close()


def test_get_or_set_recursive_same_key_raises():
    cache = TTLCache(100, 60)

    def factory():
        return cache.get_or_set("k", lambda: 1)

    with pytest.raises(RuntimeError, match="same key again"):
        cache.get_or_set("k", factory)
    assert "k" not in cache
    assert cache.get_or_set("k", lambda: 2, ttl=5) == 2
    assert cache.ttl_of("k") <= 5
    cache.close()


def test_thread_storm_keeps_invariants():
    cache = TTLCache(300, 60, stripes=8, sweep_interval=0.001)
    keys = [f"k{i}" for i in range(500)] + list(range(500)) + [(i,) for i in range(100)]

    def worker(index):
        state = index * 7919 + 1
        for step in range(3000):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            key = keys[state % len(keys)]
            op = (state >> 12) % 10
            if op < 3:
                value = cache.get(key)
                assert value is None or value == ("v", key)
            elif op < 6:
                cache.set(key, ("v", key), ttl=0.001 if op == 5 else 60)
            elif op == 6:
                cache.pop(key, None)
            elif op == 7:
                assert cache.get_or_set(key, lambda: ("v", key)) == ("v", key)
            elif op == 8:
                assert 0 <= len(cache) <= 300
            elif step % 50 == 0:
                if index == 0:
                    cache.clear()
                for k, v in cache.items():
                    assert v == ("v", k)

    assert run_threads(8, worker) == []
    assert len(cache) <= 300
    for key in cache:
        assert cache.get(key, ("v", key)) == ("v", key)
    stats = cache.stats()
    # stats() counts stored entries; len() drops those that expired since.
    assert stats["entries"] >= len(cache)
    cache.close()


def test_readers_race_sweeper_and_growth():
    # Unbounded, so stripes double their bucket arrays while readers run,
    # and half the entries expire at once for the 1 ms sweeper to remove.
    cache = TTLCache(None, 60, stripes=2, sweep_interval=0.001)
    stop = threading.Event()

    def worker(index):
        if index == 0:
            for i in range(20000):
                cache.set(f"k{i}", i, ttl=0.001 if i % 2 else 60)
            stop.set()
            return
        misses = 0
        # At least one full pass, even if the writer finished before this
        # thread first got the GIL.
        while True:
            for i in range(0, 20000, 97):
                value = cache.get(f"k{i}")
                if value is None:
                    misses += 1
                else:
                    assert value == i
            if stop.is_set():
                break
        assert misses > 0

    assert run_threads(3, worker) == []
    for i in range(0, 20000, 2):
        assert cache[f"k{i}"] == i
    cache.close()


class SlowKey:
    """Equal to other SlowKeys with the same id; __eq__ drops the GIL."""

    def __init__(self, ident):
        self.ident = ident

    def __hash__(self):
        return hash(self.ident)

    def __eq__(self, other):
        time.sleep(0.0005)
        return isinstance(other, SlowKey) and self.ident == other.ident


class RaisingKey:
    def __hash__(self):
        return 1

    def __eq__(self, other):
        raise ZeroDivisionError("eq failed")


class MutatingKey:
    """__eq__ writes to and clears the cache it is stored in."""

    cache = None

    def __init__(self, ident):
        self.ident = ident

    def __hash__(self):
        return 7

    def __eq__(self, other):
        MutatingKey.cache[f"side-{self.ident}"] = 1
        MutatingKey.cache.pop("victim", None)
        return isinstance(other, MutatingKey) and self.ident == other.ident


def test_keys_whose_eq_sleeps_from_many_threads():
    cache = TTLCache(1000, 60, stripes=2)

    def worker(index):
        for i in range(40):
            key = SlowKey(i % 5)
            cache[key] = i % 5
            # Another thread may pop the key in between, never change it.
            assert cache.get(SlowKey(i % 5), i % 5) == i % 5
            if i % 7 == index % 7:
                cache.pop(SlowKey(i % 5), None)

    assert run_threads(4, worker) == []
    assert len(cache) <= 5
    for key in cache:
        assert cache[key] == key.ident
    cache.close()


def test_key_whose_eq_raises():
    cache = TTLCache(10, 60)
    first = RaisingKey()
    cache[first] = 1  # the same object needs no __eq__
    assert cache[first] == 1
    with pytest.raises(ZeroDivisionError):
        cache[RaisingKey()]
    with pytest.raises(ZeroDivisionError):
        cache[RaisingKey()] = 2
    assert len(cache) == 1
    assert cache[first] == 1
    cache.close()


def test_key_whose_eq_mutates_the_cache():
    cache = TTLCache(100, 60)
    MutatingKey.cache = cache
    cache["victim"] = 0
    cache[MutatingKey(1)] = "one"
    cache[MutatingKey(1)] = "uno"  # __eq__ runs while the stripe is unlocked
    assert cache[MutatingKey(1)] == "uno"
    cache[MutatingKey(2)] = "two"
    assert cache.get(MutatingKey(3)) is None
    assert "victim" not in cache
    keys = [key for key in cache if isinstance(key, MutatingKey)]
    assert sorted(key.ident for key in keys) == [1, 2]
    MutatingKey.cache = None
    cache.close()


def test_many_keys_with_one_hash():
    cache = TTLCache(None, 60)
    keys = [SlowKey(i) for i in range(30)]
    for key in keys:
        key.__class__ = CollidingKey
    for i, key in enumerate(keys):
        cache[key] = i
    assert len(cache) == 30
    assert [cache[CollidingKey(i)] for i in range(30)] == list(range(30))
    cache.close()


class CollidingKey(SlowKey):
    def __hash__(self):
        return 42

    def __eq__(self, other):
        return isinstance(other, SlowKey) and self.ident == other.ident
