"""Hostile input for every public constructor and method.

The first table feeds one argument at a time a value of the wrong type,
NaN, infinities, zero, a negative, a huge int, a bool or an empty list.
Each call either succeeds (the value is documented as valid there) or
raises TypeError for a wrong type and ValueError for a bad value, with the
argument's name in the message.  Every call leaves the refcount of the
value it was given where it was.

The tests after it cover badly behaved keys, values and callables.
"""

import gc
import logging
import sys
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from pygamesvc import TTLCache, WorkerPool
from pygamesvc.metrics import (
    ASGIMetricsMiddleware,
    Counter,
    Histogram,
    WSGIMetricsMiddleware,
    start_metrics_collector,
)

# name -> factory; factories make fresh objects so that refcounts are exact.
VALUES = {
    "none": lambda: None,
    "str": lambda: "".join(["bad", "-value"]),
    "bytes": lambda: bytes(bytearray(b"bad")),
    "list": lambda: [],
    "nan": lambda: float("nan"),
    "inf": lambda: float("inf"),
    "-inf": lambda: float("-inf"),
    "zero": lambda: 0,
    "negative": lambda: -1,
    "huge": lambda: 10**30,
    "true": lambda: True,
    "false": lambda: False,
    "float": lambda: float("1.5"),
}
NOT_NUMBERS = {"none", "str", "bytes", "list", "true", "false"}
INTS = {"zero", "negative", "huge"}


def shared(value):
    """True for objects the interpreter shares everywhere (None, bools,
    small ints), whose refcounts other code changes all the time."""
    return (
        value is None
        or isinstance(value, bool)
        or (type(value) is int and -5 <= value <= 256)
    )


def expected_error(kind, value_name):
    """The exception a value must raise for an argument of this kind."""
    if kind == "int":
        return ValueError if value_name in INTS else TypeError
    if kind == "number":
        return TypeError if value_name in NOT_NUMBERS else ValueError
    return TypeError  # "callable", "str", "iterable", "registry"


def close_result(result):
    for method in ("close", "stop"):
        if hasattr(result, method):
            getattr(result, method)()
            return


@pytest.fixture(scope="module")
def idle_pool():
    pool = WorkerPool(1)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def cache():
    cache = TTLCache(100, 60)
    yield cache
    cache.close()


def app(scope, receive, send):
    return None


