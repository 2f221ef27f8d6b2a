"""Budgets: the plain functions, the marker and fixture, pytest-benchmark."""

import json
import time

import pytest
from plugin_args import LOAD_PLUGIN

from pygamesvc.testing import BudgetExceeded, check_budget, measure
from pygamesvc.testing.budget import MARGIN_ENV, default_margin

PLUGIN = LOAD_PLUGIN


def spin(ns):
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


# ------------------------------------------------------- plain functions


def test_measure_grows_iterations_to_min_time():
    result = measure(lambda: None, min_time=0.02, repeat=1)
    assert result.iterations > 10_000
    assert result.ns_per_op < 10_000
    assert result.allocs_per_op == 0


def test_measure_slow_call():
    result = measure(lambda: spin(200_000), min_time=0.01, count_allocs=False)
    assert 200_000 <= result.ns_per_op < 20_000_000
    assert result.allocs_per_op is None
    assert "ns/op" in str(result)


def test_check_budget_time_breach_message():
    with pytest.raises(BudgetExceeded) as caught:
        check_budget(lambda: spin(100_000), ns_per_op=1000, margin=1.0, min_time=0.01)
    message = str(caught.value)
    assert message.startswith("Performance regression: ")
    assert " ns/op (budget: 1000 ns/op)" in message
    assert caught.value.measurement.ns_per_op >= 100_000


def test_check_budget_alloc_breach_message():
    a = 1
    with pytest.raises(BudgetExceeded) as caught:
        check_budget(lambda: [a, a, a], allocs_per_op=0, min_time=0.01)
    assert str(caught.value) == (
        "Allocation regression: 1 allocs/op (budget: 0 allocs/op)"
    )


def test_check_budget_both_breaches_listed():
    with pytest.raises(BudgetExceeded) as caught:
        check_budget(
            lambda: [bytes(10) for _ in range(3)] and spin(50_000),
            ns_per_op=10,
            allocs_per_op=1,
            margin=1.0,
            min_time=0.01,
        )
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("Performance regression: ")
    assert lines[1].startswith("Allocation regression: ")


def test_check_budget_within_budget_returns_measurement():
    result = check_budget(lambda: None, ns_per_op=1_000_000, allocs_per_op=0)
    assert result.ns_per_op < 1_000_000


def test_margin_applies_to_time_only():
    # 100 us/op against a 90 us budget passes with margin 2 ...
    check_budget(lambda: spin(100_000), ns_per_op=90_000, margin=2.0, min_time=0.01)
    # ... but allocation budgets take no margin.
    with pytest.raises(BudgetExceeded, match="Allocation regression"):
        check_budget(lambda: bytes(100), allocs_per_op=0, margin=10.0, min_time=0.01)


def test_check_budget_argument_errors():
    with pytest.raises(TypeError, match="needs ns_per_op, allocs_per_op or both"):
        check_budget(lambda: None)
    with pytest.raises(ValueError, match="ns_per_op must be > 0, got -5"):
        check_budget(lambda: None, ns_per_op=-5)
    with pytest.raises(ValueError, match=r"margin must be >= 1\.0, got 0\.5"):
        check_budget(lambda: None, ns_per_op=5, margin=0.5)
    with pytest.raises(TypeError, match="fn must be callable, got int"):
        measure(3)


def test_margin_from_environment(monkeypatch):
    monkeypatch.setenv(MARGIN_ENV, "3")
    assert default_margin() == 3.0
    monkeypatch.setenv(MARGIN_ENV, "fast")
    with pytest.raises(ValueError, match="PYGAMESVC_BUDGET_MARGIN must be"):
        default_margin()
    monkeypatch.delenv(MARGIN_ENV)
    assert default_margin() == 1.5


# ---------------------------------------------------------------- plugin


def test_marker_time_breach_fails(pytester):
    pytester.makepyfile(
        """
        import time
        import pytest

        @pytest.mark.budget(ns_per_op=1000, min_time=0.01)
        def test_slow():
            end = time.perf_counter_ns() + 100_000
            while time.perf_counter_ns() < end:
                pass
        """
    )
    result = pytester.runpytest(*PLUGIN, "--budget-margin=1.0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*Performance regression: * ns/op (budget: 1000 ns/op)*"]
    )


def test_marker_alloc_breach_fails(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.budget(allocs_per_op=2, min_time=0.01)
        def test_allocates():
            [bytes(100) for _ in range(3)]
        """
    )
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*Allocation regression: * allocs/op (budget: 2 allocs/op)*"]
    )


def test_marker_within_budget_passes_with_fixture_args(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def items():
            return [1, 2, 3]

        # sum() allocates one list iterator per call.
        @pytest.mark.budget(ns_per_op=1_000_000, allocs_per_op=1, min_time=0.01)
        def test_sum(items):
            sum(items)
        """
    )
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*pygamesvc budgets*", "*test_sum: * ns/op, 1 allocs/op*"]
    )


def test_budget_fixture(pytester):
    pytester.makepyfile(
        """
        def test_ok(budget):
            result = budget(lambda: None, ns_per_op=1_000_000, allocs_per_op=0)
            assert result.allocs_per_op == 0

        def test_over(budget):
            budget(lambda: bytes(100), allocs_per_op=0, min_time=0.01)
        """
    )
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Allocation regression: 1 allocs/op*"])


def test_budget_margin_ini_validated(pytester):
    pytester.makeini("[pytest]\nbudget_margin = 0.5\n")
    result = pytester.runpytest(*PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*budget_margin must be >= 1.0, got 0.5*"])


def test_budget_margin_env_validated(pytester, monkeypatch):
    monkeypatch.setenv(MARGIN_ENV, "0.5")
    result = pytester.runpytest(*PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*PYGAMESVC_BUDGET_MARGIN must be a number*"])
    assert "INTERNALERROR" not in result.stderr.str()


def test_benchmark_extra_info_gets_allocs(pytester, tmp_path):
    pytester.makepyfile(
        """
        CALLS = []

        def make_list(a, b, c):
            CALLS.append(1)
            return [a, b, c]

        def test_plain(benchmark):
            assert benchmark(make_list, 1, 2, 3) == [1, 2, 3]

        def test_pedantic(benchmark):
            before = len(CALLS)
            benchmark.pedantic(make_list, args=(1, 2, 3), rounds=4, warmup_rounds=1)
            # The count reuses a call that pytest-benchmark makes anyway.
            assert len(CALLS) - before == 5
        """
    )
    output = tmp_path / "bench.json"
    result = pytester.runpytest(*PLUGIN, f"--benchmark-json={output}")
    result.assert_outcomes(passed=2)
    benchmarks = json.loads(output.read_text())["benchmarks"]
    extra = {bench["name"]: bench["extra_info"] for bench in benchmarks}
    # list.append may grow CALLS; the new list's item array is 1 allocation.
    assert extra["test_plain"]["allocs_per_op"] in (1, 2)
    assert extra["test_pedantic"]["allocs_per_op"] in (1, 2)
