"""A service that owns a pool, a cache and a sampler, under the plugin."""

import pytest
from prometheus_client import CollectorRegistry

from pygamesvc import TTLCache, WorkerPool
from pygamesvc.metrics.collector import start_metrics_collector
from pygamesvc.testing import find_leaks, snapshot

PLAYERS = [
    {"id": i, "name": f"player {i}", "rating": 1000 + (i * 37) % 800}
    for i in range(1000)
]


class GameService:
    """A minimal stand-in for the demo service: a worker pool for scoring,
    a TTLCache in front of the player list and the metrics sampler."""

    def __init__(self, workers=4):
        self.workers = workers
        self.pool = None
        self.cache = None
        self.metrics = None

    def start(self):
        self.pool = WorkerPool(self.workers, name="svc")
        self.cache = TTLCache(1024, 60.0, name="players")
        self.metrics = start_metrics_collector(0.05, CollectorRegistry())

    def list_players(self, limit, offset):
        key = (limit, offset)
        page = self.cache.get(key)
        if page is None:
            page = tuple(PLAYERS[offset : offset + limit])
            self.cache[key] = page
        return page

    def score(self, player_ids):
        futures = [self.pool.submit(len, player_id) for player_id in player_ids]
        return sum(future.result() for future in futures)

    def stop(self):
        if self.metrics is not None:
            self.metrics.stop()
        if self.cache is not None:
            self.cache.close()
        if self.pool is not None:
            self.pool.close()


@pytest.fixture
def service():
    service = GameService()
    service.start()
    yield service
    service.stop()


@pytest.mark.leak_check
def test_start_serve_stop_leaks_nothing():
    service = GameService()
    service.start()
    assert service.score(["p1", "p22", "p333"]) == 9
    assert len(service.list_players(10, 0)) == 10
    assert service.metrics.wait_for_ticks(1, timeout=5.0)
    service.stop()


def test_missing_stop_is_reported():
    baseline = snapshot()
    service = GameService(workers=2)
    service.start()
    try:
        report = find_leaks(baseline, timeout=0.05)
        kinds = sorted(resource.kind for resource in report.resources)
        assert kinds == ["cache", "pool", "sampler"]
        names = [thread.name for thread in report.threads]
        assert names.count("pgs:svc") == 2
    finally:
        service.stop()
    assert not find_leaks(baseline)


@pytest.mark.leak_check
@pytest.mark.budget(ns_per_op=1_000_000, allocs_per_op=5)
def test_list_players_from_cache_budget(service):
    # The first call fills the cache; the calibrated loop measures hits.
    page = service.list_players(20, 40)
    assert page[0]["id"] == 40