# (label, argument name in messages, kind, valid value names, call)
TARGETS = [
    ("WorkerPool workers", "workers", "int", set(), lambda v, p, c: WorkerPool(v)),
    (
        "WorkerPool queue_size",
        "queue_size",
        "int",
        {"none", "zero"},
        lambda v, p, c: WorkerPool(1, v),
    ),
    (
        "WorkerPool submit_timeout",
        "submit_timeout",
        "number",
        {"none", "zero", "huge", "inf", "float"},
        lambda v, p, c: WorkerPool(1, submit_timeout=v),
    ),
    (
        "WorkerPool name",
        "name",
        "str",
        {"none", "str"},
        lambda v, p, c: WorkerPool(1, name=v),
    ),
    (
        "WorkerPool on_error",
        "on_error",
        "callable",
        {"none"},
        lambda v, p, c: WorkerPool(1, on_error=v),
    ),
    ("WorkerPool.execute", "fn", "callable", set(), lambda v, p, c: p.execute(v)),
    (
        "WorkerPool.try_execute",
        "fn",
        "callable",
        set(),
        lambda v, p, c: p.try_execute(v),
    ),
    ("WorkerPool.submit", "fn", "callable", set(), lambda v, p, c: p.submit(v)),
    (
        "WorkerPool.wait",
        "timeout",
        "number",
        {"none", "zero", "huge", "inf", "float"},
        lambda v, p, c: p.wait(v),
    ),
    (
        "TTLCache maxsize",
        "maxsize",
        "int",
        {"none", "zero"},
        lambda v, p, c: TTLCache(v, 1),
    ),
    (
        "TTLCache ttl",
        "ttl",
        "number",
        {"huge", "float"},
        lambda v, p, c: TTLCache(1, v),
    ),
    (
        "TTLCache stripes",
        "stripes",
        "int",
        {"none"},
        lambda v, p, c: TTLCache(1, 1, stripes=v),
    ),
    (
        "TTLCache sweep_interval",
        "sweep_interval",
        "number",
        {"none", "zero", "huge", "float"},
        lambda v, p, c: TTLCache(1, 1, sweep_interval=v),
    ),
    (
        "TTLCache timer",
        "timer",
        "callable",
        {"none"},
        lambda v, p, c: TTLCache(1, 1, timer=v),
    ),
    (
        "TTLCache name",
        "name",
        "str",
        {"none", "str"},
        lambda v, p, c: TTLCache(1, 1, name=v),
    ),
    (
        "TTLCache timer result",
        "timer",
        "number",
        {"zero", "negative", "float"},
        lambda v, p, c: TTLCache(1, 1, timer=lambda: v).get("key"),
    ),
    (
        "TTLCache.set ttl",
        "ttl",
        "number",
        {"none", "huge", "float"},
        lambda v, p, c: c.set("key", 1, v),
    ),
    (
        "TTLCache.get_or_set factory",
        "factory",
        "callable",
        set(),
        lambda v, p, c: c.get_or_set("hit", v),
    ),
    (
        "TTLCache.get_or_set ttl",
        "ttl",
        "number",
        {"none", "huge", "float"},
        lambda v, p, c: c.get_or_set("key2", int, v),
    ),
    (
        "Histogram buckets item",
        "buckets",
        "number",
        {"zero", "negative", "huge", "inf", "float"},
        lambda v, p, c: Histogram("h", "d", buckets=[v], registry=None),
    ),
    (
        "Histogram buckets",
        "buckets",
        "iterable",
        {"none", "list"},
        lambda v, p, c: Histogram("h", "d", buckets=v, registry=None),
    ),
    (
        "Histogram max_series",
        "max_series",
        "int",
        set(),
        lambda v, p, c: Histogram("h", "d", max_series=v, registry=None),
    ),
    (
        "Histogram labelnames",
        "labelnames",
        "iterable",
        {"list"},
        lambda v, p, c: Histogram("h", "d", v, registry=None),
    ),
    (
        "Histogram.observe",
        "value",
        "number",
        {"zero", "negative", "huge", "nan", "inf", "-inf", "float"},
        lambda v, p, c: Histogram("h", "d", registry=None).observe(v),
    ),
    (
        "Histogram.labels",
        "label",
        "str",
        {"str"},
        lambda v, p, c: Histogram("h", "d", ["a"], registry=None).labels(v),
    ),
    (
        "Counter max_series",
        "max_series",
        "int",
        set(),
        lambda v, p, c: Counter("c", "d", max_series=v, registry=None),
    ),
    (
        "Counter labelnames",
        "labelnames",
        "iterable",
        {"list"},
        lambda v, p, c: Counter("c", "d", v, registry=None),
    ),
    (
        "Counter.inc",
        "amount",
        "number",
        {"zero", "huge", "float"},
        lambda v, p, c: Counter("c", "d", registry=None).inc(v),
    ),
    (
        "Counter.labels",
        "label",
        "str",
        {"str"},
        lambda v, p, c: Counter("c", "d", ["a"], registry=None).labels(v),
    ),
    (
        "start_metrics_collector interval",
        "interval",
        "number",
        {"float"},
        lambda v, p, c: start_metrics_collector(v, registry=CollectorRegistry()),
    ),
    (
        "start_metrics_collector registry",
        "registry",
        "registry",
        {"none"},
        lambda v, p, c: start_metrics_collector(1.0, registry=v),
    ),
    (
        "ASGIMetricsMiddleware max_handlers",
        "max_handlers",
        "int",
        set(),
        lambda v, p, c: ASGIMetricsMiddleware(
            app, registry=CollectorRegistry(), max_handlers=v
        ),
    ),
    (
        "ASGIMetricsMiddleware handler_label",
        "handler_label",
        "callable",
        {"none"},
        lambda v, p, c: ASGIMetricsMiddleware(
            app, registry=CollectorRegistry(), handler_label=v
        ),
    ),
    (
        "WSGIMetricsMiddleware buckets",
        "buckets",
        "iterable",
        {"none", "list"},
        lambda v, p, c: WSGIMetricsMiddleware(
            app, registry=CollectorRegistry(), buckets=v
        ),
    ),
    (
        "WSGIMetricsMiddleware max_handlers",
        "max_handlers",
        "int",
        set(),
        lambda v, p, c: WSGIMetricsMiddleware(
            app, registry=CollectorRegistry(), max_handlers=v
        ),
    ),
]

