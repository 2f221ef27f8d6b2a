"""A service that owns pygamesvc parts starts and stops without leaking."""

import pytest

from pygamesvc import WorkerPool
from pygamesvc.testing import find_leaks, snapshot


class GameService:
    """A minimal stand-in for the demo service: it owns a worker pool.

    The TTLCache and metrics sampler join this object once they exist.
    """

    def __init__(self, workers=4):
        self.workers = workers
        self.pool = None

    def start(self):
        self.pool = WorkerPool(self.workers, name="svc")

    def score(self, player_ids):
        futures = [self.pool.submit(len, player_id) for player_id in player_ids]
        return sum(future.result() for future in futures)

    def stop(self):
        if self.pool is not None:
            self.pool.close()


@pytest.mark.leak_check
def test_start_serve_stop_leaks_nothing():
    service = GameService()
    service.start()
    assert service.score(["p1", "p22", "p333"]) == 9
    service.stop()


def test_missing_stop_is_reported():
    baseline = snapshot()
    service = GameService(workers=2)
    service.start()
    try:
        report = find_leaks(baseline, timeout=0.05)
        assert [r.kind for r in report.resources] == ["pool"]
        assert [t.name for t in report.threads] == ["pgs:svc", "pgs:svc"]
    finally:
        service.stop()
    assert not find_leaks(baseline)
