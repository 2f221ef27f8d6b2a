"""Start ``python -m pygamesvc demo`` as a child process for the tests.

The child listens on a free loopback port and is stopped by the test; if
the test process dies first, the kernel sends the child SIGTERM
(PR_SET_PDEATHSIG), so no server outlives its test run.
"""

import ctypes
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
_SERVING = re.compile(r"serving (\d+) players? on http://([^:\s]+):(\d+)")
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DemoProcess:
    """A running demo service: its port, its log lines and a way to stop it."""

    def __init__(self, *args, start_timeout=30.0):
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        command = [sys.executable, "-m", "pygamesvc", "demo", "--port", "0", *args]
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent,
        )
        self.log_lines = []
        self.stdout_lines = []
        self.port = None
        self.players = None
        self._serving = threading.Event()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        self._stdout_reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._stdout_reader.start()
        if not self._serving.wait(start_timeout):
            self.kill()
            raise AssertionError(
                f"demo service did not start within {start_timeout} s; log:\n"
                + self.log
            )

    def _read_stderr(self):
        for line in self.process.stderr:
            self.log_lines.append(line)
            match = _SERVING.search(line)
            if match and self.port is None:
                self.players = int(match.group(1))
                self.port = int(match.group(3))
                self._serving.set()
        # The process closed stderr: wake a start() that is still waiting.
        self._serving.set()

    def _read_stdout(self):
        for line in self.process.stdout:
            self.stdout_lines.append(line)

    @property
    def stdout(self):
        return "".join(self.stdout_lines)

    @property
    def log(self):
        return "".join(self.log_lines)

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        """Send one request on a new connection; return (status, headers, body)."""
        if self.port is None:
            raise AssertionError("demo service is not running; log:\n" + self.log)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def get_json(self, path):
        status, _, body = self.request("GET", path)
        return status, json.loads(body)

    def post_json(self, path, payload):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        status, _, raw = self.request(
            "POST", path, body=body, headers={"Content-Type": "application/json"}
        )
        return status, json.loads(raw)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Send ``sig``, wait for the exit and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.wait_exit(timeout)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def wait_exit(self, timeout):
        """Wait for the process to exit by itself and return its status."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"demo process still running after {timeout} s; log:\n" + self.log
            ) from None
        self._stderr_reader.join(5)
        self._stdout_reader.join(5)
        return self.process.returncode
