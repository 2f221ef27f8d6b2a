"""ASGI and WSGI middleware recording request durations in C histograms.

Both record ``http_request_duration_seconds{handler, method}`` and
``http_requests_total{handler, method, status}`` where ``status`` is the
status class (``2xx`` ... ``5xx``).  ``handler`` is the route template
when the framework exposes one, or what the ``handler_label`` function
returns.  At most ``max_handlers`` distinct handler values are kept.  A
request with a new value after that is recorded under ``"other"``, so a
flood of random paths cannot create unbounded series.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any, ClassVar

from prometheus_client.registry import REGISTRY, CollectorRegistry

from pygamesvc.metrics._types import Counter, Histogram, _validate_buckets

__all__ = ["ASGIMetricsMiddleware", "HTTPMetrics", "WSGIMetricsMiddleware"]

OVERFLOW_HANDLER = "other"
UNMATCHED_HANDLER = "unmatched"
OTHER_METHOD = "other"
_METHODS = frozenset(
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
)
_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# Each handler value costs one series per method and status class.
_MAX_HANDLERS_LIMIT = 100_000


def _check_handler_label(handler_label: object) -> None:
    if handler_label is not None and not callable(handler_label):
        raise TypeError(
            "handler_label must be callable or None, got "
            f"{type(handler_label).__name__}"
        )


class HTTPMetrics:
    """The two HTTP series and the handler cap, shared by every middleware
    that records into one registry.

    Use :meth:`for_registry` to get the shared instance; building a second
    one for the same registry fails because the names are taken.
    """

    _by_registry: ClassVar[dict[int, tuple[CollectorRegistry, HTTPMetrics]]] = {}
    _by_registry_lock = threading.Lock()

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        max_handlers: int = 100,
        buckets: Sequence[float] | None = None,
    ) -> None:
        if isinstance(max_handlers, bool) or not isinstance(max_handlers, int):
            raise TypeError(
                f"max_handlers must be an int, got {type(max_handlers).__name__}"
            )
        if not 1 <= max_handlers <= _MAX_HANDLERS_LIMIT:
            raise ValueError(
                f"max_handlers must be from 1 to {_MAX_HANDLERS_LIMIT}, "
                f"got {max_handlers}"
            )
        self.max_handlers = max_handlers
        self.buckets = _validate_buckets(buckets)
        if self.buckets is not None:
            self.buckets = tuple(self.buckets)
        # Room for every kept handler, the two fixed handler values, and
        # every method value.
        handler_values = max_handlers + 2
        method_values = len(_METHODS) + 1
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Duration of HTTP requests from the first byte received to the "
            "last byte sent",
            ("handler", "method"),
            buckets=buckets,
            max_series=handler_values * method_values,
            registry=registry,
        )
        self.requests = Counter(
            "http_requests",
            "HTTP requests by handler, method and status class",
            ("handler", "method", "status"),
            max_series=handler_values * method_values * len(_STATUS_CLASSES),
            registry=registry,
        )
        self._handlers: set[str] = set()
        self._children: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_registry(
        cls,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        max_handlers: int = 100,
        buckets: Sequence[float] | None = None,
    ) -> HTTPMetrics:
        """Return the instance for ``registry``, creating it on first use.

        Later calls must ask for the same ``max_handlers`` and ``buckets``.
        """
        key = id(registry)
        with cls._by_registry_lock:
            entry = cls._by_registry.get(key)
            if entry is None or entry[0] is not registry:
                metrics = cls(registry, max_handlers=max_handlers, buckets=buckets)
                # Keeping the registry in the entry keeps its id unique.
                cls._by_registry[key] = (registry, metrics)
                return metrics
        metrics = entry[1]
        requested = None if buckets is None else tuple(buckets)
        if max_handlers != metrics.max_handlers or requested != metrics.buckets:
            raise ValueError(
                "this registry already records HTTP metrics with "
                f"max_handlers={metrics.max_handlers} and buckets="
                f"{metrics.buckets!r}; got max_handlers={max_handlers} and "
                f"buckets={requested!r}; pass the same values or another "
                "registry"
            )
        return metrics

    def observe(self, handler: str, method: str, status: int, seconds: float) -> None:
        """Record one request; status is the HTTP status code."""
        key = (handler, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children_for(handler, method, status)
        children[0].observe(seconds)
        children[1].inc()

    def _children_for(self, handler: str, method: str, status: int) -> tuple:
        key = (handler, method, status)
        if not isinstance(handler, str):
            handler = UNMATCHED_HANDLER if handler is None else str(handler)
        if method not in _METHODS:
            method = OTHER_METHOD
        status_class = (
            _STATUS_CLASSES[status // 100 - 1]
            if isinstance(status, int) and 100 <= status < 600
            else "5xx"
        )
        with self._lock:
            if handler not in self._handlers:
                if len(self._handlers) < self.max_handlers:
                    self._handlers.add(handler)
                elif handler != UNMATCHED_HANDLER:
                    handler = OVERFLOW_HANDLER
            children = (
                self.duration.labels(handler, method),
                self.requests.labels(handler, method, status_class),
            )
            # Only keys that kept their own handler value are cached, so
            # overflowing requests cannot grow this dict either.  The
            # method and status checks above make the rest of the key
            # bounded too.
            if handler == key[0] and method == key[1]:
                self._children[key] = children
        return children


def _starlette_route(scope: dict) -> str | None:
    """Return the route template that Starlette's router stored, if any."""
    route = scope.get("route")
    if route is not None:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
    if "router" in scope:
        return UNMATCHED_HANDLER  # routed, but no route matched
    return None


