"""ASGI and WSGI middleware behind real servers on 127.0.0.1."""

import socket
import threading
import time
import uuid
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pygamesvc.metrics import ASGIMetricsMiddleware, HTTPMetrics, WSGIMetricsMiddleware

httpx = pytest.importorskip("httpx")
starlette_applications = pytest.importorskip("starlette.applications")
uvicorn = pytest.importorskip("uvicorn")
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402


def http_samples(registry):
    """Return {(sample name, frozenset(labels)): value} for the HTTP series."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if family.name in ("http_request_duration_seconds", "http_requests"):
            for sample in family.samples:
                out[sample.name, frozenset(sample.labels.items())] = sample.value
    return out


def count(samples, handler, method="GET"):
    key = (
        "http_request_duration_seconds_count",
        frozenset({"handler": handler, "method": method}.items()),
    )
    return samples.get(key, 0)


def requests_total(samples, handler, status, method="GET"):
    key = (
        "http_requests_total",
        frozenset({"handler": handler, "method": method, "status": status}.items()),
    )
    return samples.get(key, 0)


def handler_values(samples):
    return {
        dict(labels)["handler"]
        for name, labels in samples
        if name == "http_requests_total"
    }


# --- ASGI: Starlette under uvicorn ------------------------------------------


async def item(request):
    return PlainTextResponse(request.path_params["item_id"])


async def boom(request):
    raise RuntimeError("handler failed on purpose")


async def created(request):
    return PlainTextResponse("made", status_code=201)


def starlette_app():
    return starlette_applications.Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Route("/boom", boom),
            Route("/make", created, methods=["POST"]),
        ]
    )


def new_client(base_url):
    # One connection per request: with keep-alive, uvicorn's separate
    # header and body writes meet the client's delayed ACK and each request
    # takes about 40 ms.
    return httpx.Client(base_url=base_url, headers={"Connection": "close"})


class ServerThread:
    """uvicorn.Server on a pre-bound 127.0.0.1 socket, run in a thread."""

    def __init__(self, app):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="critical", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}
        )

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.005)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc_info):
        self.server.should_exit = True
        self.thread.join(30)
        self.socket.close()


def test_asgi_records_route_templates():
    registry = CollectorRegistry()
    app = ASGIMetricsMiddleware(starlette_app(), registry=registry)
    with ServerThread(app) as base, new_client(base) as client:
        for item_id in ("1", "2", "abc"):
            assert client.get(f"/items/{item_id}").text == item_id
        assert client.post("/make").status_code == 201
        assert client.get("/boom").status_code == 500
        assert client.get("/nowhere").status_code == 404
    samples = http_samples(registry)
    assert count(samples, "/items/{item_id}") == 3
    assert requests_total(samples, "/items/{item_id}", "2xx") == 3
    assert requests_total(samples, "/make", "2xx", method="POST") == 1
    assert requests_total(samples, "/boom", "5xx") == 1
    assert requests_total(samples, "unmatched", "4xx") == 1
    assert not any("/items/1" in values for values in handler_values(samples))


def test_asgi_random_path_flood_stays_bounded():
    registry = CollectorRegistry()
    # Label by raw path on purpose, the worst case the cap must contain.
    app = ASGIMetricsMiddleware(
        starlette_app(),
        registry=registry,
        handler_label=lambda scope: scope["path"],
        max_handlers=5,
    )
    with ServerThread(app) as base, new_client(base) as client:
        for _ in range(200):
            client.get(f"/items/{uuid.uuid4().hex}")
    samples = http_samples(registry)
    handlers = handler_values(samples)
    assert len(handlers) == 6  # five kept paths and "other"
    assert "other" in handlers
    assert requests_total(samples, "other", "2xx") == 195
    series = [
        name for name, _ in samples if name == "http_request_duration_seconds_count"
    ]
    assert len(series) == 6


def test_asgi_passes_other_scopes_through():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    middleware = ASGIMetricsMiddleware(app, registry=CollectorRegistry())
    import asyncio

    asyncio.run(middleware({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]


# --- WSGI: wsgiref.simple_server --------------------------------------------


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/players/"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"player ", path.rsplit("/", 1)[1].encode()]
    if path == "/fail":
        raise RuntimeError("handler failed on purpose")
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


def player_route(environ):
    path = environ["PATH_INFO"]
    return "/players/{id}" if path.startswith("/players/") else path


class WSGIServerThread:
    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, WSGIServer, QuietHandler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}
        )

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_port}"

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.thread.join(30)
        self.server.server_close()


def test_wsgi_records_handler_from_function(capsys):
    registry = CollectorRegistry()
    app = WSGIMetricsMiddleware(wsgi_app, registry=registry, handler_label=player_route)
    with WSGIServerThread(app) as base, httpx.Client(base_url=base) as client:
        for player in ("7", "8"):
            assert client.get(f"/players/{player}").text == f"player {player}"
        assert client.delete("/players/9").status_code == 200
        assert client.get("/fail").status_code == 500
        assert client.get("/missing").status_code == 404
    samples = http_samples(registry)
    assert count(samples, "/players/{id}") == 2
    assert requests_total(samples, "/players/{id}", "2xx", method="DELETE") == 1
    assert requests_total(samples, "/fail", "5xx") == 1
    assert requests_total(samples, "/missing", "4xx") == 1
    assert "handler failed on purpose" in capsys.readouterr().err


def test_wsgi_random_path_flood_stays_bounded():
    registry = CollectorRegistry()
    app = WSGIMetricsMiddleware(wsgi_app, registry=registry, max_handlers=5)
    with WSGIServerThread(app) as base, httpx.Client(base_url=base) as client:
        for _ in range(200):
            client.get(f"/{uuid.uuid4().hex}", headers={"Connection": "close"})
        client.request("BREW", "/teapot")
    samples = http_samples(registry)
    handlers = handler_values(samples)
    assert len(handlers) == 6
    assert requests_total(samples, "other", "4xx") == 195
    assert requests_total(samples, "other", "4xx", method="other") == 1


def test_wsgi_records_when_body_closed():
    registry = CollectorRegistry()
    app = WSGIMetricsMiddleware(wsgi_app, registry=registry)
    statuses = []
    body = app(
        {"PATH_INFO": "/players/1", "REQUEST_METHOD": "GET"},
        lambda status, headers, exc_info=None: statuses.append(status),
    )
    assert b"".join(body) == b"player 1"
    assert count(http_samples(registry), "/players/1") == 0
    body.close()
    body.close()
    assert count(http_samples(registry), "/players/1") == 1
    assert statuses == ["200 OK"]


def test_http_metrics_shared_per_registry():
    registry = CollectorRegistry()
    first = WSGIMetricsMiddleware(wsgi_app, registry=registry, max_handlers=3)
    second = ASGIMetricsMiddleware(None, registry=registry, max_handlers=3)
    assert first.metrics is second.metrics
    with pytest.raises(ValueError, match="already records HTTP metrics"):
        WSGIMetricsMiddleware(wsgi_app, registry=registry, max_handlers=4)
    assert HTTPMetrics.for_registry(CollectorRegistry()) is not first.metrics


@pytest.mark.parametrize(
    "max_handlers, error", [(0, ValueError), (True, TypeError), ("5", TypeError)]
)
def test_http_metrics_rejects_bad_cap(max_handlers, error):
    with pytest.raises(error, match="max_handlers"):
        HTTPMetrics(CollectorRegistry(), max_handlers=max_handlers)
