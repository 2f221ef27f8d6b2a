"""The leak check: plain functions in-process, the plugin through pytester.

Tests that leak on purpose run in a pytest subprocess, so that their
threads never reach this process (whose own session check would report
them).
"""

import os
import threading

import pytest
from plugin_args import LOAD_PLUGIN

from pygamesvc import WorkerPool
from pygamesvc.testing import LeakError, check_leaks, find_leaks, snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = (*LOAD_PLUGIN, "--leak-check-timeout=0.2")

LEAKY_TEST = """
import threading

def test_leaks_a_thread():
    release = threading.Event()
    threading.Thread(
        target=release.wait, name="leaky-worker", daemon=True
    ).start()
"""

CLEAN_TEST = """
import threading

def test_joins_its_thread():
    thread = threading.Thread(target=lambda: None, name="short-lived")
    thread.start()
    thread.join()
"""


@pytest.fixture
def run_pytest(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", ROOT)

    def run(*args):
        return pytester.runpytest_subprocess(*PLUGIN, *args)

    return run


# ---------------------------------------------------------------- plugin


def test_leaked_thread_fails_and_is_named(pytester, run_pytest):
    pytester.makepyfile(LEAKY_TEST)
    result = run_pytest("--leak-check")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*Leak check failed: 1 leaked thread*",
            "*Python thread 'leaky-worker' (ident *, native id *), running:",
            "*in wait*",
        ]
    )


def test_ignore_option_lets_leak_pass(pytester, run_pytest):
    pytester.makepyfile(LEAKY_TEST)
    result = run_pytest("--leak-check", "--leak-check-ignore=leaky-*")
    result.assert_outcomes(passed=1)


def test_ignore_ini_lets_leak_pass(pytester, run_pytest):
    pytester.makepyfile(LEAKY_TEST)
    pytester.makeini("[pytest]\nleak_check = true\nleak_check_ignore =\n  leaky-*\n")
    result = run_pytest()
    result.assert_outcomes(passed=1)


def test_marker_ignore_lets_leak_pass(pytester, run_pytest):
    pytester.makepyfile(
        "import pytest\n"
        + LEAKY_TEST.replace(
            "def test_", "@pytest.mark.leak_check(ignore=['leaky-*'])\ndef test_"
        )
    )
    result = run_pytest()
    result.assert_outcomes(passed=1)


def test_marker_enables_check(pytester, run_pytest):
    pytester.makepyfile(
        "import pytest\n"
        + LEAKY_TEST.replace("def test_", "@pytest.mark.leak_check\ndef test_")
    )
    result = run_pytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*Python thread 'leaky-worker'*"])


def test_fixture_enables_check_and_ignores(pytester, run_pytest):
    pytester.makepyfile(
        """
        import threading

        def test_leaks(leak_check):
            threading.Thread(
                target=threading.Event().wait, name="leaky-one", daemon=True
            ).start()

        def test_leaks_but_ignored(leak_check):
            leak_check.ignore("leaky-*")
            threading.Thread(
                target=threading.Event().wait, name="leaky-two", daemon=True
            ).start()
        """
    )
    result = run_pytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks*", "*leaky-one*"])
    result.stdout.no_fnmatch_line("*leaky-two*")


def test_marker_false_opts_out(pytester, run_pytest):
    pytester.makepyfile(
        "import pytest\n"
        + LEAKY_TEST.replace("def test_", "@pytest.mark.leak_check(False)\ndef test_")
    )
    result = run_pytest("--leak-check")
    result.assert_outcomes(passed=1)


def test_clean_test_passes(pytester, run_pytest):
    pytester.makepyfile(CLEAN_TEST)
    result = run_pytest("--leak-check", "--leak-check-session")
    result.assert_outcomes(passed=1)
    assert result.ret == 0


def test_open_pool_fails_with_its_threads(pytester, run_pytest):
    pytester.makepyfile(
        """
        from pygamesvc import WorkerPool

        POOLS = []

        def test_forgets_to_close():
            POOLS.append(WorkerPool(2, name="forgotten"))
        """
    )
    result = run_pytest("--leak-check")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*Leak check failed: 2 leaked threads and 1 open resource*",
            "*OS thread 'pgs:forgotten' (native id *)",
            "*OS thread 'pgs:forgotten' (native id *)",
            "*open pool: <WorkerPool name='forgotten' workers=2*open>",
        ]
    )


