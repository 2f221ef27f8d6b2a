"""TTLCache versus dict and the cache packages on PyPI, in one run.

Run:  python -m pytest benchmarks/bench_cache.py --benchmark-json=cache.json
      python benchmarks/ratios.py cache.json
      PYTHONPATH=. python benchmarks/bench_cache.py   (bytes/entry, hit ratios)

Each benchmark runs OPS operations in one Python loop over KEYS string keys,
so the loop costs the same for every contender.  Peers that are not
installed are skipped (pip install -e '.[bench]' installs them all).
"""

import functools
import importlib
import os
import subprocess
import sys
import threading

import pytest

from pygamesvc import TTLCache

KEYS = [f"player:{i}" for i in range(1000)]
MISSING = [f"absent:{i}" for i in range(1000)]
OPS = len(KEYS)
MAXSIZE = 10_000
TTL = 600


def optional(module):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


cachetools = optional("cachetools")
cachebox = optional("cachebox")
theine = optional("theine")
lru = optional("lru")


class LockedTTLCache:
    """cachetools.TTLCache behind a lock, which it needs when threads share it."""

    def __init__(self):
        self.cache = cachetools.TTLCache(MAXSIZE, TTL)
        self.lock = threading.Lock()

    def get(self, key, default=None):
        with self.lock:
            return self.cache.get(key, default)

    def __setitem__(self, key, value):
        with self.lock:
            self.cache[key] = value

    def __delitem__(self, key):
        with self.lock:
            del self.cache[key]

    def setdefault(self, key, default):
        with self.lock:
            return self.cache.setdefault(key, default)


def make(name):
    if name == "pygamesvc":
        return TTLCache(MAXSIZE, TTL)
    if name == "dict":
        return {}
    if name == "cachetools":
        return cachetools.TTLCache(MAXSIZE, TTL)
    if name == "cachetools+lock":
        return LockedTTLCache()
    if name == "cachebox":
        return cachebox.TTLCache(MAXSIZE, TTL)
    if name == "theine":
        return theine.Cache(MAXSIZE)
    if name == "lru-dict":
        return lru.LRU(MAXSIZE)
    raise ValueError(name)


AVAILABLE = {
    "pygamesvc": True,
    "dict": True,
    "cachetools": cachetools is not None,
    "cachetools+lock": cachetools is not None,
    "cachebox": cachebox is not None,
    "theine": theine is not None,
    "lru-dict": lru is not None,
}
PEERS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(not ok, reason=f"{name} is not installed"),
    )
    for name, ok in AVAILABLE.items()
]


def filled(name):
    cache = make(name)
    for key in KEYS:
        if name == "theine":
            cache.set(key, key)
        else:
            cache[key] = key
    return cache


def loop_get(cache, keys):
    get = cache.get
    for key in keys:
        get(key)


def loop_set(cache, keys):
    for key in keys:
        cache[key] = key


def loop_theine_set(cache, keys):
    set_ = cache.set
    for key in keys:
        set_(key, key)


def loop_delete(cache, keys):
    for key in keys:
        del cache[key]


def loop_theine_delete(cache, keys):
    delete = cache.delete
    for key in keys:
        delete(key)


@pytest.mark.parametrize("name", PEERS)
def test_get_hit(benchmark, name):
    benchmark.group = "get hit"
    cache = filled(name)
    benchmark(loop_get, cache, KEYS)


def test_get_hit_lru_cache(benchmark):
    benchmark.group = "get hit"
    cached = functools.lru_cache(MAXSIZE)(lambda key: key)
    for key in KEYS:
        cached(key)

    def loop():
        for key in KEYS:
            cached(key)

    benchmark(loop)


@pytest.mark.parametrize("name", PEERS)
def test_get_miss(benchmark, name):
    benchmark.group = "get miss"
    cache = filled(name)
    benchmark(loop_get, cache, MISSING)


@pytest.mark.parametrize("name", PEERS)
def test_set(benchmark, name):
    benchmark.group = "set (overwrite)"
    cache = filled(name)
    benchmark(loop_theine_set if name == "theine" else loop_set, cache, KEYS)


@pytest.mark.parametrize("name", PEERS)
def test_delete(benchmark, name):
    benchmark.group = "delete"
    loop = loop_theine_delete if name == "theine" else loop_delete
    benchmark.pedantic(loop, setup=lambda: ((filled(name), KEYS), {}), rounds=200)


def factory():
    return None


@pytest.mark.parametrize(
    "name",
    [
        p
        for p in PEERS
        if p.values[0] in ("pygamesvc", "dict", "cachetools+lock", "cachebox")
    ],
)
def test_get_or_set_hit(benchmark, name):
    benchmark.group = "get_or_set hit"
    cache = filled(name)
    if name == "pygamesvc":
        method = cache.get_or_set
    elif name == "cachebox":
        method = cache.setdefault_with
    else:  # dict and cachetools have no factory form: setdefault
        method = cache.setdefault

    def loop():
        for key in KEYS:
            method(key, factory)

    benchmark(loop)


# ---------------------------------------------------------------------------
# Bytes per entry and hit ratios (python benchmarks/bench_cache.py)

MEMORY_SCRIPT = r"""
import gc, sys
sys.path.insert(0, {root!r})
N = 1_000_000
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
keys = list(range(10**9, 10**9 + N))
gc.collect()
before = rss()
name = {name!r}
if name == "dict":
    c = {{}}
elif name == "pygamesvc":
    from pygamesvc import TTLCache
    c = TTLCache(N, 3600, sweep_interval=0)
elif name == "cachetools":
    import cachetools
    c = cachetools.TTLCache(N, 3600)
elif name == "cachebox":
    import cachebox
    c = cachebox.TTLCache(N, 3600)
elif name == "lru-dict":
    import lru
    c = lru.LRU(N)
elif name == "theine":
    import theine
    c = theine.Cache(N)
if name == "theine":
    for k in keys:
        c.set(k, None)
else:
    for k in keys:
        c[k] = None
gc.collect()
print((rss() - before) / N)
"""


def bytes_per_entry(name):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
    script = MEMORY_SCRIPT.format(root=root, name=name)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return float(out.stdout)


def main():
    print("Bytes per entry at 1,000,000 int keys (RSS growth / entries):")
    for name, ok in AVAILABLE.items():
        if ok and name != "cachetools+lock":
            print(f"  {name:12} {bytes_per_entry(name):7.1f}")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "tests"))
    import test_cache_traces as traces

    print("Hit ratio on the cache2k web traces (TTLCache vs exact LRU):")
    for trace, sizes in traces.REFERENCE_LRU.items():
        keys = traces.load_trace(trace)
        for size, lru_ratio in sizes.items():
            ratio = traces.hit_ratio(keys, size)
            print(f"  {trace} {size:5}: {ratio:6.2f} %  (LRU {lru_ratio:.2f} %)")


if __name__ == "__main__":
    main()
