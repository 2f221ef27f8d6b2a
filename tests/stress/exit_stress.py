"""Start many short-lived processes that use pygamesvc and exit in different ways.

Each child creates two WorkerPools with running and queued tasks, two
TTLCaches with live entries and running sweepers (one of them evicting), a
daemon thread that keeps using both, values whose ``__del__`` re-enters a
cache, and the metrics sampler.  Then it exits in one of these ways:

- ``end``: falls off the end of the script (status 0);
- ``exit``: ``sys.exit(3)`` (status 3);
- ``raise``: an uncaught ``ValueError`` (status 1);
- ``sigterm``: the parent sends SIGTERM and the child's handler calls
  ``sys.exit(5)`` (status 5);
- ``sigint``: the parent sends SIGINT, the default handler raises
  ``KeyboardInterrupt`` and no code catches it.  CPython 3.8+ then ends the
  process with SIGINT itself, so the status is -2 by design;
- ``os_exit``: ``os._exit(7)`` with everything still running (status 7).

For the two signal modes the main thread is blocked somewhere when the
signal arrives: in ``time.sleep``, in ``execute`` on a full queue, in
``wait()``, or in ``get_or_set`` waiting for another thread's factory.

A child passes when it exits with its mode's status within --timeout
seconds, its stderr has no "Fatal Python error", no "Exception ignored" and
no sanitizer report, and, for every mode except ``os_exit``, the pools
finished their queued tasks (the last task prints a line).  Run it with
``python tests/stress/exit_stress.py --count 200``; it prints the counts per
mode and exits 1 if any child failed.
"""

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# mode -> expected return code, as subprocess reports it.
MODES = {
    "end": 0,
    "exit": 3,
    "raise": 1,
    "sigterm": 5,
    "sigint": -signal.SIGINT,
    "os_exit": 7,
}
BLOCKED_IN = ("sleep", "execute", "wait", "get_or_set")
READY = "ready"
DRAINED = "drained"
# Lines that never belong in a child's stderr, whatever the mode.
BAD_STDERR = (
    "Fatal Python error",
    "Exception ignored",
    "Segmentation fault",
    "AddressSanitizer",
    "ThreadSanitizer",
    "runtime error:",
)


# ---------------------------------------------------------------------------
# Child side


def child_main(mode, blocked_in, seed):
    """Build the pools, caches and sampler, then exit as `mode` selects."""
    rng = random.Random(seed)

    from pygamesvc import TTLCache, WorkerPool
    from pygamesvc.metrics import start_metrics_collector

    start_metrics_collector(interval=0.002)
    fast = TTLCache(None, 0.01, sweep_interval=0.002, name="fast")
    bounded = TTLCache(64, 30, sweep_interval=0.005, name="bounded")

    class Reentrant:
        """A value whose finalizer reads a cache, as a real __del__ might."""

        def __del__(self):
            # The cache may have been closed first.
            with contextlib.suppress(RuntimeError):
                bounded.get("probe")

    for i in range(300):
        fast[i] = Reentrant()
        bounded[f"k{i}"] = Reentrant()  # evicts: 300 entries into 64

    busy = WorkerPool(2, 8, name="busy")
    spare = WorkerPool(1, 2, name="spare")
    for _ in range(2 + rng.randrange(6)):
        busy.execute(time.sleep, 0.005 + rng.random() * 0.02)
        spare.try_execute(bounded.get_or_set, rng.randrange(100), Reentrant)
    # Queued last, so it prints only once the queue before it ran.
    busy.execute(os.write, 1, f"{DRAINED}\n".encode())

    def churn():
        # A daemon thread still inside the caches and pools at exit.  It
        # stops when the pools reject tasks because shutdown has started.
        i = 0
        while True:
            i += 1
            fast[i % 500] = Reentrant()
            bounded.get(f"k{i % 400}")
            try:
                spare.try_execute(bounded.pop, f"k{i % 300}", None)
            except RuntimeError:
                return
            time.sleep(0)

    threading.Thread(target=churn, daemon=True).start()

    if mode == "exit":
        sys.exit(3)
    if mode == "raise":
        raise ValueError("uncaught on purpose")
    if mode == "os_exit":
        os._exit(7)
    if mode == "end":
        return
    if mode == "sigterm":
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(5))
    block(blocked_in, busy, bounded)


def block(blocked_in, busy, bounded):
    """Tell the parent to signal, then block until the signal's handler raises."""
    # Tasks that wait for the gate keep the pool busy until well after the
    # signal.  The gate opens after 1 s, so the pool can drain at exit.
    gate = threading.Event()
    threading.Timer(1.0, gate.set).start()
    if blocked_in == "execute":
        # Fill the queue behind the gate so that the next execute blocks.
        busy.execute(gate.wait)
        busy.execute(gate.wait)
        while busy.try_execute(time.sleep, 0.001):
            pass
    elif blocked_in == "get_or_set":
        started = threading.Event()

        def slow_factory():
            started.set()
            time.sleep(1.0)
            return "late"

        threading.Thread(
            target=bounded.get_or_set, args=("slow", slow_factory), daemon=True
        ).start()
        started.wait(10)
    print(READY, flush=True)
    if blocked_in == "sleep":
        time.sleep(60)
    elif blocked_in == "execute":
        busy.execute(time.sleep, 0.001)
        time.sleep(60)
    elif blocked_in == "wait":
        busy.execute(gate.wait)
        busy.wait()
        time.sleep(60)
    else:
        bounded.get_or_set("slow", lambda: "mine")
        time.sleep(60)


