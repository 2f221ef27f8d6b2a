"""The pygamesvc_* series: process gauges, GC pauses, pools and caches.

``start_metrics_collector()`` registers a :class:`PygamesvcCollector`,
hooks the GC timer into ``gc.callbacks`` and starts the C sampler thread.
The collector builds every family from C state at scrape time; nothing in
this module runs on the sampler thread or inside the GC callback.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import REGISTRY, CollectorRegistry
from prometheus_client.utils import floatToGoString

from pygamesvc import _core, _resources

__all__ = ["MetricsCollectorHandle", "PygamesvcCollector", "start_metrics_collector"]

_SHORT_LE = [floatToGoString(b) for b in _core._short_seconds_bounds()] + ["+Inf"]

# Sampler gauge family -> (name, help, label name or None).  Each gauge is
# exported twice: its value at the last tick, and as NAME_max, the maximum
# seen since the previous scrape.
_GAUGES = {
    _core.GAUGE_RSS_BYTES: (
        "pygamesvc_process_resident_memory",
        "Resident memory of this process in bytes",
        None,
        "bytes",
    ),
    _core.GAUGE_OS_THREADS: (
        "pygamesvc_process_os_threads",
        "OS threads in this process",
        None,
        "",
    ),
    _core.GAUGE_POOL_QUEUED: (
        "pygamesvc_pool_queued_tasks",
        "Tasks waiting in a WorkerPool queue",
        "pool",
        "",
    ),
    _core.GAUGE_POOL_RUNNING: (
        "pygamesvc_pool_running_tasks",
        "Tasks running on a WorkerPool's workers",
        "pool",
        "",
    ),
    _core.GAUGE_POOL_WORKERS: (
        "pygamesvc_pool_workers",
        "Live worker threads of a WorkerPool",
        "pool",
        "",
    ),
    _core.GAUGE_CACHE_ENTRIES: (
        "pygamesvc_cache_entries",
        "Entries stored in a TTLCache",
        "cache",
        "",
    ),
}


_POOL_COUNTERS = {
    "completed": "Tasks of a WorkerPool that finished without raising",
    "failed": "Tasks of a WorkerPool that raised",
    "rejected": "Submissions a WorkerPool rejected because its queue stayed full",
}

_CACHE_COUNTERS = {
    "hits": "Lookups that found a live entry in a TTLCache",
    "misses": "Lookups that found no live entry in a TTLCache",
    "expirations": "Entries removed from a TTLCache because their TTL ran out",
    "evictions": "Entries removed from a TTLCache to stay within maxsize",
}


def _gauge_names(family: int) -> tuple[str, str]:
    """Return the current-value and maximum series names of a gauge family."""
    base, _, _, unit = _GAUGES[family]
    if unit:
        return f"{base}_{unit}", f"{base}_max_{unit}"
    return base, f"{base}_max"


class PygamesvcCollector:
    """A ``prometheus_client`` collector for the library's own series.

    Every name starts with ``pygamesvc_``, so none clashes with
    ``prometheus_client``'s process, platform and GC collectors.  Each
    scrape first takes one sampler tick on the scraping thread, so gauges
    are current even between the sampler thread's ticks.  A scrape restarts
    the ``*_max`` gauges from the current value; with several registries
    scraping, each reads the maximum since any scrape.
    """

    def describe(self) -> Iterator[Metric]:
        for family in _GAUGES:
            yield from self._gauge_families(family)
        yield from self._gc_families()
        yield from self._pool_families()
        yield from self._cache_families()

    def collect(self) -> Iterator[Metric]:
        _core._sampler_tick()
        readings = _core._sampler_read(True)
        families = {family: self._gauge_families(family) for family in _GAUGES}
        for family, label, current, maximum in readings:
            gauges = families.get(family)
            if gauges is None:
                continue
            labels = [label] if _GAUGES[family][2] else []
            gauges[0].add_metric(labels, current)
            gauges[1].add_metric(labels, maximum)
        for gauges in families.values():
            yield from gauges
        yield from self._gc_families(_core._gc_series())
        yield from self._pool_families(_core._pool_series())
        yield from self._cache_families(_core._cache_series())

    @staticmethod
    def _gauge_families(family: int) -> list[GaugeMetricFamily]:
        _, documentation, label, _ = _GAUGES[family]
        labels = [label] if label else []
        current, maximum = _gauge_names(family)
        return [
            GaugeMetricFamily(current, documentation, labels=labels),
            GaugeMetricFamily(
                maximum,
                f"{documentation}, maximum since the previous scrape",
                labels=labels,
            ),
        ]

    @staticmethod
    def _gc_families(series=()) -> list[Metric]:
        pauses = HistogramMetricFamily(
            "pygamesvc_gc_pause_seconds",
            "Duration of garbage collections by generation",
            labels=["generation"],
        )
        collected = CounterMetricFamily(
            "pygamesvc_gc_collected_objects",
            "Objects freed by garbage collections by generation",
            labels=["generation"],
        )
        uncollectable = CounterMetricFamily(
            "pygamesvc_gc_uncollectable_objects",
            "Objects found uncollectable by garbage collections by generation",
            labels=["generation"],
        )
        for generation, cumulative, total, freed, stuck in series:
            labels = [str(generation)]
            pauses.add_metric(
                labels, list(zip(_SHORT_LE, cumulative, strict=True)), total
            )
            collected.add_metric(labels, freed)
            uncollectable.add_metric(labels, stuck)
        return [pauses, collected, uncollectable]

    @staticmethod
    def _pool_families(series=()) -> list[Metric]:
        counters = {
            key: CounterMetricFamily(
                f"pygamesvc_pool_tasks_{key}", documentation, labels=["pool"]
            )
            for key, documentation in _POOL_COUNTERS.items()
        }
        wait = HistogramMetricFamily(
            "pygamesvc_pool_task_wait_seconds",
            "Time a WorkerPool task spent queued before a worker started it",
            labels=["pool"],
        )
        run = HistogramMetricFamily(
            "pygamesvc_pool_task_run_seconds",
            "Time a WorkerPool task ran on its worker",
            labels=["pool"],
        )
        # Pools that share a name are merged into one series.
        merged: dict[str, dict] = {}
        for pool in series:
            into = merged.get(pool["name"])
            if into is None:
                merged[pool["name"]] = pool
                continue
            for key in counters:
                into[key] += pool[key]
            for key in ("wait_seconds", "run_seconds"):
                buckets = [
                    a + b for a, b in zip(into[key][0], pool[key][0], strict=True)
                ]
                into[key] = (buckets, into[key][1] + pool[key][1])
        for name, pool in merged.items():
            for key, family in counters.items():
                family.add_metric([name], pool[key])
            for family, key in ((wait, "wait_seconds"), (run, "run_seconds")):
                cumulative, total = pool[key]
                family.add_metric(
                    [name], list(zip(_SHORT_LE, cumulative, strict=True)), total
                )
        return [*counters.values(), wait, run]

    @staticmethod
    def _cache_families(series=()) -> list[Metric]:
        # The entries gauges come from the sampler with the other gauges.
        counters = {
            key: CounterMetricFamily(
                f"pygamesvc_cache_{key}", documentation, labels=["cache"]
            )
            for key, documentation in _CACHE_COUNTERS.items()
        }
        # Caches that share a name are merged into one series, as the
        # sampler adds up their entries.
        merged: dict[str, dict] = {}
        for cache in series:
            into = merged.setdefault(cache["name"], dict.fromkeys(counters, 0))
            for key in counters:
                into[key] += cache[key]
        for name, cache in merged.items():
            for key, family in counters.items():
                family.add_metric([name], cache[key])
        return list(counters.values())


class MetricsCollectorHandle:
    """The running collector: the sampler thread, the GC hook and registrations.

    ``stop()`` undoes what :func:`start_metrics_collector` did and is
    idempotent; the handle is also a context manager that stops on exit.
    """

    def __init__(self, interval: float) -> None:
        self.collector = PygamesvcCollector()
        self.interval = interval
        self._registries: list[CollectorRegistry] = []
        self._stopped = False

    @property
    def running(self) -> bool:
        """True while the sampler thread runs."""
        return not self._stopped and _core._sampler_is_running()

    def stop(self) -> None:
        """Stop the sampler thread, unhook the GC timer, unregister the collector."""
        global _active
        with _lock:
            if self._stopped:
                return
            self._stopped = True
            if _active is self:
                _active = None
            _core._sampler_stop()
            while _core._gc_callback in gc.callbacks:
                gc.callbacks.remove(_core._gc_callback)
            registries, self._registries = self._registries, []
        for registry in registries:
            registry.unregister(self.collector)

    def wait_for_ticks(self, ticks: int, timeout: float | None = None) -> bool:
        """Wait until the sampler took ``ticks`` more ticks; False on timeout."""
        return _core._sampler_wait_ticks(_core._sampler_ticks() + ticks, timeout)

    def __enter__(self) -> MetricsCollectorHandle:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<MetricsCollectorHandle interval={self.interval!r} {state}>"


_lock = threading.Lock()
_active: MetricsCollectorHandle | None = None


def _sampler_stopped(handle: MetricsCollectorHandle) -> bool:
    return not handle.running


def start_metrics_collector(
    interval: float = 1.0, registry: CollectorRegistry | None = None
) -> MetricsCollectorHandle:
    """Start exporting the ``pygamesvc_*`` series and return the handle.

    Registers the collector with ``registry`` (default: ``prometheus_client``'s
    ``REGISTRY``), appends the GC pause timer to ``gc.callbacks`` and starts
    one C sampler thread that records resident memory, the OS thread count
    and pool and cache gauges every ``interval`` seconds without the GIL.

    Calling it again while a handle is running returns that handle, after
    applying the new interval and registering with ``registry`` too.  The
    sampler stops at interpreter exit.  In a child process made by
    ``fork()`` the sampler thread does not exist: call this again there to
    restart it (the collector stays registered).
    """
    global _active
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise TypeError(
            f"interval must be a number of seconds, got {type(interval).__name__}"
        )
    if registry is None:
        registry = REGISTRY
    elif not callable(getattr(registry, "register", None)):
        raise TypeError(
            "registry must be a prometheus_client CollectorRegistry or None, "
            f"got {type(registry).__name__}"
        )
    with _lock:
        handle = _active
        if handle is None:
            handle = MetricsCollectorHandle(interval)
            # Leak checks report a sampler that is still running after a test.
            _resources.track(handle, "sampler", is_closed=_sampler_stopped)
        _core._sampler_start(interval)
        handle.interval = interval
        if _core._gc_callback not in gc.callbacks:
            gc.callbacks.append(_core._gc_callback)
        if all(known is not registry for known in handle._registries):
            try:
                registry.register(handle.collector)
            except Exception:
                if _active is None:
                    _core._sampler_stop()
                    gc.callbacks.remove(_core._gc_callback)
                raise
            handle._registries.append(registry)
        _active = handle
        return handle


def _stop_at_exit() -> None:
    handle = _active
    if handle is not None:
        handle.stop()
    _core._sampler_stop()


def _forget_thread_after_fork() -> None:
    # The C side notices the fork by itself and leaks the parent's sampler;
    # only the lock that start and stop share needs renewing here.
    global _lock
    _lock = threading.Lock()


# threading's exit hooks run before non-daemon threads are joined and long
# before finalization, the same moment pygamesvc.pool uses.
threading._register_atexit(_stop_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_thread_after_fork)
