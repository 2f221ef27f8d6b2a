"""Metrics: C histogram vs prometheus_client, middleware cost, sampler CPU.

Run:  python -m pytest benchmarks/bench_metrics.py --benchmark-json=metrics.json
      python benchmarks/ratios.py metrics.json

Every benchmark in a group runs the same number of operations per round, so
the ratio of medians is the ratio of per-operation costs.  The middleware
groups call the ASGI or WSGI app directly, without a server, so that the
difference to the bare app is the middleware's own cost per request.
"""

import asyncio
import glob
import os
import time

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

from pygamesvc import WorkerPool, _core
from pygamesvc.metrics import (
    ASGIMetricsMiddleware,
    Histogram,
    WSGIMetricsMiddleware,
    start_metrics_collector,
)

OBSERVATIONS = 100_000
REQUESTS = 5_000
TICKS = 1_000


# --- observe --------------------------------------------------------------


def observe_loop(observe):
    for _ in range(OBSERVATIONS):
        observe(0.042)


def observe_labels_loop(histogram):
    for _ in range(OBSERVATIONS):
        histogram.labels("GET", "/items/{id}").observe(0.042)


@pytest.mark.benchmark(group="observe: 100k calls, no labels")
def test_observe_pygamesvc(benchmark):
    histogram = Histogram("bench_seconds", "b", registry=None)
    benchmark.pedantic(
        observe_loop, args=(histogram.observe,), rounds=10, warmup_rounds=1
    )


@pytest.mark.benchmark(group="observe: 100k calls, no labels")
def test_observe_prometheus_client(benchmark):
    histogram = prometheus_client.Histogram("bench_seconds", "b", registry=None)
    benchmark.pedantic(
        observe_loop, args=(histogram.observe,), rounds=10, warmup_rounds=1
    )


@pytest.mark.benchmark(group="observe: 100k calls, labels() each time")
def test_observe_labels_pygamesvc(benchmark):
    histogram = Histogram("bench_seconds", "b", ["method", "handler"], registry=None)
    benchmark.pedantic(
        observe_labels_loop, args=(histogram,), rounds=10, warmup_rounds=1
    )


@pytest.mark.benchmark(group="observe: 100k calls, labels() each time")
def test_observe_labels_prometheus_client(benchmark):
    histogram = prometheus_client.Histogram(
        "bench_seconds", "b", ["method", "handler"], registry=None
    )
    benchmark.pedantic(
        observe_labels_loop, args=(histogram,), rounds=10, warmup_rounds=1
    )


@pytest.mark.benchmark(group="observe: 100k calls, child kept")
def test_observe_child_pygamesvc(benchmark):
    histogram = Histogram("bench_seconds", "b", ["method", "handler"], registry=None)
    child = histogram.labels("GET", "/items/{id}")
    benchmark.pedantic(observe_loop, args=(child.observe,), rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="observe: 100k calls, child kept")
def test_observe_child_prometheus_client(benchmark):
    histogram = prometheus_client.Histogram(
        "bench_seconds", "b", ["method", "handler"], registry=None
    )
    child = histogram.labels("GET", "/items/{id}")
    benchmark.pedantic(observe_loop, args=(child.observe,), rounds=10, warmup_rounds=1)


# --- ASGI middleware --------------------------------------------------------


def starlette_app():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request):
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/items/{item_id}", item)])


SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/items/42",
    "raw_path": b"/items/42",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message):
    pass


def run_asgi(app):
    async def requests():
        for _ in range(REQUESTS):
            await app(dict(SCOPE), receive, send)

    asyncio.run(requests())


def asgi_group(benchmark, app):
    run_asgi(app)  # build routes and series before timing
    benchmark.pedantic(run_asgi, args=(app,), rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="ASGI: 5k requests to Starlette, no server")
def test_asgi_bare(benchmark):
    asgi_group(benchmark, starlette_app())


