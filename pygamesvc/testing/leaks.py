"""Leak checks: threads and pygamesvc resources that outlive a test.

Take a :func:`snapshot` before the code under test and call
:func:`check_leaks` (or :func:`find_leaks`) after it.  Three things count
as leaked: Python threads that were not there before, OS threads that were
not there before (threads started from C, such as WorkerPool workers), and
pools, caches or samplers registered with :mod:`pygamesvc._resources` that
are still open.  Threads that are just exiting get a grace period: the
check retries until ``timeout`` seconds have passed before it reports.
"""

import fnmatch
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field

from pygamesvc import _resources

__all__ = [
    "LeakError",
    "LeakReport",
    "LeakedThread",
    "Snapshot",
    "check_leaks",
    "find_leaks",
    "list_os_threads",
    "snapshot",
]

DEFAULT_TIMEOUT = 1.0

# Frames shown for each leaked Python thread, innermost last.
_STACK_LIMIT = 8
_TASK_DIR = "/proc/self/task"


class LeakError(AssertionError):
    """Raised by :func:`check_leaks`; the message lists every leak."""

    def __init__(self, report: "LeakReport"):
        super().__init__(report.format())
        self.report = report


def list_os_threads() -> dict[int, str] | None:
    """Return {thread id: name} for every OS thread of this process.

    On Linux this reads /proc/self/task, where the name is the kernel's
    15-character thread name.  Elsewhere it falls back to psutil when that
    is installed (ids only, so every name is "").  Returns None when neither
    works, and the OS-level part of the leak check is then skipped.
    """
    try:
        tids = os.listdir(_TASK_DIR)
    except OSError:
        return _list_os_threads_psutil()
    threads = {}
    for tid in tids:
        try:
            with open(f"{_TASK_DIR}/{tid}/comm", encoding="utf-8") as comm:
                threads[int(tid)] = comm.read().rstrip("\n")
        except OSError:
            continue  # the thread exited after listdir
    return threads


def _list_os_threads_psutil() -> dict[int, str] | None:
    try:
        import psutil
    except ImportError:
        return None
    return {thread.id: "" for thread in psutil.Process().threads()}


def _python_threads() -> list[threading.Thread]:
    # A _DummyThread stands for a thread started outside the threading
    # module (a pool worker that called current_thread(), say).  It stays in
    # threading.enumerate() after its thread has exited, so the OS-level
    # check covers those threads instead.
    return [
        thread
        for thread in threading.enumerate()
        if not isinstance(thread, threading._DummyThread)
    ]


@dataclass(frozen=True)
class Snapshot:
    """The threads and open resources that exist at one moment."""

    python_threads: frozenset[threading.Thread]
    os_threads: frozenset[int] | None  # None: not available here
    resources: frozenset[int]  # tokens from pygamesvc._resources

    def merged(self, other: "Snapshot") -> "Snapshot":
        """Return a snapshot that contains the items of both."""
        if self.os_threads is None or other.os_threads is None:
            os_threads = None
        else:
            os_threads = self.os_threads | other.os_threads
        return Snapshot(
            self.python_threads | other.python_threads,
            os_threads,
            self.resources | other.resources,
        )

    def added_since(self, earlier: "Snapshot") -> "Snapshot":
        """Return the items of this snapshot that earlier does not contain."""
        if self.os_threads is None or earlier.os_threads is None:
            os_threads = None
        else:
            os_threads = self.os_threads - earlier.os_threads
        return Snapshot(
            self.python_threads - earlier.python_threads,
            os_threads,
            self.resources - earlier.resources,
        )


def snapshot() -> Snapshot:
    """Record the threads and open pygamesvc resources that exist now."""
    os_threads = list_os_threads()
    return Snapshot(
        frozenset(_python_threads()),
        None if os_threads is None else frozenset(os_threads),
        frozenset(resource.token for resource in _resources.open_resources()),
    )


