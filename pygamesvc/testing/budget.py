"""ns/op and allocs/op of a callable, and budgets on both.

:func:`measure` works like Go's ``testing.B``: it calls the function in a
loop, growing the iteration count until one run lasts at least
``min_time`` seconds, and reports the time per call.  The loop runs in C,
so it adds neither allocations nor much time per call.

Allocations per call come from a separate run with an allocator hook
(``PyMem_SetAllocator`` on the RAW, MEM and OBJ domains).  It counts the
malloc, calloc and realloc calls of the measuring thread only, so work
done by other threads is not counted.  The hook forwards to whatever allocator
is installed, tracemalloc's included, and is removed after the run.
"""

import gc
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pygamesvc import _core

__all__ = [
    "DEFAULT_MARGIN",
    "MARGIN_ENV",
    "AllocationCount",
    "BudgetExceeded",
    "Measurement",
    "check_budget",
    "count_allocations",
    "default_margin",
    "measure",
]

MARGIN_ENV = "PYGAMESVC_BUDGET_MARGIN"

# Timing budgets pass while ns/op <= budget * margin.  Comparing the best of
# several runs filters most noise, and the margin absorbs what remains on a
# busy shared machine (CI runners, laptops on battery).
DEFAULT_MARGIN = 1.5

_MAX_ITERATIONS = 1_000_000_000
_MAX_GROWTH = 100  # never multiply the iteration count by more per step


@dataclass(frozen=True)
class Measurement:
    """Cost of one call, averaged over a calibrated loop."""

    ns_per_op: float  # best run of `repeat`
    allocs_per_op: float | None  # None when allocations were not counted
    iterations: int  # calls per run
    allocs: int | None = None  # allocator calls during the counted run

    def __str__(self) -> str:
        text = f"{_format_number(self.ns_per_op)} ns/op"
        if self.allocs_per_op is not None:
            text += f", {_format_number(self.allocs_per_op)} allocs/op"
        return text + f" ({self.iterations} iterations)"


class BudgetExceeded(AssertionError):
    """A measured cost is over its budget; the message names each breach."""

    def __init__(self, message: str, measurement: Measurement):
        super().__init__(message)
        self.measurement = measurement


class AllocationCount:
    """Result of :func:`count_allocations`; ``count`` is set on exit."""

    count: int | None = None

    def __repr__(self) -> str:
        return f"<AllocationCount count={self.count}>"


def _format_number(value: float) -> str:
    if value == int(value) or value >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}"


def default_margin() -> float:
    """Return the margin from $PYGAMESVC_BUDGET_MARGIN, else DEFAULT_MARGIN."""
    text = os.environ.get(MARGIN_ENV)
    if not text:
        return DEFAULT_MARGIN
    try:
        margin = float(text)
    except ValueError:
        margin = math.nan
    if not margin >= 1.0:
        raise ValueError(
            f"{MARGIN_ENV} must be a number >= 1.0 (a factor on timing "
            f"budgets), got {text!r}"
        )
    return margin


@contextmanager
def count_allocations() -> Iterator[AllocationCount]:
    """Count the allocator calls the current thread makes inside the block.

    The count includes what the interpreter allocates to run the block
    itself, so prefer :func:`measure` for a per-call figure.  Counts nest on
    one thread (an outer count includes the inner ones), but only one
    thread can count at a time: starting on a second raises RuntimeError.
    """
    result = AllocationCount()
    token = _core._alloc_count_start()
    try:
        yield result
    finally:
        result.count = _core._alloc_count_stop(token)


def _next_iterations(previous: int, elapsed_ns: int, goal_ns: int) -> int:
    # Predict from the last run, aim 20% past the goal, and grow at least
    # by one and at most _MAX_GROWTH-fold (the rule of Go's testing.B).
    predicted = goal_ns * previous // max(elapsed_ns, 1)
    predicted += predicted // 5
    predicted = min(predicted, previous * _MAX_GROWTH)
    predicted = max(predicted, previous + 1)
    return min(predicted, _MAX_ITERATIONS)


