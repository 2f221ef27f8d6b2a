/*
 * test_histogram.c - tests of the lock-free histograms and counters.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"
#include "counter.h"
#include "histogram.h"
#include "pgs_error.h"

#define STORM_THREADS 8
#define STORM_OBSERVATIONS 100000

static void
test_buckets_are_le_and_cumulative(void)
{
    const double bounds[] = {1.0, 2.0, 5.0};
    pgs_histogram *histogram;
    pgs_histogram_series *series;
    pgs_histogram_snapshot snap;
    size_t index;

    CHECK(pgs_histogram_create(&histogram, bounds, 3, 4) == PGS_OK);
    CHECK(pgs_histogram_add_series(histogram, &index) == PGS_OK);
    CHECK(index == 0);
    series = pgs_histogram_series_at(histogram, index);
    CHECK(series != NULL);
    pgs_histogram_observe(histogram, series, 0.5);
    pgs_histogram_observe(histogram, series, 1.0); /* le="1" includes 1 */
    pgs_histogram_observe(histogram, series, 1.5);
    pgs_histogram_observe(histogram, series, 5.0);
    pgs_histogram_observe(histogram, series, 7.0);
    pgs_histogram_observe(histogram, series, NAN);
    pgs_histogram_read(histogram, series, &snap);
    CHECK(snap.cumulative[0] == 2);
    CHECK(snap.cumulative[1] == 3);
    CHECK(snap.cumulative[2] == 4);
    CHECK(snap.cumulative[3] == 6);
    CHECK(snap.count == 6);
    CHECK(isnan(snap.sum));
    pgs_histogram_free(histogram);
}

static void
test_sum_adds_observations(void)
{
    pgs_histogram *histogram;
    pgs_histogram_series *series;
    pgs_histogram_snapshot snap;
    size_t index;

    CHECK(pgs_histogram_create(&histogram, pgs_histogram_default_bounds,
                               pgs_histogram_default_nbounds, 1) == PGS_OK);
    CHECK(pgs_histogram_nbounds(histogram) == 14);
    CHECK(pgs_histogram_add_series(histogram, &index) == PGS_OK);
    series = pgs_histogram_series_at(histogram, index);
    pgs_histogram_observe(histogram, series, 0.25);
    pgs_histogram_observe(histogram, series, 0.5);
    pgs_histogram_read(histogram, series, &snap);
    CHECK(snap.sum == 0.75);
    CHECK(snap.cumulative[6] == 1); /* le=0.25 */
    CHECK(snap.cumulative[7] == 2); /* le=0.5 */
    pgs_histogram_free(histogram);
}

static void
test_rejects_bad_bounds(void)
{
    const double unsorted[] = {1.0, 1.0};
    const double infinite[] = {1.0, INFINITY};
    double many[PGS_HISTOGRAM_MAX_BOUNDS + 1];
    pgs_histogram *histogram;
    int i;

    for (i = 0; i <= PGS_HISTOGRAM_MAX_BOUNDS; i++)
        many[i] = i;
    CHECK(pgs_histogram_create(&histogram, unsorted, 2, 1) == PGS_EINVAL);
    CHECK(histogram == NULL);
    CHECK(pgs_histogram_create(&histogram, infinite, 2, 1) == PGS_EINVAL);
    CHECK(pgs_histogram_create(&histogram, many, PGS_HISTOGRAM_MAX_BOUNDS + 1,
                               1) == PGS_EINVAL);
    CHECK(pgs_histogram_create(&histogram, many, 3, 0) == PGS_EINVAL);
    CHECK(pgs_histogram_create(&histogram, many, 0, 1) == PGS_OK);
    pgs_histogram_free(histogram);
}

static void
test_series_cap(void)
{
    pgs_histogram *histogram;
    size_t index;

    CHECK(pgs_histogram_create(&histogram, pgs_histogram_default_bounds, 3, 2) ==
          PGS_OK);
    CHECK(pgs_histogram_add_series(histogram, &index) == PGS_OK);
    CHECK(pgs_histogram_add_series(histogram, &index) == PGS_OK);
    CHECK(index == 1);
    CHECK(pgs_histogram_add_series(histogram, &index) == PGS_EFULL);
    CHECK(pgs_histogram_add_series(histogram, &index) == PGS_EFULL);
    CHECK(pgs_histogram_series_count(histogram) == 2);
    CHECK(pgs_histogram_series_at(histogram, 2) == NULL);
    pgs_histogram_free(histogram);
}

typedef struct {
    pthread_barrier_t *barrier;
    pgs_histogram *histogram;
    pgs_counter *counter;
} storm_arg;

