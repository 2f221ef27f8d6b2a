"""pytest plugin of pygamesvc: leak checks, ns/op and allocs/op budgets.

Registered through the ``pytest11`` entry point, so installing pygamesvc
enables it.  What it adds (see ``pytest --help`` and ``pytest --markers``):

Leak checks
    ``--leak-check`` (ini ``leak_check``) checks every test; the
    ``leak_check`` marker or fixture checks one test.  After the test's
    teardown, threads that were not there before its setup and pygamesvc
    pools, caches and samplers that are still open fail the test as an
    error at teardown.  Threads and resources that a fixture of class,
    module, package or session scope creates are left to that fixture.
    ``--leak-check-session`` (ini ``leak_check_session``) runs one check at
    the end of the whole run against the state at its start, after every
    fixture is torn down, and makes the run fail if anything leaked.
    Thread names matching ``--leak-check-ignore`` / ``leak_check_ignore``
    patterns are never reported.

Budgets
    ``@pytest.mark.budget(ns_per_op=..., allocs_per_op=...)`` runs the test
    body in a calibrated loop and fails when it costs more; the ``budget``
    fixture does the same for any callable.  Timing budgets get a margin
    (``--budget-margin``, ini ``budget_margin``, $PYGAMESVC_BUDGET_MARGIN;
    1.5 by default); allocation counts are exact and get none.

pytest-benchmark
    In a test that uses the ``benchmark`` fixture, the benchmarked call's
    allocs/op is stored in ``benchmark.extra_info["allocs_per_op"]``
    (turn off with ini ``benchmark_allocs = false``).
"""

import functools
import inspect
import itertools
import threading
from dataclasses import dataclass, field

import pytest

from pygamesvc import _core
from pygamesvc.testing import budget as _budget
from pygamesvc.testing import leaks as _leaks

_STATE = pytest.StashKey["_PluginState"]()
_ITEM_LEAK_CHECK = pytest.StashKey["LeakCheck"]()

_LEAK_MARKER = (
    "leak_check(enabled=True, *, ignore=(), timeout=None): check this test "
    "for leaked threads and open pygamesvc pools, caches and samplers; "
    "ignore holds thread-name patterns, timeout is seconds to wait for "
    "exiting threads; leak_check(False) turns off --leak-check for the test."
)
_BUDGET_MARKER = (
    "budget(ns_per_op=None, allocs_per_op=None, *, margin=None, "
    "min_time=0.1): run the test body in a calibrated loop and fail when "
    "ns/op exceeds ns_per_op times the margin or allocs/op exceeds "
    "allocs_per_op."
)


def pytest_addoption(parser):
    group = parser.getgroup("pygamesvc", "pygamesvc leak checks and budgets")
    group.addoption(
        "--leak-check",
        action="store_true",
        default=None,
        help="check every test for leaked threads and open pygamesvc "
        "pools, caches and samplers (ini: leak_check).",
    )
    group.addoption(
        "--leak-check-session",
        action="store_true",
        default=None,
        help="check for leaks once at the end of the run, after all "
        "fixtures are torn down (ini: leak_check_session).",
    )
    group.addoption(
        "--leak-check-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a leak check waits for threads to exit before it "
        f"fails (ini: leak_check_timeout; default {_leaks.DEFAULT_TIMEOUT}).",
    )
    group.addoption(
        "--leak-check-ignore",
        action="append",
        default=[],
        metavar="PATTERN",
        help="shell-style pattern of thread names that leak checks ignore; "
        "may be repeated (ini: leak_check_ignore, one per line).",
    )
    group.addoption(
        "--budget-margin",
        type=float,
        default=None,
        metavar="FACTOR",
        help="factor (>= 1.0) applied to ns/op budgets before they are "
        "compared (ini: budget_margin; env: PYGAMESVC_BUDGET_MARGIN; "
        f"default {_budget.DEFAULT_MARGIN}).",
    )
    parser.addini(
        "leak_check", "check every test for leaks (bool)", type="bool", default=False
    )
    parser.addini(
        "leak_check_session",
        "check for leaks once at the end of the run (bool)",
        type="bool",
        default=False,
    )
    parser.addini(
        "leak_check_timeout",
        "seconds a leak check waits for threads to exit",
        default=str(_leaks.DEFAULT_TIMEOUT),
    )
    parser.addini(
        "leak_check_ignore",
        "thread-name patterns that leak checks ignore, one per line",
        type="linelist",
        default=[],
    )
    parser.addini(
        "leak_check_ignore_preexisting",
        "the session check ignores threads that existed when the session "
        "started (bool, default true)",
        type="bool",
        default=True,
    )
    parser.addini(
        "budget_margin", "factor applied to ns/op budgets (>= 1.0)", default=""
    )
    parser.addini(
        "benchmark_allocs",
        "add allocs_per_op to pytest-benchmark's extra_info (bool)",
        type="bool",
        default=True,
    )


