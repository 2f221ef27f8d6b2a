"""The demo's HTTP API: a Starlette application around a PlayerService.

Routes:

- ``GET /players?limit=&offset=``: a page of players in id order (limit
  defaults to 20 and is capped at 100);
- ``GET /players/{id}``: one player;
- ``POST /match`` with ``{"player_id": ID, "count": N}``: the N best
  opponents (default 10, at most 50), scored on the WorkerPool;
- ``GET /metrics``: Prometheus text exposition;
- ``GET /healthz``: ``{"status": "ok"}``.

When the matchmaking queue is full, ``POST /match`` gets 503 with
``Retry-After: 1`` instead of waiting.

Every error is a JSON object ``{"error": MESSAGE}``.  Bad input gets a 400,
404 or 413 response and never reaches the log as a traceback.
"""

import asyncio
import json

import prometheus_client
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pygamesvc.demo.matchmaking import DEFAULT_MATCH_COUNT
from pygamesvc.demo.service import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MatchQueueFullError,
    UnknownPlayerError,
)
from pygamesvc.metrics import ASGIMetricsMiddleware

__all__ = ["create_app"]

# The largest POST /match body read; a match request needs about 40 bytes.
MAX_BODY_BYTES = 64 * 1024

# The largest player id and offset accepted: longer digit strings cannot be
# a row id or a useful offset, and int() of a huge string costs time, so the
# parser rejects them before converting.
_MAX_DIGITS = 18
MAX_ID = 10**_MAX_DIGITS - 1
# Shown in a message in place of a longer rejected value.
_MAX_ECHO_CHARS = 40


class BadRequest(Exception):
    """Invalid client input; the HTTP layer turns it into an error response."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _error(status, message):
    return JSONResponse({"error": message}, status_code=status)


def _echo(text):
    """Return ``repr(text)``, shortened for a message if it is long."""
    if len(text) <= _MAX_ECHO_CHARS:
        return repr(text)
    return f"{text[:_MAX_ECHO_CHARS]!r}... ({len(text)} characters)"


def _parse_non_negative(name, text, *, cap=None):
    """Return ``text`` as an int from 0 to MAX_ID or raise BadRequest naming ``name``.

    With ``cap``, a value above it, however many digits, returns ``cap``.
    """
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(f"{name} must be a non-negative integer, got {_echo(text)}")
    digits = text.lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        if cap is not None:
            return cap
        raise BadRequest(
            f"{name} must be a non-negative integer at most {MAX_ID}, got {_echo(text)}"
        )
    value = int(digits)
    if cap is not None and value > cap:
        return cap
    return value


def _query_int(request, name, default, *, cap=None):
    text = request.query_params.get(name)
    if text is None:
        return default
    return _parse_non_negative(name, text, cap=cap)


def create_app(service, *, registry=prometheus_client.REGISTRY, request_metrics=True):
    """Return the ASGI app serving ``service`` (already started).

    ``registry`` is the prometheus_client registry that ``GET /metrics``
    exposes.  With ``request_metrics`` the app is wrapped in
    ASGIMetricsMiddleware, which records every request's duration under
    its route template (``/players/{player_id}``) into that registry.
    """

    async def list_players(request):
        try:
            limit = _query_int(request, "limit", DEFAULT_PAGE_SIZE, cap=MAX_PAGE_SIZE)
            offset = _query_int(request, "offset", 0)
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        page = service.cached_page(limit, offset)
        if page is None:
            page = await run_in_threadpool(service.list_players, limit, offset)
        return Response(page.body, media_type="application/json")

    async def get_player(request):
        text = request.path_params["player_id"]
        try:
            player_id = _parse_non_negative("id", text)
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        player = service.cached_player(player_id)
        if player is None:
            try:
                player = await run_in_threadpool(service.get_player, player_id)
            except UnknownPlayerError as exc:
                return _error(404, str(exc))
        return JSONResponse(player.to_dict())

    async def match(request):
        try:
            player_id, count = _parse_match_body(await _read_body(request))
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        try:
            future = service.submit_match(player_id, count)
        except UnknownPlayerError as exc:
            return _error(404, str(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        except MatchQueueFullError as exc:
            response = _error(503, str(exc))
            response.headers["Retry-After"] = "1"
            return response
        opponents = await asyncio.wrap_future(future)
        return JSONResponse({"player_id": player_id, "opponents": opponents})

    async def metrics(request):
        body = prometheus_client.generate_latest(registry)
        return Response(body, media_type=prometheus_client.CONTENT_TYPE_LATEST)

    async def healthz(request):
        return JSONResponse({"status": "ok", "players": service.total})

    async def http_error(request, exc):
        return _error(exc.status_code, exc.detail)

    routes = [
        Route("/players", list_players, methods=["GET"]),
        Route("/players/{player_id}", get_player, methods=["GET"]),
        Route("/match", match, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    if request_metrics:
        return ASGIMetricsMiddleware(app, registry=registry)
    return app


async def _read_body(request):
    """Return the request body, or raise BadRequest (413) past MAX_BODY_BYTES."""
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(
                f"request body must be at most {MAX_BODY_BYTES} bytes", status=413
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_match_body(raw):
    """Return (player_id, count) from a POST /match body or raise BadRequest."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest(
            f"request body must be a JSON object, got {type(body).__name__}"
        )
    if "player_id" not in body:
        raise BadRequest("missing required field player_id")
    player_id = body["player_id"]
    if type(player_id) is not int or player_id < 0:
        raise BadRequest(f"player_id must be a non-negative integer, got {player_id!r}")
    count = body.get("count", DEFAULT_MATCH_COUNT)
    if type(count) is not int:
        raise BadRequest(f"count must be an integer, got {count!r}")
    return player_id, count