static void *
storm_thread(void *arg)
{
    storm_arg *storm = arg;
    pgs_histogram_series *series;
    pgs_counter_series *counts;
    size_t index;
    int i;

    pthread_barrier_wait(storm->barrier);
    /* Every thread adds a series while the others observe into series 0. */
    CHECK(pgs_histogram_add_series(storm->histogram, &index) == PGS_OK);
    series = pgs_histogram_series_at(storm->histogram, 0);
    counts = pgs_counter_series_at(storm->counter, 0);
    for (i = 0; i < STORM_OBSERVATIONS; i++) {
        pgs_histogram_observe(storm->histogram, series, (i % 4) * 0.5);
        pgs_counter_inc(counts, 1);
        pgs_counter_add(counts, 0.5);
    }
    return NULL;
}

static void
test_thread_storm_loses_nothing(void)
{
    const double bounds[] = {0.0, 0.5, 1.0};
    pthread_t threads[STORM_THREADS];
    pthread_barrier_t barrier;
    storm_arg storm;
    pgs_histogram_snapshot snap;
    size_t index;
    uint64_t total = (uint64_t)STORM_THREADS * STORM_OBSERVATIONS;
    int i;

    pthread_barrier_init(&barrier, NULL, STORM_THREADS);
    storm.barrier = &barrier;
    CHECK(pgs_histogram_create(&storm.histogram, bounds, 3,
                               STORM_THREADS + 1) == PGS_OK);
    CHECK(pgs_histogram_add_series(storm.histogram, &index) == PGS_OK);
    CHECK(pgs_counter_create(&storm.counter, 1) == PGS_OK);
    CHECK(pgs_counter_add_series(storm.counter, &index) == PGS_OK);
    for (i = 0; i < STORM_THREADS; i++)
        pthread_create(&threads[i], NULL, storm_thread, &storm);
    for (i = 0; i < STORM_THREADS; i++)
        pthread_join(threads[i], NULL);

    pgs_histogram_read(storm.histogram,
                       pgs_histogram_series_at(storm.histogram, 0), &snap);
    CHECK(snap.count == total);
    CHECK(snap.cumulative[0] == total / 4);
    CHECK(snap.cumulative[1] == total / 2);
    CHECK(snap.cumulative[2] == total * 3 / 4);
    CHECK(snap.sum == (double)total * 0.75); /* multiples of 0.5: exact */
    CHECK(pgs_histogram_series_count(storm.histogram) == STORM_THREADS + 1);
    for (i = 0; i <= STORM_THREADS; i++)
        CHECK(pgs_histogram_series_at(storm.histogram, (size_t)i) != NULL);
    CHECK(pgs_counter_value(pgs_counter_series_at(storm.counter, 0)) ==
          (double)total * 1.5);
    pgs_histogram_free(storm.histogram);
    pgs_counter_free(storm.counter);
    pthread_barrier_destroy(&barrier);
}

static void
test_counter_whole_and_fraction(void)
{
    pgs_counter *counter;
    pgs_counter_series *series;
    size_t index;

    CHECK(pgs_counter_create(&counter, 0) == PGS_EINVAL);
    CHECK(pgs_counter_create(&counter, 1) == PGS_OK);
    CHECK(pgs_counter_add_series(counter, &index) == PGS_OK);
    CHECK(pgs_counter_add_series(counter, &index) == PGS_EFULL);
    series = pgs_counter_series_at(counter, 0);
    CHECK(pgs_counter_value(series) == 0.0);
    pgs_counter_inc(series, 3);
    pgs_counter_add(series, 2.25);
    pgs_counter_add(series, 0.25);
    pgs_counter_add(series, 1e300);
    CHECK(pgs_counter_value(series) == 1e300);
    CHECK(pgs_counter_series_count(counter) == 1);
    pgs_counter_free(counter);

    CHECK(pgs_counter_create(&counter, 1) == PGS_OK);
    CHECK(pgs_counter_add_series(counter, &index) == PGS_OK);
    series = pgs_counter_series_at(counter, 0);
    pgs_counter_inc(series, 3);
    pgs_counter_add(series, 2.25);
    pgs_counter_add(series, 0.25);
    CHECK(pgs_counter_value(series) == 5.5);
    pgs_counter_free(counter);
}

int
main(void)
{
    RUN_TEST(test_buckets_are_le_and_cumulative);
    RUN_TEST(test_sum_adds_observations);
    RUN_TEST(test_rejects_bad_bounds);
    RUN_TEST(test_series_cap);
    RUN_TEST(test_thread_storm_loses_nothing);
    RUN_TEST(test_counter_whole_and_fraction);
    return check_report();
}