def _read_float(config, option: str, ini: str, minimum: float) -> float | None:
    value = config.getoption(option)
    source = "--" + option.replace("_", "-")
    if value is None:
        text = config.getini(ini)
        if not text:
            return None
        source = f"ini option {ini}"
        try:
            value = float(text)
        except ValueError:
            raise pytest.UsageError(
                f"{source} must be a number, got {text!r}"
            ) from None
    if not value >= minimum:
        raise pytest.UsageError(f"{source} must be >= {minimum}, got {value!r}")
    return value


@dataclass
class _PluginState:
    """Settings read once per run, and what the run has collected."""

    leak_check_all: bool
    leak_check_session: bool
    timeout: float
    ignore: tuple[str, ...]
    ignore_preexisting: bool
    margin: float
    benchmark_allocs: bool
    # Threads and resources created by fixtures broader than one test.
    fixture_owned: _leaks.Snapshot = field(
        default_factory=lambda: _leaks.Snapshot(frozenset(), frozenset(), frozenset())
    )
    session_baseline: _leaks.Snapshot | None = None
    session_report: _leaks.LeakReport | None = None
    measurements: list[tuple[str, _budget.Measurement]] = field(default_factory=list)

    @classmethod
    def from_config(cls, config) -> "_PluginState":
        timeout = _read_float(config, "leak_check_timeout", "leak_check_timeout", 0.0)
        margin = _read_float(config, "budget_margin", "budget_margin", 1.0)
        ignore = tuple(config.getini("leak_check_ignore")) + tuple(
            config.getoption("leak_check_ignore")
        )
        if margin is None:
            try:
                margin = _budget.default_margin()
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None
        return cls(
            leak_check_all=bool(
                config.getoption("leak_check") or config.getini("leak_check")
            ),
            leak_check_session=bool(
                config.getoption("leak_check_session")
                or config.getini("leak_check_session")
            ),
            timeout=_leaks.DEFAULT_TIMEOUT if timeout is None else timeout,
            ignore=ignore,
            ignore_preexisting=config.getini("leak_check_ignore_preexisting"),
            margin=margin,
            benchmark_allocs=config.getini("benchmark_allocs"),
        )


def pytest_configure(config):
    config.addinivalue_line("markers", _LEAK_MARKER)
    config.addinivalue_line("markers", _BUDGET_MARKER)
    config.stash[_STATE] = _PluginState.from_config(config)


# ---------------------------------------------------------------------------
# Leak checks


class LeakCheck:
    """Leak-check settings of one test; the ``leak_check`` fixture's value."""

    def __init__(self, ignore, timeout: float):
        self.patterns: list[str] = list(ignore)
        self.timeout = timeout
        self.baseline: _leaks.Snapshot | None = None

    def ignore(self, *patterns: str) -> None:
        """Ignore threads whose names match any of the shell-style patterns."""
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise TypeError(
                    f"ignore patterns must be str, got {type(pattern).__name__}"
                )
        self.patterns.extend(patterns)


def _leak_check_args(enabled=True, *, ignore=(), timeout=None):
    if isinstance(ignore, str):
        ignore = (ignore,)
    return bool(enabled), tuple(ignore), timeout