def default_asgi_handler(scope: dict) -> str:
    """Starlette's route template (``/items/{id}``), ``"unmatched"`` when
    the router found no route, or the raw path for apps without a router."""
    # NOTE: inside a Mount, Starlette stores the inner route, so the label
    # is the template relative to the mount point.
    label = _starlette_route(scope)
    return label if label is not None else scope.get("path", "")


def default_wsgi_handler(environ: dict) -> str:
    """The raw PATH_INFO; WSGI carries no route template, so pass your own
    ``handler_label`` function for frameworks that have one."""
    return environ.get("PATH_INFO", "")


class _MetricsMiddleware:
    """The constructor that the ASGI and WSGI middleware share.

    A subclass sets ``_default_handler_label``, the ``handler_label`` used
    when the caller passes none.
    """

    _default_handler_label: Callable[[dict], str]

    def __init__(
        self,
        app: Callable,
        *,
        registry: CollectorRegistry | None = REGISTRY,
        handler_label: Callable[[dict], str] | None = None,
        max_handlers: int = 100,
        buckets: Sequence[float] | None = None,
    ) -> None:
        _check_handler_label(handler_label)
        self.app = app
        self.metrics = HTTPMetrics.for_registry(
            registry, max_handlers=max_handlers, buckets=buckets
        )
        self.handler_label = handler_label or self._default_handler_label


class ASGIMetricsMiddleware(_MetricsMiddleware):
    """ASGI middleware recording each HTTP request's duration and status.

    ``ASGIMetricsMiddleware(app, *, registry=REGISTRY, handler_label=None,
    max_handlers=100, buckets=None)``.  ``handler_label(scope)`` runs after
    the app returned, so it can read what the router stored in the scope; the
    default is :func:`default_asgi_handler`.  Non-HTTP scopes (websocket,
    lifespan) pass through untouched.  The duration runs until the app
    returns, which for a streaming response is after its last chunk.
    """

    _default_handler_label = staticmethod(default_asgi_handler)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = perf_counter()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            seconds = perf_counter() - start
            self.metrics.observe(
                self.handler_label(scope), scope["method"], status, seconds
            )


class WSGIMetricsMiddleware(_MetricsMiddleware):
    """WSGI middleware recording each request's duration and status.

    ``WSGIMetricsMiddleware(app, *, registry=REGISTRY, handler_label=None,
    max_handlers=100, buckets=None)``.  ``handler_label(environ)`` runs
    after the response body was consumed; the default is the raw
    ``PATH_INFO`` (capped by ``max_handlers``).  The duration ends when the
    server closes the response iterable, after the last chunk was sent.
    """

    _default_handler_label = staticmethod(default_wsgi_handler)

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        start = perf_counter()
        status = [500]

        def start_response_and_note_status(status_line, headers, exc_info=None):
            try:
                status[0] = int(status_line[:3])
            except ValueError:
                status[0] = 500
            return start_response(status_line, headers, exc_info)

        try:
            body = self.app(environ, start_response_and_note_status)
        except BaseException:
            self._record(environ, status[0], start)
            raise
        return _ClosingBody(body, self, environ, status, start)

    def _record(self, environ: dict, status: int, start: float) -> None:
        self.metrics.observe(
            self.handler_label(environ),
            environ.get("REQUEST_METHOD", ""),
            status,
            perf_counter() - start,
        )


class _ClosingBody:
    """Response iterable that records the request when the server closes it."""

    __slots__ = ("_body", "_done", "_environ", "_middleware", "_start", "_status")

    def __init__(self, body, middleware, environ, status, start):
        self._body = body
        self._middleware = middleware
        self._environ = environ
        self._status = status
        self._start = start
        self._done = False

    def __iter__(self):
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if not self._done:
                self._done = True
                self._middleware._record(self._environ, self._status[0], self._start)
