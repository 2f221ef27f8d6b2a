"""Test tooling: leak checks, ns/op and allocs/op budgets, load runs.

These are plain functions that work in any test runner; the pytest plugin
(:mod:`pygamesvc.pytest_plugin`) wraps them in fixtures, markers and
command-line options.
"""

from pygamesvc.testing.budget import (
    DEFAULT_MARGIN,
    AllocationCount,
    BudgetExceeded,
    Measurement,
    check_budget,
    count_allocations,
    default_margin,
    measure,
)
from pygamesvc.testing.leaks import (
    LeakedThread,
    LeakError,
    LeakReport,
    Snapshot,
    check_leaks,
    find_leaks,
    snapshot,
)
from pygamesvc.testing.load import LoadResult, run_load

__all__ = [
    "DEFAULT_MARGIN",
    "AllocationCount",
    "BudgetExceeded",
    "LeakError",
    "LeakReport",
    "LeakedThread",
    "LoadResult",
    "Measurement",
    "Snapshot",
    "check_budget",
    "check_leaks",
    "count_allocations",
    "default_margin",
    "find_leaks",
    "measure",
    "run_load",
    "snapshot",
]
