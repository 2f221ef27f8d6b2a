"""TTLCache against a plain dict model, driven by hypothesis with a fake clock."""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pygamesvc import TTLCache

KEYS = st.one_of(
    st.integers(-5, 20),
    st.text(max_size=2),
    st.binary(max_size=2),
    st.tuples(st.integers(0, 3)),
)
TTLS = st.one_of(st.none(), st.floats(0.5, 20))


class CacheModel(RuleBasedStateMachine):
    """Unbounded cache: every live entry must be found, so the model is exact."""

    def __init__(self):
        super().__init__()
        self.now = 100.0
        self.cache = TTLCache(None, 10, timer=lambda: self.now, stripes=4)
        self.model = {}  # key -> (value, expires)

    def live(self):
        return {k: v for k, (v, exp) in self.model.items() if exp > self.now}

    @rule(key=KEYS, value=st.integers(), ttl=TTLS)
    def set(self, key, value, ttl):
        self.cache.set(key, value, ttl=ttl)
        self.model[key] = (value, self.now + (10 if ttl is None else ttl))

    @rule(key=KEYS)
    def get(self, key):
        assert self.cache.get(key, "missing") == self.live().get(key, "missing")

    @rule(key=KEYS)
    def delete(self, key):
        expected = self.live().get(key, "missing")
        assert self.cache.pop(key, "missing") == expected
        self.model.pop(key, None)

    @rule(key=KEYS, value=st.integers())
    def setdefault(self, key, value):
        live = self.live()
        result = self.cache.setdefault(key, value)
        if key in live:
            assert result == live[key]
        else:
            assert result == value
            self.model[key] = (value, self.now + 10)

    @rule(seconds=st.floats(0, 8))
    def advance(self, seconds):
        self.now += seconds

    @rule()
    def expire(self):
        self.cache.expire()
        assert len(self.cache) == len(self.live())

    @rule()
    def clear(self):
        self.cache.clear()
        self.model.clear()

    @invariant()
    def snapshot_matches(self):
        assert dict(self.cache.items()) == self.live()
        assert len(self.cache) >= len(self.live())

    def teardown(self):
        self.cache.close()


class BoundedModel(RuleBasedStateMachine):
    """Bounded cache: it may drop entries, but never returns a wrong value."""

    def __init__(self):
        super().__init__()
        self.now = 0.0
        self.cache = TTLCache(8, 5, timer=lambda: self.now, stripes=2)
        self.model = {}

    @rule(key=st.integers(0, 30), value=st.integers())
    def set(self, key, value):
        self.cache[key] = value
        self.model[key] = (value, self.now + 5)
        assert len(self.cache) <= 8

    @rule(key=st.integers(0, 30))
    def get(self, key):
        value = self.cache.get(key, "missing")
        if value != "missing":
            assert key in self.model
            assert self.model[key][0] == value
            assert self.model[key][1] > self.now

    @rule(seconds=st.floats(0, 3))
    def advance(self, seconds):
        self.now += seconds

    def teardown(self):
        self.cache.close()


TestCacheModel = CacheModel.TestCase
TestCacheModel.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
TestBoundedModel = BoundedModel.TestCase
TestBoundedModel.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None
)