def test_module_fixture_threads_not_blamed_on_test(pytester, run_pytest):
    pytester.makepyfile(
        """
        import pytest
        from pygamesvc import WorkerPool

        @pytest.fixture(scope="module")
        def pool():
            pool = WorkerPool(2, name="shared")
            yield pool
            pool.close()

        def test_first(pool):
            assert pool.submit(int, "7").result() == 7

        def test_second(pool):
            assert pool.submit(int, "8").result() == 8
        """
    )
    result = run_pytest("--leak-check", "--leak-check-session")
    result.assert_outcomes(passed=2)
    assert result.ret == 0


def test_session_check_fails_run(pytester, run_pytest):
    pytester.makepyfile(LEAKY_TEST)
    result = run_pytest("--leak-check-session")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*pygamesvc session leak check*",
            "Leak check failed: 1 leaked thread*",
            "*Python thread 'leaky-worker'*",
        ]
    )


def test_session_check_leaked_session_fixture(pytester, run_pytest):
    # A session fixture that never closes its pool escapes per-test checks
    # (its threads belong to the fixture) but not the session check.
    pytester.makepyfile(
        """
        import pytest
        from pygamesvc import WorkerPool

        POOLS = []

        @pytest.fixture(scope="session")
        def pool():
            POOLS.append(WorkerPool(1, name="never-closed"))
            return POOLS[-1]

        def test_uses_pool(pool):
            assert pool.submit(int, "1").result() == 1
        """
    )
    result = run_pytest("--leak-check", "--leak-check-session")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*open pool: <WorkerPool name='never-closed'*"])


def test_session_check_preexisting_threads(pytester, run_pytest):
    # A conftest starts a thread before the session; it is ignored unless
    # leak_check_ignore_preexisting is false.
    pytester.makeconftest(
        """
        import threading

        threading.Thread(
            target=threading.Event().wait, name="from-conftest", daemon=True
        ).start()
        """
    )
    pytester.makepyfile(CLEAN_TEST)
    result = run_pytest("--leak-check-session")
    assert result.ret == 0
    pytester.makeini("[pytest]\nleak_check_ignore_preexisting = false\n")
    result = run_pytest("--leak-check-session")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*Python thread 'from-conftest'*"])


def test_help_lists_options(pytester):
    result = pytester.runpytest(*LOAD_PLUGIN, "--help")
    result.stdout.fnmatch_lines(
        [
            "*--leak-check *",
            "*--leak-check-session*",
            "*--leak-check-timeout=SECONDS*",
            "*--leak-check-ignore=PATTERN*",
            "*--budget-margin=FACTOR*",
        ]
    )


def test_markers_listed(pytester):
    result = pytester.runpytest(*LOAD_PLUGIN, "--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.leak_check(enabled=True, *",
            "@pytest.mark.budget(ns_per_op=None, allocs_per_op=None, *",
        ]
    )


def test_invalid_timeout_is_usage_error(pytester):
    pytester.makeini("[pytest]\nleak_check_timeout = soon\n")
    result = pytester.runpytest(*LOAD_PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*ini option leak_check_timeout must be a number, got 'soon'*"]
    )


# ------------------------------------------------------- plain functions


def test_find_leaks_names_thread_and_waits_for_exit():
    baseline = snapshot()
    release = threading.Event()

    def wait_for_release():
        release.wait()

    thread = threading.Thread(target=wait_for_release, name="direct-leak")
    thread.start()
    try:
        report = find_leaks(baseline, timeout=0.05)
        assert [leak.name for leak in report.threads] == ["direct-leak"]
        assert "in wait_for_release" in report.threads[0].stack
        assert "Python thread 'direct-leak'" in report.format()
    finally:
        release.set()
    # The thread exits during the grace period: no leak.
    assert not find_leaks(baseline, timeout=5.0)
    thread.join()


def test_check_leaks_raises_for_open_pool():
    baseline = snapshot()
    pool = WorkerPool(1, name="direct-pool")
    try:
        with pytest.raises(LeakError) as caught:
            check_leaks(baseline, timeout=0.0)
        assert caught.value.report.resources[0].obj is pool
        assert "open pool: <WorkerPool name='direct-pool'" in str(caught.value)
    finally:
        pool.close()
    check_leaks(baseline)


def test_find_leaks_rejects_negative_timeout():
    with pytest.raises(ValueError, match="timeout must be >= 0 seconds, got -1"):
        find_leaks(snapshot(), timeout=-1)