# ---------------------------------------------------------------------------
# Parent side


def stop_hung(process):
    """Ask for every thread's traceback, then kill a child that hangs.

    The child runs with PYTHONFAULTHANDLER=1, so SIGABRT makes it write the
    traceback of each thread to stderr, which the failure report shows.
    """
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGABRT)
    time.sleep(2)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def run_one(index, mode, blocked_in, timeout):
    """Run one child; return (mode, blocked_in, failure or None, seconds)."""
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONFAULTHANDLER="1")
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        mode,
        blocked_in,
        str(index),
    ]
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    timer = threading.Timer(timeout, stop_hung, args=(process,))
    timer.start()
    # stderr is drained on a thread, so that a child writing a lot to it
    # never blocks while this thread reads stdout.
    stderr_chunks = []
    stderr_reader = threading.Thread(
        target=lambda: stderr_chunks.append(process.stderr.read())
    )
    stderr_reader.start()
    try:
        stdout_lines = []
        if mode in ("sigterm", "sigint"):
            # The drained line may come before or after the ready line.
            for line in process.stdout:
                stdout_lines.append(line)
                if line.strip() == READY:
                    # Vary where exactly the main thread is when it arrives.
                    time.sleep(random.random() * 0.02)
                    process.send_signal(
                        signal.SIGTERM if mode == "sigterm" else signal.SIGINT
                    )
                    break
        # Read through the same buffered file as above: communicate() would
        # read the pipe directly and miss what the buffer already holds.
        stdout_lines.append(process.stdout.read())
        process.wait()
        stderr_reader.join()
    finally:
        timer.cancel()
        process.stdout.close()
        process.stderr.close()
    stdout, stderr = "".join(stdout_lines), "".join(stderr_chunks)
    seconds = time.monotonic() - start
    return (
        mode,
        blocked_in,
        check_child(mode, process.returncode, stdout, stderr, seconds, timeout),
        seconds,
    )


def check_child(mode, status, stdout, stderr, seconds, timeout):
    """Return why the child failed, or None if it behaved."""
    if seconds >= timeout:
        return f"hung: killed after {timeout} s\n{stderr[-2000:]}"
    if status != MODES[mode]:
        return f"exit status {status}, expected {MODES[mode]}\n{stderr[-2000:]}"
    for marker in BAD_STDERR:
        if marker in stderr:
            return f"stderr contains {marker!r}\n{stderr[-2000:]}"
    if mode in ("end", "exit", "sigterm", "os_exit") and stderr:
        return f"unexpected stderr\n{stderr[-2000:]}"
    if mode != "os_exit" and DRAINED not in stdout.split():
        return "the pool did not run its queued tasks before exit"
    return None


def run_stress(count, jobs, timeout, time_limit, seed=None, out=sys.stdout):
    """Run count children, jobs at a time; return (counts, failures, seconds).

    counts maps each mode to [passed, failed]; failures lists
    (mode, blocked_in, reason).  Children not started before time_limit
    seconds count as failures too.
    """
    rng = random.Random(seed)
    plan = []
    modes = list(MODES)
    for index in range(count):
        mode = modes[index % len(modes)]
        plan.append((index, mode, rng.choice(BLOCKED_IN)))
    counts = {mode: [0, 0] for mode in MODES}
    failures = []
    start = time.monotonic()
    deadline = start + time_limit
    slowest = 0.0

    def guarded(index, mode, blocked_in):
        if time.monotonic() > deadline:
            return mode, blocked_in, "not started: over the time limit", 0.0
        return run_one(index, mode, blocked_in, timeout)

    with ThreadPoolExecutor(max_workers=jobs) as executor:
        results = [executor.submit(guarded, *item) for item in plan]
        for future in results:
            mode, blocked_in, failure, seconds = future.result()
            slowest = max(slowest, seconds)
            if failure is None:
                counts[mode][0] += 1
            else:
                counts[mode][1] += 1
                failures.append((mode, blocked_in, failure))
    elapsed = time.monotonic() - start
    print(f"{'mode':<10}{'status':>8}{'passed':>8}{'failed':>8}", file=out)
    for mode, (passed, failed) in counts.items():
        print(f"{mode:<10}{MODES[mode]:>8}{passed:>8}{failed:>8}", file=out)
    print(
        f"{count} processes, {jobs} at a time, in {elapsed:.1f} s; "
        f"slowest child {slowest:.2f} s (bound {timeout} s)",
        file=out,
    )
    for mode, blocked_in, reason in failures[:10]:
        print(f"FAILED {mode} (blocked in {blocked_in}): {reason}", file=out)
    return counts, failures, elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--count",
        type=int,
        default=200,
        help="number of child processes (default: 200)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=3,
        help="children running at the same time (default: 3)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        help="seconds one child may take before it counts as hung (default: 20)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=150.0,
        help="seconds after which no new child starts; those "
        "left count as failures (default: 150)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed for where signals find the main thread",
    )
    args = parser.parse_args(argv)
    _, failures, elapsed = run_stress(
        args.count, args.jobs, args.timeout, args.time_limit, args.seed
    )
    if elapsed > args.time_limit:
        print(f"FAILED: took {elapsed:.1f} s, over the {args.time_limit} s limit")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        # No sys.exit here: the "end" mode must fall off the end.
        child_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(main())
