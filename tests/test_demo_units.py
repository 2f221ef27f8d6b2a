"""Demo service parts without HTTP: storage, matchmaking score, PlayerService."""

import math
import threading

import pytest

from pygamesvc.demo.matchmaking import best_opponents, match_score
from pygamesvc.demo.service import (
    MATCH_QUEUE_PER_WORKER,
    MAX_PAGE_SIZE,
    MatchQueueFullError,
    PlayerService,
    UnknownPlayerError,
)
from pygamesvc.demo.storage import DEFAULT_SEED_PLAYERS, REGIONS, PlayerStore


@pytest.fixture
def store():
    s = PlayerStore(":memory:")
    yield s
    s.close()


@pytest.fixture
def service():
    with PlayerService(":memory:", seed_players=500, workers=2) as s:
        yield s


def test_seed_is_deterministic():
    first, second = PlayerStore(":memory:"), PlayerStore(":memory:")
    try:
        first.seed(200, seed=3)
        second.seed(200, seed=3)
        assert first.page(200, 0) == second.page(200, 0)
    finally:
        first.close()
        second.close()


def test_seed_values_in_range(store):
    assert store.seed(1000) == 1000
    assert store.count() == 1000
    for player in store.page(1000, 0):
        assert 0 <= player.rating <= 4000
        assert 1 <= player.level <= 100
        assert player.region in REGIONS
        assert player.last_seen.endswith("+00:00")
        assert player.name


def test_seed_rejects_negative_count(store):
    with pytest.raises(
        ValueError, match="count must be a non-negative integer, got -1"
    ):
        store.seed(-1)


def test_import_csv_line_numbers(store, tmp_path):
    path = tmp_path / "players.csv"
    path.write_text(
        "region,name,level,rating,last_seen,extra\n"  # any column order
        "eu,Ada,10,1500,2025-01-01T00:00:00Z,x\n"
        'na,"Multi\nLine",10,1500,2025-01-01T00:00:00Z,x\n'
        "eu,Bo,101,1500,2025-01-01T00:00:00Z,x\n"
        "eu,Cy,10,1500,2025-01-01T00:00:00Z,x,surplus\n"
        "EU,Di,10,4000,2025-01-01T02:00:00+02:00,x\n"
        "eu,Ed,10\n"
    )
    report = store.import_csv(path)
    assert report.imported == 3
    assert [line for line, _ in report.errors] == [5, 6, 8]
    assert report.errors[0][1] == "level must be an integer from 1 to 100, got 101"
    assert report.errors[1][1] == "more fields than the header names"
    assert report.errors[2][1] == "rating is missing"
    players = store.page(10, 0)
    assert [p.name for p in players] == ["Ada", "Multi\nLine", "Di"]
    assert players[2].region == "eu"
    assert players[2].last_seen == "2025-01-01T00:00:00+00:00"


def test_import_csv_replaces_players(store, tmp_path):
    store.seed(50)
    path = tmp_path / "players.csv"
    path.write_text("name,rating,level,region,last_seen\nAda,1,1,eu,2025-01-01\n")
    assert store.import_csv(path).imported == 1
    assert store.count() == 1


def test_import_csv_without_valid_rows(store, tmp_path):
    store.seed(5)
    path = tmp_path / "players.csv"
    path.write_text("name,rating,level,region,last_seen\nAda,x,1,eu,2025-01-01\n")
    with pytest.raises(
        ValueError,
        match=r"no valid player rows, so nothing was imported \(1 row skipped\)",
    ):
        store.import_csv(path)
    assert store.count() == 5


def test_import_csv_missing_header(store, tmp_path):
    path = tmp_path / "players.csv"
    path.write_text("")
    with pytest.raises(ValueError, match="line 1: the header must name the columns"):
        store.import_csv(path)


def test_match_score_prefers_even_matches():
    now = 1_000_000.0
    player = (1, 1500, 50, "eu", now)
    even = (2, 1500, 50, "eu", now)
    stronger = (3, 1900, 50, "eu", now)
    assert match_score(player, even, now) == pytest.approx(1.0)
    assert match_score(player, stronger, now) < match_score(player, even, now)