def _leak_check_for(item, state: _PluginState) -> LeakCheck | None:
    """Return the item's leak-check settings, or None when it is not checked."""
    marker = item.get_closest_marker("leak_check")
    ignore: tuple[str, ...] = ()
    timeout = None
    if marker is not None:
        enabled, ignore, timeout = _leak_check_args(*marker.args, **marker.kwargs)
    else:
        enabled = state.leak_check_all or "leak_check" in item.fixturenames
    if not enabled:
        return None
    if timeout is None:
        timeout = state.timeout
    return LeakCheck(state.ignore + ignore, timeout)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    # Threads that a broader fixture starts belong to it, not to the test
    # that happened to set it up first; the session check still sees them.
    if fixturedef.scope == "function":
        return (yield)
    before = _leaks.snapshot()
    try:
        return (yield)
    finally:
        state = request.config.stash[_STATE]
        owned = _leaks.snapshot().added_since(before)
        state.fixture_owned = state.fixture_owned.merged(owned)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    check = _leak_check_for(item, item.config.stash[_STATE])
    if check is not None:
        check.baseline = _leaks.snapshot()
        item.stash[_ITEM_LEAK_CHECK] = check
    return (yield)


@pytest.fixture
def leak_check(request) -> LeakCheck:
    """Check this test for leaks; call ``leak_check.ignore(pattern)`` to
    ignore threads by name."""
    check = request.node.stash.get(_ITEM_LEAK_CHECK, None)
    if check is None:
        # Turned off by leak_check(False); hand out settings that do nothing.
        state = request.config.stash[_STATE]
        check = LeakCheck(state.ignore, state.timeout)
    return check


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    # tryfirst makes this the outermost wrapper, so the check runs after
    # every other teardown step.
    result = yield
    check = item.stash.get(_ITEM_LEAK_CHECK, None)
    if check is not None and check.baseline is not None:
        state = item.config.stash[_STATE]
        baseline = check.baseline.merged(state.fixture_owned)
        report = _leaks.find_leaks(
            baseline, ignore=check.patterns, timeout=check.timeout
        )
        if report:
            pytest.fail(report.format(), pytrace=False)
    return result


def pytest_sessionstart(session):
    state = session.config.stash[_STATE]
    if not state.leak_check_session:
        return
    if state.ignore_preexisting:
        state.session_baseline = _leaks.snapshot()
    else:
        main = threading.main_thread()
        os_threads = None
        if _leaks.list_os_threads() is not None:
            os_threads = frozenset({main.native_id})
        state.session_baseline = _leaks.Snapshot(
            frozenset({main}), os_threads, frozenset()
        )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    # trylast: pytest's runner tears down the remaining fixtures in its own
    # pytest_sessionfinish, which has to run first.
    state = session.config.stash[_STATE]
    if state.session_baseline is None:
        return
    report = _leaks.find_leaks(
        state.session_baseline, ignore=state.ignore, timeout=state.timeout
    )
    if report:
        state.session_report = report
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ---------------------------------------------------------------------------
# Budgets


def _budget_args(
    ns_per_op=None, allocs_per_op=None, *, margin=None, min_time=0.1, repeat=3
):
    return {
        "ns_per_op": ns_per_op,
        "allocs_per_op": allocs_per_op,
        "margin": margin,
        "min_time": min_time,
        "repeat": repeat,
    }


def _record(item, state: _PluginState, measurement: _budget.Measurement) -> None:
    state.measurements.append((item.nodeid, measurement))
    item.user_properties.append(("ns_per_op", measurement.ns_per_op))
    if measurement.allocs_per_op is not None:
        item.user_properties.append(("allocs_per_op", measurement.allocs_per_op))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    marker = pyfuncitem.get_closest_marker("budget")
    if marker is None:
        return None
    state = pyfuncitem.config.stash[_STATE]
    try:
        kwargs = _budget_args(*marker.args, **marker.kwargs)
    except TypeError as exc:
        kwargs = None
        error = f"invalid budget marker: {exc}"
    if kwargs is None:
        pytest.fail(error, pytrace=False)
    if kwargs["margin"] is None:
        kwargs["margin"] = state.margin
    function = pyfuncitem.obj
    if inspect.iscoroutinefunction(function):
        pytest.fail("the budget marker cannot run async tests", pytrace=False)
    # Positional arguments: a partial with keywords would build a dict per
    # call and add it to allocs/op.
    args = [pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames]
    call = functools.partial(function, *args) if args else function
    breach = None
    try:
        measurement = _budget.check_budget(call, **kwargs)
    except _budget.BudgetExceeded as exc:
        measurement = exc.measurement
        breach = str(exc)
    _record(pyfuncitem, state, measurement)
    if breach is not None:
        pytest.fail(breach, pytrace=False)
    return True


