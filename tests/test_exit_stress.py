"""Processes that use pools, caches and the sampler exit cleanly in every way.

The default suite runs a small sample; the full run of 200 processes is
marked slow.  tests/stress/exit_stress.py describes the exit modes.
"""

import io
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "stress"))
import exit_stress


def run_and_check(count, time_limit):
    out = io.StringIO()
    counts, failures, elapsed = exit_stress.run_stress(
        count, jobs=3, timeout=20.0, time_limit=time_limit, out=out
    )
    assert failures == [], out.getvalue()
    assert sum(passed for passed, _ in counts.values()) == count, out.getvalue()
    assert elapsed < time_limit, out.getvalue()
    for mode, (passed, _) in counts.items():
        assert passed >= count // len(exit_stress.MODES), (mode, out.getvalue())


def test_exit_modes_sample():
    run_and_check(len(exit_stress.MODES) * 4, time_limit=60.0)


@pytest.mark.slow
def test_exit_modes_200_processes():
    run_and_check(200, time_limit=150.0)
