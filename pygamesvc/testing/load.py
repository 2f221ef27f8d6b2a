"""Load runs: C concurrent clients x R requests against a callable."""

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pygamesvc.pool import WorkerPool

__all__ = ["LoadResult", "run_load"]


@dataclass(frozen=True)
class LoadResult:
    """Outcome of :func:`run_load`; latencies are in seconds."""

    clients: int
    requests_per_client: int
    total: int
    errors: int
    elapsed_s: float
    requests_per_s: float
    p50: float
    p90: float
    p99: float
    max: float
    first_error: str | None = None  # repr of the first exception seen

    def __str__(self) -> str:
        rows = [
            ("clients x requests", f"{self.clients} x {self.requests_per_client}"),
            ("total requests", f"{self.total}"),
            ("errors", f"{self.errors}"),
            ("elapsed", f"{self.elapsed_s:.3f} s"),
            ("requests/s", f"{self.requests_per_s:,.0f}"),
            ("latency p50", _format_seconds(self.p50)),
            ("latency p90", _format_seconds(self.p90)),
            ("latency p99", _format_seconds(self.p99)),
            ("latency max", _format_seconds(self.max)),
        ]
        if self.first_error is not None:
            rows.append(("first error", self.first_error))
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _format_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} us"


def _percentile(ordered: Sequence[int], percent: float) -> int:
    # Nearest-rank method: the smallest value with percent% at or below it.
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


class _ClientResult:
    __slots__ = ("errors", "finished", "first_error", "latencies")

    def __init__(self) -> None:
        self.latencies: list[int] = []
        self.errors = 0
        self.first_error: BaseException | None = None
        self.finished = 0.0


def run_load(
    fn: Callable[[], object],
    clients: int,
    requests: int,
    *,
    pool: WorkerPool | None = None,
    is_error: Callable[[object], bool] | None = None,
) -> LoadResult:
    """Call ``fn()`` from ``clients`` concurrent clients, ``requests`` times each.

    Each client is a task on a :class:`~pygamesvc.WorkerPool` that makes
    its requests one after another and times each one.  Without ``pool``,
    a pool with one worker per client is created and closed afterwards;
    with a pool, at most ``pool.workers`` clients run at once.  Clients
    start together once all are queued, and the rate counts from that
    start to the last client's end.  A request is an error when ``fn``
    raises an ``Exception`` or when ``is_error(response)`` is true.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    _check_count("clients", clients)
    _check_count("requests", requests)
    if is_error is not None and not callable(is_error):
        raise TypeError(
            f"is_error must be callable or None, got {type(is_error).__name__}"
        )

    start_gate = threading.Event()
    clock = time.perf_counter_ns

    def client() -> _ClientResult:
        result = _ClientResult()
        latencies = result.latencies
        start_gate.wait()
        for _ in range(requests):
            begin = clock()
            try:
                response = fn()
                failed = is_error is not None and is_error(response)
            except Exception as exc:
                failed = True
                if result.first_error is None:
                    result.first_error = exc
            latencies.append(clock() - begin)
            if failed:
                result.errors += 1
        result.finished = clock()
        return result

    own_pool = pool is None
    if own_pool:
        pool = WorkerPool(clients, name="load")
    try:
        futures = [pool.submit(client) for _ in range(clients)]
        started = clock()
        start_gate.set()
        results = [future.result() for future in futures]
    finally:
        start_gate.set()  # let queued clients finish if submitting failed
        if own_pool:
            pool.close()

    latencies = sorted(lat for result in results for lat in result.latencies)
    errors = sum(result.errors for result in results)
    first_error = next(
        (repr(r.first_error) for r in results if r.first_error is not None), None
    )
    elapsed_ns = max(max(result.finished for result in results) - started, 1)
    total = len(latencies)
    return LoadResult(
        clients=clients,
        requests_per_client=requests,
        total=total,
        errors=errors,
        elapsed_s=elapsed_ns / 1e9,
        requests_per_s=total / (elapsed_ns / 1e9),
        p50=_percentile(latencies, 50) / 1e9,
        p90=_percentile(latencies, 90) / 1e9,
        p99=_percentile(latencies, 99) / 1e9,
        max=latencies[-1] / 1e9,
        first_error=first_error,
    )
