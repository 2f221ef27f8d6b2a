"""fork() while a pool is busy, a cache is sweeping and the sampler is running.

Each scenario runs in a fresh interpreter, so the forks happen in a process
whose only threads are the ones the scenario starts, never pytest's.
"""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SWEEPER_WAITING_AT_FORK = r"""
import os, signal, time
from pygamesvc import TTLCache

cache = TTLCache(100, 60, sweep_interval=0.002)
cache.set("short", 1, 0.001)
deadline = time.monotonic() + 10
while len(cache) and time.monotonic() < deadline:
    time.sleep(0.001)
assert len(cache) == 0  # the sweeper ran, and now waits for its next tick
for number in range(5):
    pid = os.fork()
    if pid == 0:
        signal.alarm(10)  # a hang ends the child with SIGALRM
        cache["b"] = 2  # the first store replaces the parent's sweeper
        assert cache._sweeper_running
        cache.close()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status), flush=True)
    time.sleep(0.003)
cache.close()
"""


@pytest.mark.forks
def test_fork_child_replaces_waiting_sweeper():
    # Regression: freeing the parent's sweeper in the child destroyed a
    # condition variable that the parent's (vanished) thread waited on,
    # and glibc's pthread_cond_destroy blocked forever.
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SWEEPER_WAITING_AT_FORK)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=ROOT, PYTHONFAULTHANDLER="1"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["child 0"] * 5, result.stderr