CASES = [
    pytest.param(target, value_name, id=f"{target[0]}-{value_name}")
    for target in TARGETS
    for value_name in VALUES
]


@pytest.mark.parametrize("target, value_name", CASES)
def test_argument(target, value_name, idle_pool, cache):
    label, argument, kind, valid, call = target
    value = VALUES[value_name]()
    cache["hit"] = 1  # get_or_set validates its factory on a hit too
    gc.collect()
    before = sys.getrefcount(value)
    if value_name in valid:
        close_result(call(value, idle_pool, cache))
    else:
        error = expected_error(kind, value_name)
        with pytest.raises(error) as info:
            call(value, idle_pool, cache)
        assert argument in str(info.value), (label, str(info.value))
        del info
    gc.collect()
    if not shared(value):
        assert sys.getrefcount(value) == before


# ---------------------------------------------------------------------------
# Keys, values and callables that misbehave


class HashError(Exception):
    pass


class EqError(Exception):
    pass


class RaisingHash:
    def __hash__(self):
        raise HashError("hash refused")


class RaisingEq:
    """Shares its hash with every other RaisingEq, so lookups compare."""

    def __hash__(self):
        return 99

    def __eq__(self, other):
        if self is other:
            return True
        raise EqError("eq refused")


class Colliding:
    """Equal by ident; __eq__ drops the GIL and runs a hook in between."""

    hook = None

    def __init__(self, ident):
        self.ident = ident

    def __hash__(self):
        return 7

    def __eq__(self, other):
        time.sleep(0)
        if Colliding.hook is not None:
            Colliding.hook()
        return isinstance(other, Colliding) and self.ident == other.ident


def cache_calls(key):
    """Every TTLCache call that takes a key, as (name, thunk-of-cache)."""
    return [
        ("getitem", lambda c: c[key]),
        ("setitem", lambda c: c.__setitem__(key, 1)),
        ("delitem", lambda c: c.__delitem__(key)),
        ("contains", lambda c: key in c),
        ("get", lambda c: c.get(key)),
        ("set", lambda c: c.set(key, 1, 5)),
        ("pop", lambda c: c.pop(key, None)),
        ("setdefault", lambda c: c.setdefault(key, 1)),
        ("ttl_of", lambda c: c.ttl_of(key)),
        ("get_or_set", lambda c: c.get_or_set(key, int)),
    ]


@pytest.mark.parametrize("name", [name for name, _ in cache_calls(None)])
def test_unhashable_key(name):
    key = []
    call = dict(cache_calls(key))[name]  # its closure holds one reference
    before = sys.getrefcount(key)
    with TTLCache(10, 60) as cache:
        cache["other"] = 1
        with pytest.raises(TypeError, match="unhashable"):
            call(cache)
        assert dict(cache.items()) == {"other": 1}
    assert sys.getrefcount(key) == before


@pytest.mark.parametrize("name", [name for name, _ in cache_calls(None)])
def test_key_with_raising_hash(name):
    key = RaisingHash()
    call = dict(cache_calls(key))[name]
    before = sys.getrefcount(key)
    with TTLCache(10, 60) as cache:
        cache["other"] = 1
        with pytest.raises(HashError):
            call(cache)
        assert dict(cache.items()) == {"other": 1}
        assert cache._flights == {}
    assert sys.getrefcount(key) == before


