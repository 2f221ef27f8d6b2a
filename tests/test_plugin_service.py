"""The demo's PlayerService under the plugin: listing budgets and leak checks.

The service runs on a temporary SQLite file with a few hundred players.
It owns a WorkerPool (matchmaking), a TTLCache (pages and players) and the
metrics sampler, so its start/stop cycle is the leak check's real case.
"""

import pytest

from pygamesvc.demo.service import PlayerService
from pygamesvc.testing import find_leaks, snapshot

PLAYERS = 300
WORKERS = 2
PAGE_LIMIT = 20
PAGE_OFFSET = 40
# Long enough that no cached page expires while a budget loop runs.
CACHE_TTL = 3600.0
SAMPLE_INTERVAL = 0.05  # seconds


def new_service(db_path):
    return PlayerService(
        db_path,
        seed_players=PLAYERS,
        workers=WORKERS,
        cache_ttl=CACHE_TTL,
        sample_interval=SAMPLE_INTERVAL,
    )


@pytest.fixture
def cached_service(tmp_path):
    """A started PlayerService whose (20, 40) page is already in the cache."""
    service = new_service(tmp_path / "players.db")
    service.start()
    try:
        page = service.list_players(PAGE_LIMIT, PAGE_OFFSET)
        assert service.cached_page(PAGE_LIMIT, PAGE_OFFSET) is page
        yield service
    finally:
        service.stop()


def test_cached_page_is_listing_page(cached_service):
    page = cached_service.cached_page(PAGE_LIMIT, PAGE_OFFSET)
    assert page is not None
    assert page.total == PLAYERS
    assert [player.id for player in page.players] == list(range(41, 61))
    assert cached_service.list_players(PAGE_LIMIT, PAGE_OFFSET) is page


@pytest.mark.leak_check
@pytest.mark.budget(ns_per_op=1_000_000, allocs_per_op=5)
def test_cached_page_budget(cached_service):
    # GET /players calls cached_page first and calls list_players (from a
    # thread) only on a miss.  The calibrated loop runs this body, and the
    # assert makes every iteration prove that it was a hit.
    assert cached_service.cached_page(PAGE_LIMIT, PAGE_OFFSET) is not None


@pytest.mark.leak_check
def test_list_players_cache_hit_budget(cached_service, budget):
    page = cached_service.cached_page(PAGE_LIMIT, PAGE_OFFSET)
    list_players = cached_service.list_players

    def list_cached_page():
        return list_players(PAGE_LIMIT, PAGE_OFFSET)

    measurement = budget(list_cached_page, ns_per_op=1_000_000, allocs_per_op=5)
    assert measurement.allocs_per_op is not None
    # Every call in the loop was a hit: the page was loaded once, by the
    # fixture, and is still the cached object.
    assert cached_service.stats()["cache_loads"] == 1
    assert list_cached_page() is page


@pytest.mark.leak_check
def test_start_serve_stop_leaks_nothing(tmp_path):
    baseline = snapshot()
    service = new_service(tmp_path / "players.db")
    service.start()
    assert len(service.list_players(10, 0).players) == 10
    assert service.get_player(7).id == 7
    opponents = service.submit_match(7, 5).result(timeout=10)
    assert len(opponents) == 5
    assert service.stats()["pool"]["completed"] >= 1
    assert service.sampler.wait_for_ticks(1, timeout=5.0)
    service.stop()
    # The marker checks again after teardown; this names what is left.
    report = find_leaks(baseline)
    python_threads = [t.name for t in report.threads if t.is_python]
    native_threads = [t.name for t in report.threads if not t.is_python]
    assert python_threads == []
    assert native_threads == []
    assert [resource.kind for resource in report.resources] == []


def test_missing_stop_is_reported(tmp_path):
    baseline = snapshot()
    service = new_service(tmp_path / "players.db")
    service.start()
    try:
        report = find_leaks(baseline, timeout=0.05)
        kinds = sorted(resource.kind for resource in report.resources)
        assert kinds == ["cache", "pool", "sampler"]
        names = [thread.name for thread in report.threads]
        assert names.count("pgs:demo-match") == WORKERS
    finally:
        service.stop()
    assert not find_leaks(baseline)