@dataclass(frozen=True)
class LeakedThread:
    """A thread that was not in the baseline snapshot."""

    name: str
    native_id: int | None
    ident: int | None = None  # Python threads only
    stack: str | None = None  # Python threads only: where it is running

    @property
    def is_python(self) -> bool:
        return self.ident is not None

    def format(self) -> str:
        if not self.is_python:
            return f"OS thread {self.name!r} (native id {self.native_id})"
        line = (
            f"Python thread {self.name!r} "
            f"(ident {self.ident}, native id {self.native_id})"
        )
        if self.stack is None:
            return line + ", not running Python code"
        return line + ", running:\n" + self.stack


@dataclass
class LeakReport:
    """Leaked threads and open resources; false when there are none."""

    threads: list[LeakedThread] = field(default_factory=list)
    resources: list[_resources.OpenResource] = field(default_factory=list)
    waited: float = 0.0  # seconds spent waiting for threads to exit

    def __bool__(self) -> bool:
        return bool(self.threads or self.resources)

    def format(self) -> str:
        """Return a message that names every leaked thread and object."""
        parts = []
        if self.threads:
            parts.append(_plural(len(self.threads), "leaked thread"))
        if self.resources:
            parts.append(_plural(len(self.resources), "open resource"))
        lines = [
            f"Leak check failed: {' and '.join(parts)} "
            f"(after waiting {self.waited:.2f} s)"
        ]
        for thread in self.threads:
            lines.append("  " + thread.format().replace("\n", "\n  "))
        for resource in self.resources:
            lines.append(f"  open {resource.kind}: {resource.obj!r}")
        return "\n".join(lines)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _format_stack(ident: int) -> str | None:
    frame = sys._current_frames().get(ident)
    if frame is None:
        return None
    entries = traceback.extract_stack(frame)[-_STACK_LIMIT:]
    return "".join(traceback.format_list(entries)).rstrip("\n")


def _collect(
    baseline: Snapshot, ignore: "tuple[str, ...]", with_stacks: bool
) -> LeakReport:
    report = LeakReport()
    os_threads = list_os_threads()
    python_native_ids = set()
    for thread in _python_threads():
        python_native_ids.add(thread.native_id)
        if thread in baseline.python_threads or not thread.is_alive():
            continue
        if _matches(thread.name, ignore):
            continue
        stack = _format_stack(thread.ident) if with_stacks else None
        report.threads.append(
            LeakedThread(thread.name, thread.native_id, thread.ident, stack)
        )
    if os_threads is not None and baseline.os_threads is not None:
        for tid, name in sorted(os_threads.items()):
            # Python threads were judged above, by their Thread object.
            if tid in baseline.os_threads or tid in python_native_ids:
                continue
            if not _matches(name, ignore):
                report.threads.append(LeakedThread(name, tid))
    for resource in _resources.open_resources():
        if resource.token not in baseline.resources:
            report.resources.append(resource)
    return report


def find_leaks(
    baseline: Snapshot,
    *,
    ignore: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> LeakReport:
    """Return what leaked since baseline; the report is false if nothing did.

    ``ignore`` holds shell-style patterns (``fnmatch``, case-sensitive)
    matched against thread names: the Python name for Python threads and
    the OS name (``/proc/self/task/*/comm``, at most 15 characters) for
    others.  The check repeats, with growing pauses, until nothing leaks or
    ``timeout`` seconds have passed.
    """
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")
    patterns = tuple(ignore)
    start = time.monotonic()
    deadline = start + timeout
    pause = 0.001
    while True:
        report = _collect(baseline, patterns, with_stacks=False)
        if not report or time.monotonic() >= deadline:
            break
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.05)
    if report:
        # Collect again with stacks, so they show where the threads are now.
        report = _collect(baseline, patterns, with_stacks=True)
    report.waited = time.monotonic() - start
    return report


def check_leaks(
    baseline: Snapshot,
    *,
    ignore: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Raise :class:`LeakError` if anything leaked since baseline.

    Takes the same arguments as :func:`find_leaks`.
    """
    report = find_leaks(baseline, ignore=ignore, timeout=timeout)
    if report:
        raise LeakError(report)
