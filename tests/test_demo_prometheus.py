"""A real Prometheus server scrapes the demo service on the loopback interface.

Prometheus comes from the Debian package ``prometheus`` (``.ci/run``
installs it).  Without the binary the test is skipped, except under
``CI=true``, where a missing binary is a failure.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from demo_process import DemoProcess, _die_with_parent, free_port

JOB = "pygamesvc-demo"
DEADLINE_SECONDS = 45.0


@pytest.fixture
def prometheus_binary():
    path = shutil.which("prometheus")
    if path is None:
        message = (
            "prometheus binary not found; install it with: apt-get install prometheus"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def demo():
    service = DemoProcess("--db", ":memory:", "--workers", "2")
    yield service
    assert service.stop() == 0, service.log


@pytest.fixture
def prometheus(prometheus_binary, demo, tmp_path):
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{demo.port}']\n"
    )
    process = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    yield f"http://127.0.0.1:{port}", process
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def query(base_url, promql):
    """Run an instant query and return its result vector (empty on any error)."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except OSError:
        return []
    if body.get("status") != "success":
        return []
    return body["data"]["result"]


def wait_for(base_url, process, promql, predicate):
    """Poll ``promql`` until ``predicate(result)`` holds; return the result."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    result = []
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace")
            pytest.fail(
                f"prometheus exited with status {process.returncode}:\n{output}"
            )
        result = query(base_url, promql)
        if predicate(result):
            return result
        time.sleep(0.25)
    pytest.fail(f"{promql!r} did not match within {DEADLINE_SECONDS} s; last: {result}")


def test_prometheus_scrapes_demo(prometheus, demo):
    base_url, process = prometheus
    # Traffic first, so the request series have samples to scrape.
    for path in ("/players", "/players/1", "/healthz"):
        assert demo.request("GET", path)[0] == 200

    up = wait_for(
        base_url,
        process,
        f'up{{job="{JOB}"}}',
        lambda result: bool(result) and result[0]["value"][1] == "1",
    )
    assert up[0]["metric"]["instance"] == f"127.0.0.1:{demo.port}"

    series = wait_for(
        base_url,
        process,
        f'{{job="{JOB}", __name__=~"pygamesvc_.+"}}',
        bool,
    )
    names = {sample["metric"]["__name__"] for sample in series}
    assert all(name.startswith("pygamesvc_") for name in names)