def test_match_score_factors():
    now = 1_000_000.0
    player = (1, 1500, 50, "eu", now)
    abroad = (2, 1500, 50, "na", now)
    idle_week = (3, 1500, 50, "eu", now - 7 * 24 * 3600)
    far_level = (4, 1500, 65, "eu", now)
    assert match_score(player, abroad, now) == pytest.approx(0.6)
    assert match_score(player, idle_week, now) == pytest.approx(math.exp(-1))
    assert match_score(player, far_level, now) == pytest.approx(math.exp(-1))


def test_best_opponents_order_and_self():
    now = 0.0
    table = [(i, 1500 + 10 * i, 50, "eu", now) for i in range(1, 21)]
    best = best_opponents(table[9], table, 3, now)
    ids = [player_id for _, player_id in best]
    # 9 and 11 are 10 rating points away, 8 and 12 are 20; mirror images
    # differ in the last float bits, so only the groups are fixed.
    assert set(ids[:2]) == {9, 11}
    assert ids[2] in (8, 12)
    assert all(player_id != 10 for _, player_id in best)
    assert [s for s, _ in best] == sorted((s for s, _ in best), reverse=True)


def test_service_list_players(service):
    page = service.list_players(5, 10)
    assert [p.id for p in page.players] == [11, 12, 13, 14, 15]
    assert page.total == 500
    assert page.body.startswith(b'{"players":[{"id":11,')


def test_service_caps_limit(service):
    page = service.list_players(MAX_PAGE_SIZE + 1, 0)
    assert page.limit == MAX_PAGE_SIZE
    assert len(page.players) == MAX_PAGE_SIZE


@pytest.mark.parametrize(
    ("limit", "offset", "message"),
    [
        (-1, 0, "limit must be a non-negative integer, got -1"),
        ("5", 0, "limit must be a non-negative integer, got '5'"),
        (5, -2, "offset must be a non-negative integer, got -2"),
        (5, 1.0, "offset must be a non-negative integer, got 1.0"),
    ],
)
def test_service_list_players_rejects(service, limit, offset, message):
    with pytest.raises(ValueError, match=message):
        service.list_players(limit, offset)


def test_service_get_player(service):
    assert service.get_player(7).id == 7
    with pytest.raises(UnknownPlayerError, match="player 501 not found"):
        service.get_player(501)


def test_service_match_runs_on_pool(service):
    future = service.submit_match(3, count=4)
    opponents = future.result(timeout=10)
    assert len(opponents) == 4
    assert 3 not in [o["id"] for o in opponents]
    assert service.stats()["pool"]["completed"] >= 1


def test_service_match_rejects(service):
    with pytest.raises(UnknownPlayerError):
        service.submit_match(10_000)
    with pytest.raises(
        ValueError, match="count must be an integer from 1 to 50, got 0"
    ):
        service.submit_match(3, count=0)


def test_service_match_queue_full():
    release = threading.Event()
    with PlayerService(":memory:", seed_players=50, workers=1) as service:
        # Occupy the only worker, then fill the queue behind it.
        service.pool.submit(release.wait, 10)
        futures = []
        try:
            with pytest.raises(MatchQueueFullError, match="matchmaking queue is full"):
                for _ in range(MATCH_QUEUE_PER_WORKER + 2):
                    futures.append(service.submit_match(1))
        finally:
            release.set()
        assert len(futures) >= MATCH_QUEUE_PER_WORKER - 1
        assert all(len(f.result(timeout=10)) == 10 for f in futures)


def test_service_stop_is_idempotent():
    service = PlayerService(":memory:", seed_players=10, workers=1).start()
    service.stop()
    service.stop()
    assert service.pool.closed


def test_service_start_twice_raises(service):
    with pytest.raises(RuntimeError, match="already called"):
        service.start()


def test_service_rejects_bad_workers():
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        PlayerService(":memory:", workers=0)


def test_default_seed_count_documented():
    assert DEFAULT_SEED_PLAYERS == 10_000