@pytest.mark.parametrize("name", [name for name, _ in cache_calls(None)])
def test_key_with_raising_eq(name):
    stored, probe = RaisingEq(), RaisingEq()
    call = dict(cache_calls(probe))[name]
    before = sys.getrefcount(probe)
    with TTLCache(10, 60) as cache:
        cache[stored] = "kept"
        with pytest.raises(EqError):
            call(cache)
        assert cache[stored] == "kept"
        assert len(cache) == 1
        assert cache._flights == {}
    assert sys.getrefcount(probe) == before


def test_eq_releasing_gil_from_threads():
    cache = TTLCache(1000, 60, stripes=1)
    barrier = threading.Barrier(4)
    errors = []

    def worker(index):
        try:
            barrier.wait()
            for i in range(200):
                key = Colliding(i % 6)
                cache[key] = key.ident
                value = cache.get(Colliding(i % 6), key.ident)
                assert value == key.ident
                if i % 5 == index:
                    cache.pop(Colliding(i % 6), None)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(cache) <= 6
    for key in cache:
        assert cache[key] == key.ident
    cache.close()


@pytest.mark.parametrize(
    "mutation",
    ["insert", "pop_other", "clear", "expire", "close_other"],
)
def test_eq_mutating_cache(mutation):
    cache = TTLCache(50, 60, stripes=1)
    other = TTLCache(5, 60)
    count = [0]

    def hook():
        count[0] += 1
        if mutation == "insert":
            cache[f"side-{count[0] % 20}"] = count[0]
        elif mutation == "pop_other":
            cache.pop("victim", None)
        elif mutation == "clear":
            if count[0] % 7 == 0:
                cache.clear()
        elif mutation == "expire":
            cache.expire()
        else:
            other.close()

    cache["victim"] = 0
    Colliding.hook = hook
    try:
        for i in range(60):
            cache[Colliding(i % 4)] = i
            result = cache.get(Colliding(i % 4))
            assert result in (None, i)  # clear() may drop it right away
            cache.pop(Colliding((i + 1) % 4), None)
    finally:
        Colliding.hook = None
    assert len(cache) <= 50
    for key, value in cache.items():
        assert cache.get(key) == value
    cache.close()


class Reentrant:
    """A value whose __del__ uses the cache that is releasing it."""

    target = None
    calls = 0

    def __del__(self):
        cache = Reentrant.target
        if cache is None:
            return
        Reentrant.calls += 1
        try:
            cache.get("probe")
            cache[f"from-del-{Reentrant.calls % 3}"] = "x"
            cache.pop("from-del-0", None)
            len(cache)
        except RuntimeError:
            pass  # the cache is closed


@pytest.mark.parametrize(
    "release_by",
    ["replace", "delete", "pop", "evict", "expire", "lazy_expiry", "clear", "close"],
)
def test_value_del_reenters_cache(release_by):
    now = [0.0]
    cache = TTLCache(4, 10, timer=lambda: now[0], stripes=1)
    Reentrant.target, Reentrant.calls = cache, 0
    try:
        for i in range(4):
            cache[f"k{i}"] = Reentrant()
        if release_by == "replace":
            cache["k0"] = "plain"
        elif release_by == "delete":
            del cache["k1"]
        elif release_by == "pop":
            cache.pop("k2")
        elif release_by == "evict":
            for i in range(10):
                cache[f"new{i}"] = i
        elif release_by == "expire":
            now[0] = 100.0
            cache.expire()
        elif release_by == "lazy_expiry":
            now[0] = 100.0
            assert cache.get("k3") is None
        elif release_by == "clear":
            cache.clear()
        else:
            cache.close()
        gc.collect()
        assert Reentrant.calls >= 1
        assert len(cache) <= 4
        if not cache.closed:
            # The W-TinyLFU policy may turn a new key away, never corrupt.
            cache["after"] = 1
            assert cache.get("after") in (None, 1)
            for key, value in cache.items():
                assert cache.get(key) is value
    finally:
        Reentrant.target = None
        cache.close()


