"""Pool and cache driven together from several threads, checked against a model.

Each rule hands a batch of cache operations to a WorkerPool and waits for
all of them, so the operations run on several worker threads at once.
Operations in one batch touch distinct keys (or, for get_or_set, share one
key on purpose), so the model's result does not depend on their order.
The cache uses a fake clock, so the model computes exactly which entries
are live.
"""

import threading

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pygamesvc import TTLCache, WorkerPool

KEYS = st.one_of(st.integers(-3, 40), st.text(max_size=2), st.tuples(st.integers(0, 5)))
OPS = st.sampled_from(["set", "get", "pop", "setdefault", "contains", "ttl_of"])
TTL = 10.0


class PoolCacheModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.now = 1000.0
        self.cache = TTLCache(None, TTL, timer=lambda: self.now, stripes=4)
        self.pool = WorkerPool(4, 64)
        self.model = {}  # key -> (value, expires)

    def live(self):
        return {k: v for k, (v, exp) in self.model.items() if exp > self.now}

    def run_op(self, op, key, value):
        """Run one operation on a worker; returns what it returned."""
        cache = self.cache
        if op == "set":
            return cache.set(key, value)
        if op == "get":
            return cache.get(key, "missing")
        if op == "pop":
            return cache.pop(key, "missing")
        if op == "setdefault":
            return cache.setdefault(key, value)
        if op == "contains":
            return key in cache
        try:
            return round(cache.ttl_of(key), 6)
        except KeyError:
            return "missing"

    def expect(self, op, key, value, live):
        """Apply the operation to the model; return the expected result."""
        if op == "set":
            self.model[key] = (value, self.now + TTL)
            return None
        if op == "get":
            return live.get(key, "missing")
        if op == "pop":
            self.model.pop(key, None)
            return live.get(key, "missing")
        if op == "setdefault":
            if key in live:
                return live[key]
            self.model[key] = (value, self.now + TTL)
            return value
        if op == "contains":
            return key in live
        if key not in live:
            return "missing"
        return round(self.model[key][1] - self.now, 6)

    @rule(
        batch=st.lists(
            st.tuples(KEYS, OPS, st.integers()),
            min_size=1,
            max_size=12,
            unique_by=lambda item: item[0],
        )
    )
    def concurrent_batch(self, batch):
        live = self.live()
        futures = [
            self.pool.submit(self.run_op, op, key, value) for key, op, value in batch
        ]
        results = [future.result(30) for future in futures]
        for (key, op, value), result in zip(batch, results, strict=True):
            assert result == self.expect(op, key, value, live), (op, key)

    @rule(key=KEYS, value=st.integers(), callers=st.integers(2, 6))
    def get_or_set_from_threads(self, key, value, callers):
        live = self.live()
        calls = []
        gate = threading.Event()

        def factory():
            calls.append(1)
            gate.wait(1)  # let the other callers pile up on the flight
            return value

        futures = [
            self.pool.submit(self.cache.get_or_set, key, factory)
            for _ in range(callers)
        ]
        gate.set()
        results = [future.result(30) for future in futures]
        expected = live.get(key, value)
        assert results == [expected] * callers
        if key in live:
            assert calls == []
        else:
            # Callers that started after the flight ended find the value.
            assert calls == [1]
            self.model[key] = (value, self.now + TTL)

    @rule(seconds=st.floats(0, 8))
    def advance(self, seconds):
        self.now += seconds

    @rule()
    def expire(self):
        removed = self.pool.submit(self.cache.expire).result(30)
        assert removed >= 0
        assert len(self.cache) == len(self.live())

    @invariant()
    def matches_model(self):
        assert self.pool.wait(30)
        assert dict(self.cache.items()) == self.live()
        assert self.cache._flights == {}

    def teardown(self):
        self.pool.close()
        self.cache.close()


TestPoolCacheModel = PoolCacheModel.TestCase
TestPoolCacheModel.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
