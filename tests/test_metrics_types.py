"""pygamesvc.metrics.Histogram and Counter: values, labels, caps, threads."""

import importlib.util
import math
import sys
import threading

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pygamesvc import _core
from pygamesvc.metrics import Counter, Histogram


def samples(registry, name):
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for sample in family.samples
            }
    raise AssertionError(f"{name} not in scrape:\n{text}")


def test_histogram_buckets_and_sum():
    registry = CollectorRegistry()
    histogram = Histogram(
        "latency_seconds", "Latency", buckets=[0.1, 1.0], registry=registry
    )
    for value in (0.05, 0.1, 0.5, 2.0):
        histogram.observe(value)
    got = samples(registry, "latency_seconds")
    assert got[("latency_seconds_bucket", (("le", "0.1"),))] == 2
    assert got[("latency_seconds_bucket", (("le", "1.0"),))] == 3
    assert got[("latency_seconds_bucket", (("le", "+Inf"),))] == 4
    assert got[("latency_seconds_count", ())] == 4
    assert got[("latency_seconds_sum", ())] == pytest.approx(2.65)


def test_histogram_default_buckets_match_prometheus():
    histogram = Histogram("d_seconds", "d", registry=None)
    assert histogram.buckets == (
        0.005,
        0.01,
        0.025,
        0.05,
        0.075,
        0.1,
        0.25,
        0.5,
        0.75,
        1.0,
        2.5,
        5.0,
        7.5,
        10.0,
    )


def test_histogram_trailing_inf_accepted():
    histogram = Histogram("t_seconds", "t", buckets=[1, 2, math.inf], registry=None)
    assert histogram.buckets == (1.0, 2.0)


@pytest.mark.parametrize(
    "buckets, message",
    [
        ([2, 1], "strictly increasing"),
        ([1, 1], "strictly increasing"),
        ([math.nan], "finite"),
        (list(range(70)), "at most 64"),
        (["a"], "must be a number"),
    ],
)
def test_histogram_rejects_bad_buckets(buckets, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Histogram("bad_seconds", "bad", buckets=buckets, registry=None)


def test_histogram_labels_by_position_and_name():
    registry = CollectorRegistry()
    histogram = Histogram("op_seconds", "Ops", ["kind", "shard"], registry=registry)
    histogram.labels("read", "1").observe(1.0)
    histogram.labels(kind="read", shard="1").observe(2.0)
    histogram.labels(shard="2", kind="write").observe(4.0)
    got = samples(registry, "op_seconds")
    assert got[("op_seconds_count", (("kind", "read"), ("shard", "1")))] == 2
    assert got[("op_seconds_sum", (("kind", "read"), ("shard", "1")))] == 3.0
    assert got[("op_seconds_sum", (("kind", "write"), ("shard", "2")))] == 4.0


def test_labels_returns_cached_child():
    histogram = Histogram("c_seconds", "c", ["k"], registry=None)
    child = histogram.labels("x")
    assert histogram.labels("x") is child
    before = sys.getrefcount(child)
    for _ in range(100):
        histogram.labels("x")
    assert sys.getrefcount(child) == before


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda h: h.labels("a"), ValueError, "takes values for"),
        (lambda h: h.labels("a", "b", "c"), ValueError, "takes values for"),
        (lambda h: h.labels(a="x", z="y"), ValueError, "unknown or repeated"),
        (
            lambda h: h.labels("a", shard="y"),
            ValueError,
            "all by position or all by name",
        ),
        (lambda h: h.labels(1, "b"), TypeError, "must be a str, got int"),
        (lambda h: h.observe(1.0), ValueError, "has labels"),
        (lambda h: h.labels("a", "b").observe("1"), TypeError, "must be a number"),
    ],
)
def test_histogram_label_errors(call, error, message):
    histogram = Histogram("e_seconds", "e", ["a", "shard"], registry=None)
    with pytest.raises(error, match=message):
        call(histogram)


def test_unlabelled_histogram_rejects_labels():
    histogram = Histogram("u_seconds", "u", registry=None)
    with pytest.raises(ValueError, match="no labelnames"):
        histogram.labels()


@pytest.mark.parametrize(
    "labelnames, message",
    [
        (["le"], "reserved"),
        (["__x"], "reserved"),
        (["a-b"], "must match"),
        (["a", "a"], "distinct"),
    ],
)
def test_histogram_rejects_bad_label_names(labelnames, message):
    with pytest.raises(ValueError, match=message):
        Histogram("n_seconds", "n", labelnames, registry=None)


