"""Load runs: run_load's figures, and the project's throughput target."""

import pytest

from pygamesvc import WorkerPool
from pygamesvc.testing import LoadResult, run_load

PLAYERS = {f"p{i}": {"name": f"player {i}", "rating": 1000 + i} for i in range(100)}


def handle_request(request):
    """Serve one parsed request: a dict in, a response dict out."""
    op = request.get("op")
    if op != "get_player":
        return {"status": 400, "error": f"unknown op {op!r}"}
    player = PLAYERS.get(request.get("id"))
    if player is None:
        return {"status": 404, "error": "no such player"}
    return {"status": 200, "player": player}


REQUEST = {"op": "get_player", "id": "p42"}


def test_counts_and_percentiles():
    result = run_load(lambda: handle_request(REQUEST), clients=4, requests=50)
    assert isinstance(result, LoadResult)
    assert result.total == 200
    assert result.errors == 0
    assert result.first_error is None
    assert 0 < result.p50 <= result.p90 <= result.p99 <= result.max
    assert result.requests_per_s > 0


def test_exceptions_and_is_error_count_as_errors():
    calls = iter(range(1_000_000))

    def flaky():
        if next(calls) % 4 == 0:
            raise ConnectionError("dropped")
        return handle_request({"op": "nope"})

    result = run_load(
        flaky, clients=2, requests=20, is_error=lambda r: r["status"] >= 400
    )
    assert result.total == 40
    assert result.errors == 40
    assert result.first_error == "ConnectionError('dropped')"


def test_summary_is_readable():
    result = run_load(lambda: None, clients=2, requests=10)
    text = str(result)
    for label in ("clients x requests", "requests/s", "latency p50", "latency p99"):
        assert label in text
    assert "2 x 10" in text


def test_given_pool_is_left_open():
    with WorkerPool(2, name="load-given") as pool:
        result = run_load(lambda: None, clients=5, requests=3, pool=pool)
        assert not pool.closed
    assert result.total == 15


def test_argument_errors():
    with pytest.raises(ValueError, match="clients must be >= 1, got 0"):
        run_load(lambda: None, clients=0, requests=1)
    with pytest.raises(TypeError, match="requests must be an int, got float"):
        run_load(lambda: None, clients=1, requests=1.5)
    with pytest.raises(TypeError, match="fn must be callable, got str"):
        run_load("handler", clients=1, requests=1)


def test_thousand_clients_throughput(record_property, capsys):
    result = run_load(lambda: handle_request(REQUEST), clients=1000, requests=100)
    record_property("requests_per_s", result.requests_per_s)
    with capsys.disabled():
        print(f"\nload run, in-process handler:\n{result}")
    assert result.total == 100_000
    assert result.errors == 0
    assert result.requests_per_s >= 10_000, str(result)
