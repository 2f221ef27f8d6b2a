"""Histogram and Counter kept in C atomics, exported through prometheus_client."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import REGISTRY, CollectorRegistry
from prometheus_client.utils import floatToGoString

from pygamesvc import _core

__all__ = ["Counter", "Histogram"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
# Far above any useful number of series, low enough that the C tables
# that size themselves by it fit in memory.
_MAX_SERIES_LIMIT = 10**7


def _validate_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must match [a-zA-Z_:][a-zA-Z0-9_:]*, got {name!r}")
    return name


def _validate_labelnames(labelnames: Iterable[str], reserved: tuple[str, ...]) -> tuple:
    # A bare str is iterable too, but would become one label per character.
    if isinstance(labelnames, (str, bytes)) or not isinstance(labelnames, Iterable):
        raise TypeError(
            "labelnames must be an iterable of str such as a tuple, got "
            f"{type(labelnames).__name__} {labelnames!r}"
        )
    names = tuple(labelnames)
    for label in names:
        if not isinstance(label, str) or not _LABEL_NAME.match(label):
            raise ValueError(
                f"label names must match [a-zA-Z_][a-zA-Z0-9_]*, got {label!r}"
            )
        if label.startswith("__") or label in reserved:
            raise ValueError(
                f"label name {label!r} is reserved; the reserved names are "
                f"those starting with '__' and {reserved!r}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"label names must be distinct, got {names!r}")
    return names


def _validate_max_series(max_series: object) -> int:
    if isinstance(max_series, bool) or not isinstance(max_series, int):
        raise TypeError(
            f"max_series must be a positive int, got {type(max_series).__name__}"
        )
    if not 1 <= max_series <= _MAX_SERIES_LIMIT:
        raise ValueError(
            f"max_series must be a positive int of at most {_MAX_SERIES_LIMIT}, "
            f"got {max_series!r}"
        )
    return max_series


def _validate_buckets(buckets: object) -> object:
    # The C type checks order and finiteness; this names the argument when
    # an item is not a number at all.
    if buckets is None:
        return None
    if isinstance(buckets, (str, bytes)) or not isinstance(buckets, Iterable):
        raise TypeError(
            f"buckets must be an iterable of numbers, got {type(buckets).__name__}"
        )
    bounds = list(buckets)
    for index, bound in enumerate(bounds):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise TypeError(
                f"buckets[{index}] must be a number, got {type(bound).__name__}"
            )
    return bounds


class _Timer:
    """Context manager and decorator that observes the elapsed seconds."""

    __slots__ = ("_observe", "_start")

    def __init__(self, observe):
        self._observe = observe
        self._start = 0.0

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info):
        self._observe(time.perf_counter() - self._start)

    def __call__(self, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._observe(time.perf_counter() - start)

        timed.__wrapped__ = function
        timed.__name__ = getattr(function, "__name__", "timed")
        timed.__doc__ = getattr(function, "__doc__", None)
        return timed


class Histogram:
    """A histogram whose ``observe`` only updates C atomics.

    ``Histogram(name, documentation, labelnames=(), *, buckets=None,
    max_series=1000, registry=REGISTRY)`` registers itself with
    ``registry`` (pass ``None`` to skip) like a ``prometheus_client``
    metric.  ``buckets`` are the upper bounds (default: the Prometheus
    defaults, 5 ms to 10 s); a trailing ``+Inf`` may be given and is always
    implied.  With ``labelnames``, call ``labels(*values).observe(v)``; keep
    the child from ``labels()`` in hot code to skip the lookup.  At most
    ``max_series`` label combinations are accepted, after which
    ``labels()`` raises ``ValueError``.

    Observing takes no lock, so it is safe from any thread and from signal
    and GC callbacks.  Unlike ``prometheus_client``, there is no ``remove()``
    or ``clear()``: series live as long as the histogram.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        buckets: Sequence[float] | None = None,
        max_series: int = 1000,
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.name = _validate_name(name)
        self.documentation = str(documentation)
        labelnames = _validate_labelnames(labelnames, reserved=("le",))
        self._histogram = _core.Histogram(
            labelnames=labelnames,
            buckets=_validate_buckets(buckets),
            max_series=_validate_max_series(max_series),
        )
        # Instance attributes, so that a hot-path call is one dict lookup
        # followed by a C call.
        self.observe = self._histogram.observe
        self.labels = self._histogram.labels
        self._le = [floatToGoString(b) for b in self._histogram.bounds] + ["+Inf"]
        if registry is not None:
            registry.register(self)

    @property
    def labelnames(self) -> tuple:
        return self._histogram.labelnames

    @property
    def buckets(self) -> tuple:
        """Upper bucket bounds, without the implied +Inf."""
        return self._histogram.bounds

    def time(self) -> _Timer:
        """Time a block (``with h.time():``) or a function (``@h.time()``)."""
        return _Timer(self.observe)

    def describe(self) -> list[Metric]:
        return [
            HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        ]

    def collect(self) -> list[Metric]:
        family = HistogramMetricFamily(
            self.name, self.documentation, labels=self.labelnames
        )
        for values, cumulative, total in self._histogram._collect_series():
            family.add_metric(
                list(values), list(zip(self._le, cumulative, strict=True)), total
            )
        return [family]


class Counter:
    """A monotonic counter whose ``inc`` only updates a C atomic.

    ``Counter(name, documentation, labelnames=(), *, max_series=1000,
    registry=REGISTRY)``; the exported name gets the ``_total`` suffix
    (given or not), as in ``prometheus_client``.  ``inc(amount=1)`` takes a
    non-negative number; whole amounts are one atomic add.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        max_series: int = 1000,
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        name = _validate_name(name)
        if name.endswith("_total"):
            name = name[: -len("_total")]
        self.name = name
        self.documentation = str(documentation)
        labelnames = _validate_labelnames(labelnames, reserved=())
        self._counter = _core.Counter(
            labelnames=labelnames, max_series=_validate_max_series(max_series)
        )
        self.inc = self._counter.inc
        self.labels = self._counter.labels
        if registry is not None:
            registry.register(self)

    @property
    def labelnames(self) -> tuple:
        return self._counter.labelnames

    def describe(self) -> list[Metric]:
        return [
            CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        ]

    def collect(self) -> list[Metric]:
        family = CounterMetricFamily(
            self.name, self.documentation, labels=self.labelnames
        )
        for values, value in self._counter._collect_series():
            family.add_metric(list(values), value)
        return [family]
