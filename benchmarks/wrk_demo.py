"""Measure GET /players on the demo service with wrk, with and without the
request metrics middleware.

Usage: python benchmarks/wrk_demo.py [--seconds 5] [--rounds 3]

Each round starts a fresh service on a free loopback port for each variant,
warms it up for one second, runs ``wrk -t2 -c32`` against the same page
and records wrk's requests/s.  The variants alternate so that drift on a
shared machine hits both alike.  Needs the ``wrk`` binary (Debian package
``wrk``) and the ``demo`` extra.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
URL_PATH = "/players?limit=20&offset=0"
_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"demo service on port {port} did not start within {timeout} s")


def run_wrk(port, seconds):
    url = f"http://127.0.0.1:{port}{URL_PATH}"
    output = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    match = _RATE.search(output)
    if match is None:
        raise RuntimeError(f"no Requests/sec line in wrk output:\n{output}")
    return float(match.group(1))


def measure(extra_args, seconds):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    command = [
        sys.executable,
        "-m",
        "pygamesvc",
        "demo",
        "--db",
        ":memory:",
        "--port",
        str(port),
        *extra_args,
    ]
    service = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(port)
        run_wrk(port, 1)
        return run_wrk(port, seconds)
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(20)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=int, default=5, help="wrk duration per run (s)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs per variant")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found; install it with: apt-get install wrk")

    variants = {
        "with middleware": [],
        "without middleware": ["--no-request-metrics"],
    }
    rates = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, extra_args in variants.items():
            rates[name].append(measure(extra_args, args.seconds))
    for name, values in rates.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{name:<20} median {statistics.median(values):>8,.0f} req/s  ({runs})")
    ratio = statistics.median(rates["with middleware"]) / statistics.median(
        rates["without middleware"]
    )
    print(f"with / without: {ratio:.2f}")


if __name__ == "__main__":
    main()
