"""Resident memory stays flat over millions of cache and pool operations.

RSS comes from /proc/self/statm after a warm-up of 500,000 operations
that lets allocator pools and the cache reach their steady size.  The
bound, RSS_BOUND, allows for allocator noise; a leak of one 64-byte block
per operation would exceed it after about 130,000 operations.  Each run of
5 million operations takes about 2 s on a 2-core machine.
"""

import gc
import os

import pytest

from pygamesvc import TTLCache, WorkerPool

# ASan's quarantine keeps freed memory resident on purpose, so RSS shows
# nothing about leaks there. .ci/sanitize-extension sets this variable.
pytestmark = pytest.mark.skipif(
    os.environ.get("PYGAMESVC_SANITIZED") == "1",
    reason="RSS is not meaningful under AddressSanitizer",
)

RSS_BOUND = 8 * 1024 * 1024  # bytes
PAGE = os.sysconf("SC_PAGE_SIZE")
COUNT = 5_000_000


def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def cache_cycles(count):
    # A bounded cache with a fake clock: every step sets, reads, lets some
    # entries expire and forces evictions of others.
    now = [0.0]
    cache = TTLCache(10_000, 1.0, timer=lambda: now[0])
    for i in range(count):
        cache[i % 50_000] = i
        cache.get((i * 7) % 50_000)
        if i % 5000 == 0:
            now[0] += 0.25  # entries older than 1 s expire
            cache.expire()
    stats = cache.stats()
    cache.close()
    return stats


def pool_tasks(count):
    with WorkerPool(2, 1024) as pool:
        for i in range(count):
            pool.execute(abs, i)
        assert pool.wait(60)
        return pool.stats()


def check_flat(run, count):
    run(count // 10)  # warm-up
    gc.collect()
    start = rss()
    result = run(count)
    gc.collect()
    grown = rss() - start
    assert grown < RSS_BOUND, f"RSS grew by {grown / 2**20:.1f} MiB"
    return result


def test_cache_cycles_keep_rss_flat():
    stats = check_flat(cache_cycles, COUNT)
    assert stats["evictions"] > 0
    assert stats["expirations"] > 0


def test_pool_tasks_keep_rss_flat():
    stats = check_flat(pool_tasks, COUNT)
    assert stats["completed"] == COUNT
