"""The demo service over real HTTP on a loopback port, bad input included."""

import concurrent.futures
import json
import signal

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from demo_process import DemoProcess

from pygamesvc.demo.service import MAX_PAGE_SIZE
from pygamesvc.demo.storage import DEFAULT_SEED_PLAYERS


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    db = tmp_path_factory.mktemp("demo") / "players.db"
    service = DemoProcess("--db", str(db), "--workers", "2")
    yield service
    status = service.stop(signal.SIGTERM)
    assert status == 0, service.log
    assert "Traceback" not in service.log


def test_seeded_player_count(demo):
    assert demo.players == DEFAULT_SEED_PLAYERS
    status, body = demo.get_json("/healthz")
    assert status == 200
    assert body == {"status": "ok", "players": DEFAULT_SEED_PLAYERS}


def test_list_players_default_page(demo):
    status, body = demo.get_json("/players")
    assert status == 200
    assert body["limit"] == 20
    assert body["offset"] == 0
    assert body["total"] == DEFAULT_SEED_PLAYERS
    assert [p["id"] for p in body["players"]] == list(range(1, 21))
    assert set(body["players"][0]) == {
        "id",
        "name",
        "rating",
        "level",
        "region",
        "last_seen",
    }


def test_list_players_limit_and_offset(demo):
    status, body = demo.get_json("/players?limit=5&offset=10")
    assert status == 200
    assert [p["id"] for p in body["players"]] == [11, 12, 13, 14, 15]


def test_list_players_same_page_twice(demo):
    first = demo.request("GET", "/players?limit=3&offset=7")
    second = demo.request("GET", "/players?limit=3&offset=7")
    assert first[0] == second[0] == 200
    assert first[2] == second[2]


def test_list_players_caps_limit(demo):
    status, body = demo.get_json(f"/players?limit={MAX_PAGE_SIZE * 10}")
    assert status == 200
    assert body["limit"] == MAX_PAGE_SIZE
    assert len(body["players"]) == MAX_PAGE_SIZE


def test_list_players_past_the_end(demo):
    status, body = demo.get_json(f"/players?offset={10**17}")
    assert status == 200
    assert body["players"] == []
    assert body["offset"] == 10**17


@pytest.mark.parametrize("name", ["limit", "offset"])
@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "%201", "1e3"])
def test_list_players_rejects_bad_parameter(demo, name, value):
    status, headers, raw = demo.request("GET", f"/players?{name}={value}")
    assert status == 400
    assert headers["content-type"] == "application/json"
    error = json.loads(raw)["error"]
    assert error.startswith(f"{name} must be a non-negative integer")


def test_get_player(demo):
    status, body = demo.get_json("/players/42")
    assert status == 200
    assert body["id"] == 42
    assert 0 <= body["rating"] <= 4000


def test_get_player_unknown(demo):
    status, body = demo.get_json(f"/players/{DEFAULT_SEED_PLAYERS + 1}")
    assert status == 404
    assert body == {"error": f"player {DEFAULT_SEED_PLAYERS + 1} not found"}


@pytest.mark.parametrize(
    "value", ["abc", "-3", "1.0", pytest.param("9" * 40, id="9x40")]
)
def test_get_player_rejects_bad_id(demo, value):
    status, body = demo.get_json(f"/players/{value}")
    assert status == 400
    assert body["error"].startswith("id must be a non-negative integer")


def test_match_returns_best_opponents(demo):
    status, body = demo.post_json("/match", {"player_id": 7, "count": 5})
    assert status == 200
    assert body["player_id"] == 7
    opponents = body["opponents"]
    assert len(opponents) == 5
    assert 7 not in [o["id"] for o in opponents]
    scores = [o["score"] for o in opponents]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 1 for s in scores)


def test_match_default_count(demo):
    status, body = demo.post_json("/match", {"player_id": 1})
    assert status == 200
    assert len(body["opponents"]) == 10


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"", "request body is not valid JSON"),
        (b"\xff\xfe", "request body is not valid JSON"),
        (b"[1, 2]", "request body must be a JSON object, got list"),
        pytest.param(
            b"[" * 50_000, "request body is nested too deeply", id="deep-nesting"
        ),
        ({}, "missing required field player_id"),
        ({"player_id": None}, "player_id must be a non-negative integer, got None"),
        ({"player_id": "7"}, "player_id must be a non-negative integer, got '7'"),
        ({"player_id": True}, "player_id must be a non-negative integer, got True"),
        ({"player_id": -1}, "player_id must be a non-negative integer, got -1"),
        ({"player_id": 7, "count": "x"}, "count must be an integer, got 'x'"),
        ({"player_id": 7, "count": 0}, "count must be an integer from 1 to 50, got 0"),
        ({"player_id": 7, "count": 51}, "count must be an integer from 1 to 50"),
    ],
)
def test_match_rejects_bad_body(demo, payload, message):
    status, body = demo.post_json("/match", payload)
    assert status == 400
    assert body["error"].startswith(message)


def test_match_rejects_large_body(demo):
    status, body = demo.post_json("/match", b" " * (65 * 1024))
    assert status == 413
    assert "at most 65536 bytes" in body["error"]


def test_match_unknown_player(demo):
    status, body = demo.post_json("/match", {"player_id": 10**9})
    assert status == 404
    assert body == {"error": f"player {10**9} not found"}


def test_unknown_route_is_json_404(demo):
    status, body = demo.get_json("/nowhere")
    assert status == 404
    assert body == {"error": "Not Found"}


def test_wrong_method_is_json_405(demo):
    status, body = demo.post_json("/players", {})
    assert status == 405
    assert body == {"error": "Method Not Allowed"}


def test_metrics_exposition(demo):
    demo.request("GET", "/players")
    status, headers, raw = demo.request("GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    text = raw.decode()
    assert "process_resident_memory_bytes" in text
    assert "python_gc_objects_collected_total" in text
    assert "pygamesvc_process_resident_memory_bytes" in text
    assert 'pygamesvc_pool_tasks_completed_total{pool="demo-match"}' in text
    assert 'pygamesvc_cache_hits_total{cache="demo-players"}' in text
    assert 'pygamesvc_cache_entries{cache="demo-players"}' in text


def test_metrics_label_route_templates(demo):
    demo.request("GET", "/players/3")
    demo.request("GET", "/players/4")
    demo.request("GET", "/no/such/path")
    text = demo.request("GET", "/metrics")[2].decode()
    assert (
        'http_request_duration_seconds_count{handler="/players/{player_id}",'
        'method="GET"}' in text
    )
    assert 'handler="/players/3"' not in text
    assert 'handler="unmatched"' in text


def test_concurrent_requests(demo):
    paths = [f"/players/{i}" for i in range(1, 201)]
    with concurrent.futures.ThreadPoolExecutor(8) as clients:
        results = list(clients.map(demo.get_json, paths))
    assert [status for status, _ in results] == [200] * len(paths)
    assert [body["id"] for _, body in results] == list(range(1, 201))


def test_bad_input_leaves_no_traceback(demo):
    demo.post_json("/match", b"{")
    demo.get_json("/players?limit=-5")
    demo.get_json("/players/zzz")
    assert "Traceback" not in demo.log
    assert "ERROR" not in demo.log
