"""start_metrics_collector and the pygamesvc_* series: scrape, sampler, GC, fork."""

import gc
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pygamesvc import TTLCache, WorkerPool, _core
from pygamesvc.metrics import (
    Counter,
    Histogram,
    PygamesvcCollector,
    WSGIMetricsMiddleware,
    start_metrics_collector,
)

EXPECTED_FAMILIES = {
    "pygamesvc_process_resident_memory_bytes",
    "pygamesvc_process_resident_memory_max_bytes",
    "pygamesvc_process_os_threads",
    "pygamesvc_process_os_threads_max",
    "pygamesvc_pool_queued_tasks",
    "pygamesvc_pool_queued_tasks_max",
    "pygamesvc_pool_running_tasks",
    "pygamesvc_pool_running_tasks_max",
    "pygamesvc_pool_workers",
    "pygamesvc_pool_workers_max",
    "pygamesvc_pool_tasks_completed",
    "pygamesvc_pool_tasks_failed",
    "pygamesvc_pool_tasks_rejected",
    "pygamesvc_pool_task_wait_seconds",
    "pygamesvc_pool_task_run_seconds",
    "pygamesvc_gc_pause_seconds",
    "pygamesvc_gc_collected_objects",
    "pygamesvc_gc_uncollectable_objects",
    "pygamesvc_cache_entries",
    "pygamesvc_cache_entries_max",
    "pygamesvc_cache_hits",
    "pygamesvc_cache_misses",
    "pygamesvc_cache_expirations",
    "pygamesvc_cache_evictions",
}


@pytest.fixture
def registry():
    registry = CollectorRegistry()
    handle = start_metrics_collector(interval=0.05, registry=registry)
    yield registry
    handle.stop()


def scrape(registry):
    return {
        family.name: family
        for family in text_string_to_metric_families(generate_latest(registry).decode())
    }


def value(families, family, sample_name=None, **labels):
    for sample in families[family].samples:
        if sample.name == (sample_name or family) and sample.labels == labels:
            return sample.value
    raise AssertionError(f"no {sample_name or family}{labels} in {families[family]}")