@pytest.fixture
def budget(request):
    """Return ``check(fn, ns_per_op=None, allocs_per_op=None, *, margin=None,
    min_time=0.1, repeat=3)``, which measures ``fn()`` and raises
    BudgetExceeded when it is over budget; the margin defaults to the
    run's budget margin."""
    state = request.config.stash[_STATE]

    def check(fn, ns_per_op=None, allocs_per_op=None, **kwargs):
        __tracebackhide__ = True
        if kwargs.get("margin") is None:
            kwargs["margin"] = state.margin
        try:
            measurement = _budget.check_budget(fn, ns_per_op, allocs_per_op, **kwargs)
        except _budget.BudgetExceeded as exc:
            _record(request.node, state, exc.measurement)
            raise
        _record(request.node, state, measurement)
        return measurement

    return check


# ---------------------------------------------------------------------------
# pytest-benchmark


def _add_allocs_to_benchmark(fixture) -> None:
    """Make the benchmark fixture store allocs/op in its extra_info.

    The count covers one call that pytest-benchmark makes anyway, so the
    benchmarked function runs exactly as often as without this plugin and
    no timed round runs with the hook, with one exception.
    ``benchmark(fn)`` and ``benchmark.pedantic(..., iterations=N > 1)``
    make one untimed call after the rounds for the return value, and that
    call is counted.  ``pedantic`` with ``iterations=1`` has no such call,
    so the last warmup round is counted, or the last timed round when there
    are no warmup rounds (its time then includes the hook).  Nothing is
    counted while cProfile runs, since the profiler allocates too.
    BenchmarkFixture calls its _raw, _raw_pedantic and _make_runner methods
    through self, so overriding them on the instance is enough.
    """
    raw = fixture._raw
    raw_pedantic = fixture._raw_pedantic
    make_runner = fixture._make_runner

    def counting(function):
        def call(*args, **kwargs):
            if fixture.cprofile:
                return function(*args, **kwargs)
            result, allocs = _core._count_call(function, args, kwargs)
            fixture.extra_info["allocs_per_op"] = allocs
            return result

        return call

    def counted_raw(function, *args, **kwargs):
        # Timed rounds get the plain function; the final call is counted.
        fixture._make_runner = lambda _f, a, k: make_runner(function, a, k)
        try:
            return raw(counting(function), *args, **kwargs)
        finally:
            del fixture._make_runner

    def counted_raw_pedantic(target, *args, **kwargs):
        options = inspect.signature(raw_pedantic).bind(target, *args, **kwargs)
        options.apply_defaults()
        iterations = options.arguments["iterations"]
        warmup_rounds = options.arguments["warmup_rounds"]
        rounds = options.arguments["rounds"]
        if not isinstance(iterations, int) or iterations > 1:
            fixture._make_runner = lambda _f, a, k: make_runner(target, a, k)
            options.arguments["target"] = counting(target)
        else:
            counted_round = warmup_rounds - 1 if warmup_rounds else rounds - 1
            runners_made = itertools.count()

            def pick_runner(_f, a, k):
                counted = next(runners_made) == counted_round
                return make_runner(counting(target) if counted else target, a, k)

            fixture._make_runner = pick_runner
        try:
            return raw_pedantic(*options.args, **options.kwargs)
        finally:
            del fixture._make_runner

    fixture._raw = counted_raw
    fixture._raw_pedantic = counted_raw_pedantic


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    state = item.config.stash[_STATE]
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if (
        state.benchmark_allocs
        and fixture is not None
        and hasattr(fixture, "_raw")
        and hasattr(fixture, "extra_info")
    ):
        _add_allocs_to_benchmark(fixture)
    return (yield)


# ---------------------------------------------------------------------------
# Reporting


def pytest_report_header(config):
    state = config.stash[_STATE]
    checks = []
    if state.leak_check_all:
        checks.append("every test")
    if state.leak_check_session:
        checks.append("session")
    if not checks:
        return None
    return (
        f"pygamesvc leak check: {', '.join(checks)} "
        f"(timeout {state.timeout:g} s, ignore {list(state.ignore) or 'nothing'})"
    )


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = config.stash[_STATE]
    if state.measurements:
        terminalreporter.write_sep("-", "pygamesvc budgets")
        for nodeid, measurement in state.measurements:
            terminalreporter.write_line(f"{nodeid}: {measurement}")
    if state.session_report:
        terminalreporter.write_sep("=", "pygamesvc session leak check", red=True)
        terminalreporter.write_line(state.session_report.format())