BASE_EXCEPTIONS = [KeyboardInterrupt, SystemExit, GeneratorExit]


def raiser(exc_type):
    def raise_it(*args):
        raise exc_type("from a callable")

    return raise_it


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
def test_pool_tasks_raising_base_exceptions(exc_type):
    seen = []
    payload = object()
    before = sys.getrefcount(payload)
    with WorkerPool(2, on_error=seen.append) as pool:
        pool.execute(raiser(exc_type), payload)
        future = pool.submit(raiser(exc_type), payload)
        assert isinstance(future.exception(10), exc_type)
        assert pool.wait(10)
        assert pool.submit(abs, -1).result(10) == 1  # workers survived
        stats = pool.stats()
    assert [type(exc) for exc in seen] == [exc_type]
    assert stats["failed"] == 2
    assert stats["workers"] == 2
    # The pool's on_error (seen.append) keeps the exceptions, and their
    # tracebacks the payload, until the pool itself is freed.
    del future, seen, pool
    gc.collect()
    assert sys.getrefcount(payload) == before


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
def test_on_error_raising_base_exception_is_logged(exc_type, caplog):
    with caplog.at_level(logging.ERROR, logger="pygamesvc"):
        with WorkerPool(1, on_error=raiser(exc_type)) as pool:
            pool.execute(raiser(ValueError))
            assert pool.wait(10)
            assert pool.submit(abs, -2).result(10) == 2
    messages = [record.getMessage() for record in caplog.records]
    assert any("on_error handler" in message for message in messages), messages


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
def test_get_or_set_factory_raising_base_exception(exc_type):
    key = object()
    before = sys.getrefcount(key)
    with TTLCache(10, 60) as cache:
        with pytest.raises(exc_type):
            cache.get_or_set(key, raiser(exc_type))
        assert key not in cache
        assert cache._flights == {}
        assert cache.get_or_set(key, lambda: "later") == "later"
    gc.collect()  # pytest.raises keeps the traceback in a reference cycle
    assert sys.getrefcount(key) == before


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
def test_timer_raising_base_exception(exc_type):
    fail = [False]

    def timer():
        if fail[0]:
            raise exc_type("clock")
        return 1.0

    with TTLCache(10, 60, timer=timer) as cache:
        cache["a"] = 1
        fail[0] = True
        for call in (lambda: cache["a"], lambda: cache.set("b", 2), cache.expire):
            with pytest.raises(exc_type):
                call()
        fail[0] = False
        assert dict(cache.items()) == {"a": 1}


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
def test_timed_function_raising_base_exception_is_observed(exc_type):
    histogram = Histogram("timed_seconds", "t", registry=None)
    with pytest.raises(exc_type):
        histogram.time()(raiser(exc_type))()
    ((_, _, total),) = histogram._histogram._collect_series()
    assert total >= 0
    assert sum(histogram._histogram._collect_series()[0][1][-1:]) == 1


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
def test_wsgi_app_raising_base_exception_is_recorded(exc_type):
    registry = CollectorRegistry()
    middleware = WSGIMetricsMiddleware(raiser(exc_type), registry=registry)
    with pytest.raises(exc_type):
        middleware({"PATH_INFO": "/x", "REQUEST_METHOD": "GET"}, None)
    value = registry.get_sample_value(
        "http_requests_total", {"handler": "/x", "method": "GET", "status": "5xx"}
    )
    assert value == 1.0


def test_handler_label_raising_propagates():
    registry = CollectorRegistry()

    def label(environ):
        raise KeyboardInterrupt

    def wsgi_app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    middleware = WSGIMetricsMiddleware(wsgi_app, registry=registry, handler_label=label)
    body = middleware({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, lambda *a: None)
    assert list(body) == [b"ok"]
    with pytest.raises(KeyboardInterrupt):
        body.close()