def _check_positive(name: str, value, kind=float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if kind is int and value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")


def measure(
    fn: Callable[[], object],
    *,
    min_time: float = 0.1,
    repeat: int = 3,
    count_allocs: bool = True,
) -> Measurement:
    """Measure ns/op and allocs/op of ``fn()``.

    The iteration count grows until one run takes ``min_time`` seconds;
    then the loop runs ``repeat`` times in all and the fastest run gives
    ns/op.  With ``count_allocs``, one more run of the same length counts
    allocator calls, with the cyclic garbage collector paused so that a
    collection cannot add or hide allocations.  Call arguments can be bound
    with ``functools.partial`` or a lambda; note that a call made through
    either may itself allocate (a partial with keyword arguments builds a
    dict per call).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    _check_positive("min_time", min_time)
    _check_positive("repeat", repeat, int)
    goal_ns = int(min_time * 1e9)

    iterations = 1
    elapsed_ns, _ = _core._loop(fn, iterations)
    while elapsed_ns < goal_ns and iterations < _MAX_ITERATIONS:
        iterations = _next_iterations(iterations, elapsed_ns, goal_ns)
        elapsed_ns, _ = _core._loop(fn, iterations)
    best_ns = elapsed_ns
    for _ in range(int(repeat) - 1):
        elapsed_ns, _ = _core._loop(fn, iterations)
        best_ns = min(best_ns, elapsed_ns)

    allocs = None
    allocs_per_op = None
    if count_allocs:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            _, allocs = _core._loop(fn, iterations, count_allocs=True)
        finally:
            if was_enabled:
                gc.enable()
        allocs_per_op = allocs / iterations
    return Measurement(best_ns / iterations, allocs_per_op, iterations, allocs)


def check_budget(
    fn: Callable[[], object],
    ns_per_op: float | None = None,
    allocs_per_op: float | None = None,
    *,
    margin: float | None = None,
    min_time: float = 0.1,
    repeat: int = 3,
) -> Measurement:
    """Measure ``fn()`` and raise :class:`BudgetExceeded` if it is over budget.

    A timing budget passes while ns/op <= ``ns_per_op * margin``; ``margin``
    defaults to :func:`default_margin` (1.5, or $PYGAMESVC_BUDGET_MARGIN).
    Allocation counts are exact, so ``allocs_per_op`` gets no margin.
    Returns the measurement when every budget holds.
    """
    if ns_per_op is None and allocs_per_op is None:
        raise TypeError("check_budget needs ns_per_op, allocs_per_op or both")
    if ns_per_op is not None:
        _check_positive("ns_per_op", ns_per_op)
    if allocs_per_op is not None:
        if isinstance(allocs_per_op, bool) or not isinstance(
            allocs_per_op, (int, float)
        ):
            raise TypeError(
                f"allocs_per_op must be a number, got {type(allocs_per_op).__name__}"
            )
        if not allocs_per_op >= 0:
            raise ValueError(f"allocs_per_op must be >= 0, got {allocs_per_op!r}")
    if margin is None:
        margin = default_margin()
    elif isinstance(margin, bool) or not isinstance(margin, (int, float)):
        raise TypeError(f"margin must be a number, got {type(margin).__name__}")
    elif not margin >= 1.0:
        raise ValueError(f"margin must be >= 1.0, got {margin!r}")

    result = measure(
        fn,
        min_time=min_time,
        repeat=repeat,
        count_allocs=allocs_per_op is not None,
    )
    breaches = []
    if ns_per_op is not None and result.ns_per_op > ns_per_op * margin:
        breaches.append(
            f"Performance regression: {_format_number(result.ns_per_op)} ns/op "
            f"(budget: {_format_number(ns_per_op)} ns/op); the limit with "
            f"margin {margin:g}x is {_format_number(ns_per_op * margin)} ns/op"
        )
    if allocs_per_op is not None and result.allocs_per_op > allocs_per_op:
        breaches.append(
            f"Allocation regression: {_format_number(result.allocs_per_op)} "
            f"allocs/op (budget: {_format_number(allocs_per_op)} allocs/op)"
        )
    if breaches:
        raise BudgetExceeded("\n".join(breaches), result)
    return result