class FakeClock:
    """A TTLCache timer that moves only when a test sets ``now``."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def cache_samples(families, family, cache):
    return [s for s in families[family].samples if s.labels.get("cache") == cache]


def block_pool(pool, tasks):
    """Fill pool with tasks that wait on an event; returns the event once a
    worker runs the first of them."""
    release, running = threading.Event(), threading.Event()

    def hold():
        running.set()
        release.wait(10)

    for _ in range(tasks):
        pool.execute(hold)
    assert running.wait(10)
    return release


def test_full_scrape_passes_promtool(registry):
    pool = WorkerPool(2, name="promtool-pool")
    pool.execute(lambda: None)
    pool.execute(lambda: 1 / 0)
    pool.wait()
    clock = FakeClock()
    cache = TTLCache(1, 5, stripes=1, timer=clock, name="promtool-cache")
    cache["a"] = 1
    cache["b"] = 2  # evicts one of the two
    cache.get("a")
    cache.get("b")
    clock.now += 10
    cache.expire()
    cache["c"] = 3
    Histogram("app_seconds", "App", ["route"], registry=registry).labels("/a").observe(
        0.2
    )
    Counter("app_events", "Events", registry=registry).inc()
    WSGIMetricsMiddleware(lambda e, s: [], registry=registry).metrics.observe(
        "/x", "GET", 200, 0.01
    )
    gc.collect()
    text = generate_latest(registry).decode()
    pool.close()
    cache.close()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    names = set(families)
    assert names >= EXPECTED_FAMILIES
    for family in EXPECTED_FAMILIES:
        assert families[family].samples, f"{family} has no samples"
    assert {"app_seconds", "app_events", "http_request_duration_seconds"} <= names

    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing; .ci/run installs the prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_no_clash_with_default_collectors():
    # The default REGISTRY contains prometheus_client's process, platform and
    # gc collectors; registering ours there must not raise.
    handle = start_metrics_collector(interval=0.05)
    try:
        text = generate_latest().decode()
        assert "pygamesvc_process_os_threads" in text
        assert "python_gc_objects_collected_total" in text
    finally:
        handle.stop()
    assert "pygamesvc_process_os_threads" not in generate_latest().decode()


def test_thread_gauge_rises_by_started_threads(registry):
    started, release = threading.Barrier(6), threading.Event()

    def park():
        started.wait()
        release.wait()

    before = value(scrape(registry), "pygamesvc_process_os_threads")
    threads = [threading.Thread(target=park) for _ in range(5)]
    for thread in threads:
        thread.start()
    started.wait()
    during = value(scrape(registry), "pygamesvc_process_os_threads")
    release.set()
    for thread in threads:
        thread.join()
    assert during == before + 5


def test_rss_gauge_rises_with_allocation(registry):
    before = value(scrape(registry), "pygamesvc_process_resident_memory_bytes")
    block = b"x" * (64 << 20)  # written, so every page is resident
    after = value(scrape(registry), "pygamesvc_process_resident_memory_bytes")
    assert after - before >= 48 << 20
    del block


def test_pool_gauges_keep_max_since_last_scrape(registry):
    pool = WorkerPool(1, queue_size=10, name="max-pool")
    release = block_pool(pool, 4)  # one running, three queued
    _core._sampler_tick()
    release.set()
    pool.wait()
    families = scrape(registry)
    assert value(families, "pygamesvc_pool_queued_tasks", pool="max-pool") == 0
    assert value(families, "pygamesvc_pool_queued_tasks_max", pool="max-pool") >= 3
    assert value(families, "pygamesvc_pool_running_tasks_max", pool="max-pool") == 1
    assert value(families, "pygamesvc_pool_workers", pool="max-pool") == 1
    # The scrape restarted each maximum from the current value.
    families = scrape(registry)
    assert value(families, "pygamesvc_pool_queued_tasks_max", pool="max-pool") == 0
    pool.close()


def test_pool_series_count_tasks_and_durations(registry):
    pool = WorkerPool(1, name="timed-pool")
    for _ in range(3):
        pool.execute(time.sleep, 0.01)
    pool.execute(lambda: 1 / 0)
    pool.wait()
    assert pool.try_execute(lambda: None)
    pool.wait()
    families = scrape(registry)
    pool.close()
    completed = value(
        families,
        "pygamesvc_pool_tasks_completed",
        "pygamesvc_pool_tasks_completed_total",
        pool="timed-pool",
    )
    failed = value(
        families,
        "pygamesvc_pool_tasks_failed",
        "pygamesvc_pool_tasks_failed_total",
        pool="timed-pool",
    )
    assert completed == 4
    assert failed == 1
    run_count = value(
        families,
        "pygamesvc_pool_task_run_seconds",
        "pygamesvc_pool_task_run_seconds_count",
        pool="timed-pool",
    )
    run_sum = value(
        families,
        "pygamesvc_pool_task_run_seconds",
        "pygamesvc_pool_task_run_seconds_sum",
        pool="timed-pool",
    )
    assert run_count == 5
    assert run_sum >= 0.03
    # The fourth task queued behind three sleeps of 10 ms on one worker.
    wait_sum = value(
        families,
        "pygamesvc_pool_task_wait_seconds",
        "pygamesvc_pool_task_wait_seconds_sum",
        pool="timed-pool",
    )
    assert wait_sum >= 0.02


def test_pool_rejections_counted(registry):
    pool = WorkerPool(1, queue_size=1, name="full-pool")
    release = block_pool(pool, 2)
    assert not pool.try_execute(lambda: None)
    release.set()
    pool.wait()
    families = scrape(registry)
    pool.close()
    assert (
        value(
            families,
            "pygamesvc_pool_tasks_rejected",
            "pygamesvc_pool_tasks_rejected_total",
            pool="full-pool",
        )
        == 1
    )


def test_closed_pool_series_disappear(registry):
    pool = WorkerPool(1, name="gone-pool")
    pool.close()
    del pool
    gc.collect()
    families = scrape(registry)
    assert all(
        s.labels.get("pool") != "gone-pool"
        for s in families["pygamesvc_pool_workers"].samples
    )


def test_cache_series_count_exact_traffic(registry):
    clock = FakeClock()
    cache = TTLCache(4, 10, stripes=1, timer=clock, name="traffic-cache")
    refs = sys.getrefcount(cache)
    for key in ("a", "b", "c"):
        cache[key] = key
    assert cache.get("a") == "a"
    assert cache["b"] == "b"
    assert "c" in cache  # a hit as well
    assert cache.get("missing") is None
    with pytest.raises(KeyError):
        cache["missing"]
    clock.now += 10  # all three expire
    cache.expire()
    for key in range(5):  # five keys into a cache of four: one eviction
        cache[key] = key

    families = scrape(registry)
    labels = {"cache": "traffic-cache"}
    hits = value(
        families, "pygamesvc_cache_hits", "pygamesvc_cache_hits_total", **labels
    )
    misses = value(
        families, "pygamesvc_cache_misses", "pygamesvc_cache_misses_total", **labels
    )
    expirations = value(
        families,
        "pygamesvc_cache_expirations",
        "pygamesvc_cache_expirations_total",
        **labels,
    )
    evictions = value(
        families,
        "pygamesvc_cache_evictions",
        "pygamesvc_cache_evictions_total",
        **labels,
    )
    entries = value(families, "pygamesvc_cache_entries", **labels)
    assert hits == 3
    assert misses == 2
    assert expirations == 3
    assert evictions == 1
    assert entries == 4
    assert cache.stats() == {
        "hits": 3,
        "misses": 2,
        "expirations": 3,
        "evictions": 1,
        "entries": 4,
    }
    # The collector keeps no reference to the cache.
    assert sys.getrefcount(cache) == refs
    cache.close()


def test_cache_entries_max_resets_on_scrape(registry):
    cache = TTLCache(None, 60, name="max-cache")
    for key in range(5):
        cache[key] = key
    _core._sampler_tick()
    for key in range(3):
        del cache[key]
    families = scrape(registry)
    assert value(families, "pygamesvc_cache_entries", cache="max-cache") == 2
    assert value(families, "pygamesvc_cache_entries_max", cache="max-cache") == 5
    # The scrape restarted the maximum from the current value.
    families = scrape(registry)
    assert value(families, "pygamesvc_cache_entries_max", cache="max-cache") == 2
    cache.close()


def test_sampler_records_cache_entries():
    cache = TTLCache(None, 60, name="sampled-cache")

    def reading():
        for family, label, current, maximum in _core._sampler_read(False):
            if family == _core.GAUGE_CACHE_ENTRIES and label == "sampled-cache":
                return current, maximum
        return None

    _core._sampler_tick()
    _core._sampler_read(True)  # restart every maximum from here
    assert reading() == (0, 0)
    cache.update({key: key for key in range(7)})
    _core._sampler_tick()
    cache.clear()
    cache[1] = 1
    _core._sampler_tick()
    assert reading() == (1, 7)
    _core._sampler_read(True)
    assert reading() == (1, 1)
    cache.close()
    _core._sampler_tick()
    assert reading() is None


def test_caches_sharing_name_merge(registry):
    first = TTLCache(None, 60, name="shared-cache")
    second = TTLCache(None, 60, name="shared-cache")
    first["a"] = 1
    second["b"] = 2
    second["c"] = 3
    first.get("a")
    second.get("b")
    second.get("zz")
    families = scrape(registry)
    first.close()
    second.close()
    hits = cache_samples(families, "pygamesvc_cache_hits", "shared-cache")
    entries = cache_samples(families, "pygamesvc_cache_entries", "shared-cache")
    assert [s.value for s in hits] == [2]
    assert (
        value(
            families,
            "pygamesvc_cache_misses",
            "pygamesvc_cache_misses_total",
            cache="shared-cache",
        )
        == 1
    )
    assert [s.value for s in entries] == [3]


def test_long_cache_name_cut_alike(registry):
    name = "c" + "\u00e9" * 200  # 401 UTF-8 bytes, past the label limit
    cache = TTLCache(None, 60, name=name)
    cache["a"] = 1
    cache.get("a")
    families = scrape(registry)
    cache.close()
    (entries,) = [
        s
        for s in families["pygamesvc_cache_entries"].samples
        if s.labels["cache"].startswith("c\u00e9")
    ]
    (hits,) = [
        s
        for s in families["pygamesvc_cache_hits"].samples
        if s.labels["cache"].startswith("c\u00e9")
    ]
    label = entries.labels["cache"]
    assert hits.labels["cache"] == label
    assert name.startswith(label)
    assert len(label.encode()) < 128
    assert entries.value == 1
    assert hits.value == 1


def test_closed_cache_series_disappear(registry):
    closed = TTLCache(None, 60, name="closed-cache")
    dropped = TTLCache(None, 60, name="dropped-cache")
    cyclic = TTLCache(None, 60, name="cyclic-cache")
    for cache in (closed, dropped, cyclic):
        cache["a"] = 1
        cache.get("a")
    cyclic["self"] = cyclic  # freed only by the cycle collector
    families = scrape(registry)
    for name in ("closed-cache", "dropped-cache", "cyclic-cache"):
        assert cache_samples(families, "pygamesvc_cache_hits", name), name
        assert cache_samples(families, "pygamesvc_cache_entries", name), name

    closed.close()
    del dropped, cache
    families = scrape(registry)
    assert cache_samples(families, "pygamesvc_cache_entries", "cyclic-cache")
    for family in (
        "pygamesvc_cache_entries",
        "pygamesvc_cache_entries_max",
        "pygamesvc_cache_hits",
        "pygamesvc_cache_misses",
        "pygamesvc_cache_expirations",
        "pygamesvc_cache_evictions",
    ):
        assert not cache_samples(families, family, "closed-cache"), family
        assert not cache_samples(families, family, "dropped-cache"), family

    del cyclic
    gc.collect()
    families = scrape(registry)
    assert not cache_samples(families, "pygamesvc_cache_hits", "cyclic-cache")
    assert not cache_samples(families, "pygamesvc_cache_entries", "cyclic-cache")


def test_scrape_during_cache_storm(registry):
    # Threads hit a shared cache and create and close their own caches
    # while another scrapes, so the registry changes under each walk.
    shared = TTLCache(None, 60, name="storm-cache")
    shared["key"] = 1
    threads_count, rounds = 4, 200
    barrier = threading.Barrier(threads_count + 1)
    errors = []

    def work(index):
        barrier.wait()
        try:
            for round_ in range(rounds):
                assert shared.get("key") == 1
                own = TTLCache(4, 60, name=f"storm-own-{index}-{round_ % 3}")
                own[round_] = round_
                own.close()
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    def scrape_in_loop(results):
        barrier.wait()
        for _ in range(30):
            results.append(scrape(registry))

    results = []
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    scraper = threading.Thread(target=scrape_in_loop, args=(results,))
    for thread in [*workers, scraper]:
        thread.start()
    for thread in [*workers, scraper]:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in [*workers, scraper])
    assert errors == []
    assert len(results) == 30
    families = scrape(registry)
    shared.close()
    assert (
        value(
            families,
            "pygamesvc_cache_hits",
            "pygamesvc_cache_hits_total",
            cache="storm-cache",
        )
        == threads_count * rounds
    )
    assert not [
        s
        for s in families["pygamesvc_cache_hits"].samples
        if s.labels["cache"].startswith("storm-own-")
    ]


def test_gc_pauses_counted_by_generation(registry):
    before = scrape(registry)
    for _ in range(3):
        gc.collect(1)
    gc.collect(2)
    after = scrape(registry)

    def count(families, generation):
        return value(
            families,
            "pygamesvc_gc_pause_seconds",
            "pygamesvc_gc_pause_seconds_count",
            generation=generation,
        )

    assert count(after, "1") - count(before, "1") >= 3
    assert count(after, "2") - count(before, "2") >= 1
    assert (
        value(
            after,
            "pygamesvc_gc_pause_seconds",
            "pygamesvc_gc_pause_seconds_sum",
            generation="2",
        )
        > 0
    )


def test_scrape_during_gc_storm_does_not_deadlock(registry):
    # GC callbacks fire inside allocations made while the scrape holds
    # locks; the callback only writes atomics, so this must finish.
    stop = threading.Event()
    barrier = threading.Barrier(4)
    garbage_made = []

    def collect_in_loop():
        barrier.wait()
        while not stop.is_set():
            cycle = []
            cycle.append(cycle)
            gc.collect(0)
            garbage_made.append(1)

    def scrape_in_loop(results):
        barrier.wait()
        for _ in range(50):
            results.append(generate_latest(registry))

    results = []
    collectors = [threading.Thread(target=collect_in_loop) for _ in range(3)]
    for thread in collectors:
        thread.start()
    scraper = threading.Thread(target=scrape_in_loop, args=(results,))
    scraper.start()
    scraper.join(timeout=60)
    stop.set()
    for thread in collectors:
        thread.join(timeout=60)
    assert not scraper.is_alive(), "scrape deadlocked against gc.collect()"
    assert len(results) == 50
    assert garbage_made


def test_sampler_thread_ticks_on_its_own(registry):
    handle = start_metrics_collector(interval=0.01, registry=registry)
    assert handle.running
    assert handle.wait_for_ticks(3, timeout=10)


def test_start_is_idempotent_and_stop_undoes_it():
    registry = CollectorRegistry()
    other = CollectorRegistry()
    threads_before = threading.active_count()
    handle = start_metrics_collector(interval=0.05, registry=registry)
    assert start_metrics_collector(interval=0.05, registry=registry) is handle
    assert start_metrics_collector(interval=0.02, registry=other) is handle
    assert handle.interval == 0.02
    assert _core._gc_callback in gc.callbacks
    assert gc.callbacks.count(_core._gc_callback) == 1
    assert "pygamesvc_process_os_threads" in generate_latest(other).decode()
    handle.stop()
    handle.stop()
    assert not handle.running
    assert not _core._sampler_is_running()
    assert _core._gc_callback not in gc.callbacks
    assert "pygamesvc_" not in generate_latest(registry).decode()
    assert "pygamesvc_" not in generate_latest(other).decode()
    assert threading.active_count() == threads_before
    with start_metrics_collector(interval=0.05, registry=registry) as second:
        assert second is not handle
        assert second.running
    assert not second.running


def test_start_rejects_bad_interval():
    with pytest.raises(TypeError, match="interval must be a number"):
        start_metrics_collector(interval="1")
    with pytest.raises(ValueError, match=r"between 0\.001 and 86400"):
        start_metrics_collector(interval=0)
    assert not _core._sampler_is_running()


def test_collector_works_without_sampler_thread():
    registry = CollectorRegistry()
    registry.register(PygamesvcCollector())
    assert value(scrape(registry), "pygamesvc_process_os_threads") >= 1


@pytest.mark.forks
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_gets_fresh_sampler(registry):
    handle = start_metrics_collector(interval=0.05, registry=registry)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report through the exit code
        code = 0
        try:
            if handle.running or _core._sampler_is_running():
                code = 10
            elif (
                start_metrics_collector(interval=0.01, registry=registry) is not handle
            ):
                code = 11
            elif not handle.wait_for_ticks(2, timeout=10):
                code = 12
            elif (
                "pygamesvc_process_os_threads" not in generate_latest(registry).decode()
            ):
                code = 13
            handle.stop()
        except BaseException:
            code = 14
        os._exit(code)
    os.close(read_end)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert handle.running  # the parent's thread is untouched
    assert handle.wait_for_ticks(1, timeout=10)


def test_interpreter_exit_stops_sampler():
    code = (
        "from pygamesvc.metrics import start_metrics_collector\n"
        "from pygamesvc import _core\n"
        "import atexit\n"
        "start_metrics_collector(interval=0.01)\n"
        "print('started', _core._sampler_is_running())\n"
        "atexit.register(lambda: print('at exit', _core._sampler_is_running()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # atexit hooks run after threading's exit hooks, where the sampler stops.
    assert result.stdout.splitlines() == ["started True", "at exit False"]