def test_rejects_bad_metric_name():
    with pytest.raises(ValueError, match="name must match"):
        Histogram("1bad", "n", registry=None)


def test_series_cap_rejects_new_combinations():
    histogram = Histogram("cap_seconds", "cap", ["k"], max_series=2, registry=None)
    histogram.labels("a")
    histogram.labels("b")
    with pytest.raises(ValueError, match="max_series=2"):
        histogram.labels("c")
    histogram.labels("a").observe(1)  # existing combinations still work
    assert len(histogram._histogram._collect_series()) == 2


def test_counter_total_suffix_and_values():
    registry = CollectorRegistry()
    counter = Counter("jobs_total", "Jobs", registry=registry)
    counter.inc()
    counter.inc(2)
    counter.inc(0.5)
    assert counter.name == "jobs"
    assert samples(registry, "jobs")[("jobs_total", ())] == 3.5


def test_counter_labels_and_value():
    counter = Counter("hits", "Hits", ["k"], registry=None)
    child = counter.labels("a")
    child.inc(2**40)
    child.inc()
    assert child.value == 2**40 + 1


@pytest.mark.parametrize(
    "amount, error, message",
    [
        (-1, ValueError, "non-negative"),
        (-0.5, ValueError, "non-negative"),
        (math.nan, ValueError, "non-negative"),
        (math.inf, ValueError, "finite"),
        ("1", TypeError, "must be a number"),
        (True, TypeError, "must be a number"),
    ],
)
def test_counter_rejects_bad_amounts(amount, error, message):
    counter = Counter("bad", "b", registry=None)
    with pytest.raises(error, match=message):
        counter.inc(amount)


def test_huge_int_amount_goes_through_float():
    counter = Counter("big", "b", ["k"], registry=None)
    counter.labels("a").inc(2**70)
    assert counter.labels("a").value == float(2**70)


def test_registers_with_registry_and_rejects_duplicate():
    registry = CollectorRegistry()
    Histogram("dup_seconds", "d", registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Histogram("dup_seconds", "d", registry=registry)


def test_timer_observes_elapsed():
    histogram = Histogram("timed_seconds", "t", registry=None)

    @histogram.time()
    def work():
        return 7

    with histogram.time():
        pass
    assert work() == 7
    ((_, cumulative, total),) = histogram._histogram._collect_series()
    assert cumulative[-1] == 2
    assert 0 <= total < 1


def test_thread_storm_counts_every_observation():
    histogram = Histogram("storm_seconds", "s", ["t"], buckets=[0.5], registry=None)
    counter = Counter("storm", "s", ["t"], registry=None)
    threads_count, per_thread = 8, 20000
    barrier = threading.Barrier(threads_count)

    def run(index):
        barrier.wait()
        # Half the threads share one series, the rest add their own.
        label = "shared" if index % 2 else f"own{index}"
        child = histogram.labels(label)
        counts = counter.labels(label)
        for i in range(per_thread):
            child.observe(i % 2)
            counts.inc()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    series = {
        values[0]: (cumulative, total)
        for values, cumulative, total in histogram._histogram._collect_series()
    }
    assert series["shared"][0] == [2 * per_thread, 4 * per_thread]
    assert series["shared"][1] == 2 * per_thread
    assert series["own0"][0] == [per_thread // 2, per_thread]
    assert counter.labels("shared").value == 4 * per_thread
    assert len(series) == 5


def test_child_references_parent_once():
    core = _core.Histogram(labelnames=("k",))
    before = sys.getrefcount(core)
    child = core.labels("a")
    assert sys.getrefcount(core) == before + 1
    for _ in range(100):
        core.labels("a")
        core.labels("b")
    assert sys.getrefcount(core) == before + 2
    del core
    child.observe(1.0)  # the child's reference keeps the C histogram valid
    assert child.observe(2.0) is None


def test_module_imports_twice_into_fresh_objects():
    spec = importlib.util.find_spec("pygamesvc._core")
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert fresh.Histogram is not _core.Histogram
    histogram = fresh.Histogram(labelnames=("k",))
    histogram.labels("a").observe(0.25)
    assert histogram._collect_series()[0][2] == 0.25
    counter = fresh.Counter()
    counter.inc(3)
    assert counter._collect_series() == [((), 3.0)]