@pytest.mark.benchmark(group="ASGI: 5k requests to Starlette, no server")
def test_asgi_pygamesvc(benchmark):
    asgi_group(
        benchmark, ASGIMetricsMiddleware(starlette_app(), registry=CollectorRegistry())
    )


@pytest.mark.benchmark(group="ASGI: 5k requests to Starlette, no server")
def test_asgi_starlette_exporter(benchmark):
    from starlette_exporter import PrometheusMiddleware

    app = starlette_app()
    # group_paths gives the same route-template labels as pygamesvc.
    app.add_middleware(PrometheusMiddleware, group_paths=True, app_name="bench")
    asgi_group(benchmark, app)


@pytest.mark.benchmark(group="ASGI: 5k requests to Starlette, no server")
def test_asgi_instrumentator(benchmark):
    from prometheus_fastapi_instrumentator import Instrumentator

    app = starlette_app()
    Instrumentator(registry=CollectorRegistry()).instrument(app)
    asgi_group(benchmark, app)


# --- WSGI middleware --------------------------------------------------------


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


ENVIRON = {"REQUEST_METHOD": "GET", "PATH_INFO": "/items/42"}


def start_response(status, headers, exc_info=None):
    pass


def run_wsgi(app):
    for _ in range(REQUESTS):
        body = app(ENVIRON, start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()


@pytest.mark.benchmark(group="WSGI: 5k requests, no server")
def test_wsgi_bare(benchmark):
    benchmark.pedantic(run_wsgi, args=(wsgi_app,), rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="WSGI: 5k requests, no server")
def test_wsgi_pygamesvc(benchmark):
    app = WSGIMetricsMiddleware(
        wsgi_app, registry=CollectorRegistry(), handler_label=lambda e: "/items/{id}"
    )
    benchmark.pedantic(run_wsgi, args=(app,), rounds=10, warmup_rounds=1)


# --- sampler ----------------------------------------------------------------


@pytest.fixture
def pools():
    created = [WorkerPool(2, name=f"bench-{i}") for i in range(4)]
    yield created
    for pool in created:
        pool.close()


def run_ticks():
    tick = _core._sampler_tick
    for _ in range(TICKS):
        tick()


@pytest.mark.benchmark(group="sampler: 1k ticks, 4 pools")
def test_sampler_tick(benchmark, pools):
    benchmark.pedantic(run_ticks, rounds=5, warmup_rounds=1)
    # One tick per interval: the fraction of one core at a 1 s interval.
    benchmark.extra_info["core_fraction_at_1s"] = benchmark.stats.stats.median / TICKS


def sampler_thread_cpu_seconds():
    """CPU seconds of the thread named pgs:sampler, from the scheduler's
    nanosecond run time (schedstat) rather than the 10 ms ticks of stat."""
    for task in glob.glob("/proc/self/task/*"):
        with open(f"{task}/comm") as f:
            if f.read().strip() != "pgs:sampler":
                continue
        with open(f"{task}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    raise AssertionError("no pgs:sampler thread")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc")
def test_sampler_thread_cpu(pools):
    """Run the real thread at 10 ms for 3 s and scale its CPU time to 1 s."""
    registry = CollectorRegistry()
    interval, seconds = 0.01, 3.0
    with start_metrics_collector(interval=interval, registry=registry) as handle:
        assert handle.wait_for_ticks(1, timeout=10)  # the thread has named itself
        start_cpu = sampler_thread_cpu_seconds()
        start_ticks = _core._sampler_ticks()
        time.sleep(seconds)
        cpu = sampler_thread_cpu_seconds() - start_cpu
        ticks = _core._sampler_ticks() - start_ticks
    per_tick = cpu / max(ticks, 1)
    print(
        f"\nsampler thread: {ticks} ticks, {cpu:.3f} s CPU, "
        f"{per_tick * 1e6:.1f} us per tick, {per_tick * 100:.4f} % of a core at 1 s"
    )
    assert ticks > seconds / interval / 2
    assert per_tick < 0.001  # target: < 0.1 % of a core at a 1 s interval
