/*
 * test_sampler.c - tests of the gauge sampler (sampler.c) and the process
 * statistic readers (process_stats.c).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "check.h"
#include "pgs_error.h"
#include "pgs_time.h"
#include "sampler.h"

#define TEST_FAMILY PGS_GAUGE_FIRST_SOURCE

static _Atomic int64_t fake_rss;

static int
read_fake_rss(int64_t *out)
{
    *out = atomic_load(&fake_rss);
    return PGS_OK;
}

static int
read_nothing(int64_t *out)
{
    (void)out;
    return PGS_EIO;
}

/* A source whose gauges the test sets before each tick. */
typedef struct {
    int64_t queued;
    int include_second;
} fake_source;

static void
record_fake(void *arg, pgs_sampler *sampler)
{
    fake_source *source = arg;

    pgs_sampler_record(sampler, TEST_FAMILY, "first", source->queued);
    if (source->include_second)
        pgs_sampler_record(sampler, TEST_FAMILY, "second", 7);
}

static pgs_sampler *
make_sampler(int64_t interval_ns)
{
    pgs_sampler_options options = {0};
    pgs_sampler *sampler = NULL;

    options.interval_ns = interval_ns;
    options.read_rss = read_fake_rss;
    options.read_threads = read_nothing;
    CHECK(pgs_sampler_create(&sampler, &options) == PGS_OK);
    return sampler;
}

static const pgs_gauge_reading *
find(const pgs_gauge_reading *readings, size_t n, int family,
     const char *label)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (readings[i].family == family && strcmp(readings[i].label, label) == 0)
            return &readings[i];
    }
    return NULL;
}

static void
test_platform_readers_report_this_process(void)
{
    int64_t rss = 0, threads = 0, grown = 0;
    char *block;
    size_t size = 64u << 20;

    CHECK(pgs_read_rss_bytes(&rss) == PGS_OK);
    CHECK(rss > 1 << 20);
    CHECK(pgs_read_os_threads(&threads) == PGS_OK);
    CHECK(threads >= 1);

    /* Touching 64 MiB must show up in the resident set. */
    block = malloc(size);
    CHECK(block != NULL);
    memset(block, 1, size);
    CHECK(pgs_read_rss_bytes(&grown) == PGS_OK);
    CHECK(grown >= rss + (int64_t)(size / 2));
    free(block);
}

static void *
park(void *arg)
{
    pthread_barrier_wait(arg); /* started */
    pthread_barrier_wait(arg); /* released */
    return NULL;
}

static void
test_thread_count_follows_threads(void)
{
    pthread_t threads[5];
    pthread_barrier_t barrier;
    int64_t before = 0, during = 0;
    int i;

    /* Sanitizer runtimes start a helper thread at the first
       pthread_create; let that happen before counting. */
    pthread_barrier_init(&barrier, NULL, 1);
    pthread_create(&threads[0], NULL, park, &barrier);
    pthread_join(threads[0], NULL);
    pthread_barrier_destroy(&barrier);

    CHECK(pgs_read_os_threads(&before) == PGS_OK);
    pthread_barrier_init(&barrier, NULL, 6);
    for (i = 0; i < 5; i++)
        pthread_create(&threads[i], NULL, park, &barrier);
    pthread_barrier_wait(&barrier);
    CHECK(pgs_read_os_threads(&during) == PGS_OK);
    CHECK(during == before + 5);
    pthread_barrier_wait(&barrier);
    for (i = 0; i < 5; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&barrier);
}

static void
test_tick_keeps_current_and_max(void)
{
    pgs_sampler *sampler = make_sampler(PGS_NS_PER_SEC);
    fake_source source = {5, 1};
    pgs_gauge_reading *readings;
    const pgs_gauge_reading *first, *rss;
    size_t n;

    CHECK(pgs_sampler_add_source(sampler, record_fake, &source) == PGS_OK);
    atomic_store(&fake_rss, 1000);
    CHECK(pgs_sampler_tick(sampler) == PGS_OK);
    source.queued = 9;
    atomic_store(&fake_rss, 4000);
    CHECK(pgs_sampler_tick(sampler) == PGS_OK);
    source.queued = 2;
    atomic_store(&fake_rss, 3000);
    CHECK(pgs_sampler_tick(sampler) == PGS_OK);
    CHECK(pgs_sampler_ticks(sampler) == 3);

    CHECK(pgs_sampler_read(sampler, &readings, &n, 1) == PGS_OK);
    CHECK(n == 3); /* rss, first, second; no thread gauge */
    first = find(readings, n, TEST_FAMILY, "first");
    rss = find(readings, n, PGS_GAUGE_RSS_BYTES, "");
    CHECK(first != NULL && first->current == 2 && first->max == 9);
    CHECK(rss != NULL && rss->current == 3000 && rss->max == 4000);
    CHECK(find(readings, n, PGS_GAUGE_OS_THREADS, "") == NULL);
    free(readings);

    /* The read reset each maximum to the current value. */
    CHECK(pgs_sampler_read(sampler, &readings, &n, 0) == PGS_OK);
    first = find(readings, n, TEST_FAMILY, "first");
    CHECK(first != NULL && first->max == 2);
    free(readings);
    pgs_sampler_free(sampler);
}

static void
test_unrecorded_gauge_is_dropped(void)
{
    pgs_sampler *sampler = make_sampler(PGS_NS_PER_SEC);
    fake_source source = {1, 1};
    pgs_gauge_reading *readings;
    size_t n;

    CHECK(pgs_sampler_add_source(sampler, record_fake, &source) == PGS_OK);
    CHECK(pgs_sampler_tick(sampler) == PGS_OK);
    source.include_second = 0;
    CHECK(pgs_sampler_tick(sampler) == PGS_OK);
    CHECK(pgs_sampler_read(sampler, &readings, &n, 1) == PGS_OK);
    CHECK(find(readings, n, TEST_FAMILY, "first") != NULL);
    CHECK(find(readings, n, TEST_FAMILY, "second") == NULL);
    free(readings);
    pgs_sampler_free(sampler);
}

static void
record_twice(void *arg, pgs_sampler *sampler)
{
    (void)arg;
    pgs_sampler_record(sampler, TEST_FAMILY, "shared", 3);
    pgs_sampler_record(sampler, TEST_FAMILY, "shared", 4);
}

static void
test_same_gauge_twice_adds_up(void)
{
    pgs_sampler *sampler = make_sampler(PGS_NS_PER_SEC);
    pgs_gauge_reading *readings;
    const pgs_gauge_reading *shared;
    size_t n;

    CHECK(pgs_sampler_add_source(sampler, record_twice, NULL) == PGS_OK);
    CHECK(pgs_sampler_tick(sampler) == PGS_OK);
    CHECK(pgs_sampler_tick(sampler) == PGS_OK);
    CHECK(pgs_sampler_read(sampler, &readings, &n, 1) == PGS_OK);
    shared = find(readings, n, TEST_FAMILY, "shared");
    CHECK(shared != NULL && shared->current == 7 && shared->max == 7);
    free(readings);
    pgs_sampler_free(sampler);
}

static void
record_long_label(void *arg, pgs_sampler *sampler)
{
    char label[300];

    (void)arg;
    /* 'a' then two-byte characters (U+00E9) past the label limit. */
    label[0] = 'a';
    for (int i = 1; i + 1 < 299; i += 2) {
        label[i] = (char)0xC3;
        label[i + 1] = (char)0xA9;
    }
    label[299] = '\0';
    pgs_sampler_record(sampler, TEST_FAMILY, label, 1);
}

static void
test_long_label_cut_at_character(void)
{
    pgs_sampler *sampler = make_sampler(PGS_NS_PER_SEC);
    pgs_gauge_reading *readings;
    const pgs_gauge_reading *label;
    size_t n, length;

    CHECK(pgs_sampler_add_source(sampler, record_long_label, NULL) == PGS_OK);
    CHECK(pgs_sampler_tick(sampler) == PGS_OK);
    CHECK(pgs_sampler_read(sampler, &readings, &n, 1) == PGS_OK);
    CHECK(n == 2);
    label = readings[0].family == TEST_FAMILY ? &readings[0] : &readings[1];
    length = strlen(label->label);
    CHECK(length < PGS_SAMPLER_LABEL_MAX);
    CHECK(length % 2 == 1); /* 'a' plus whole two-byte characters */
    free(readings);
    pgs_sampler_free(sampler);
}

static void
test_label_length_matches_kept_label(void)
{
    char label[300];
    size_t i;

    CHECK(pgs_sampler_label_length("") == 0);
    CHECK(pgs_sampler_label_length("pool-1") == 6);
    /* 127 ASCII bytes fit; one more is cut. */
    memset(label, 'x', sizeof(label));
    label[PGS_SAMPLER_LABEL_MAX - 1] = '\0';
    CHECK(pgs_sampler_label_length(label) == PGS_SAMPLER_LABEL_MAX - 1);
    label[PGS_SAMPLER_LABEL_MAX - 1] = 'x';
    label[PGS_SAMPLER_LABEL_MAX] = '\0';
    CHECK(pgs_sampler_label_length(label) == PGS_SAMPLER_LABEL_MAX - 1);
    /* "ab" then U+00E9 (two bytes): byte 127 is the second byte of a
       character, so the cut steps back to that character's start. */
    label[0] = 'a';
    label[1] = 'b';
    for (i = 2; i + 1 < 299; i += 2) {
        label[i] = (char)0xC3;
        label[i + 1] = (char)0xA9;
    }
    label[299] = '\0';
    CHECK(pgs_sampler_label_length(label) == PGS_SAMPLER_LABEL_MAX - 2);
}

/* The same visit as the TTLCache source in the binding: one entries gauge
   per cache, read from pgs_cache_get_stats without a stripe lock. */
static void
record_cache_entries(void *arg, pgs_sampler *sampler)
{
    pgs_cache_stats stats;

    pgs_cache_get_stats(arg, &stats);
    pgs_sampler_record(sampler, TEST_FAMILY, "players", (int64_t)stats.entries);
}

static int
int_key_eq(void *ctx, const void *stored, const void *probe)
{
    (void)ctx;
    return *(const int *)stored == *(const int *)probe;
}

static void
no_reference(void *ctx, void *key_or_value)
{
    (void)ctx;
    (void)key_or_value;
}

static void
test_cache_entries_gauge_keeps_max(void)
{
    pgs_sampler *sampler = make_sampler(PGS_NS_PER_SEC);
    pgs_cache_options options = {0};
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    pgs_gauge_reading *readings;
    const pgs_gauge_reading *entries;
    pgs_cache *cache = NULL;
    static int keys[5] = {0, 1, 2, 3, 4};
    size_t n;
    int i;

    options.maxsize = PGS_CACHE_UNBOUNDED;
    options.stripes = 4;
    options.ops.key_eq = int_key_eq;
    options.ops.retain = no_reference;
    options.ops.release = no_reference;
    CHECK(pgs_cache_create(&cache, &options) == PGS_OK);
    CHECK(pgs_sampler_add_source(sampler, record_cache_entries, cache) ==
          PGS_OK);
    for (i = 0; i < 5; i++)
        CHECK(pgs_cache_set(cache, &keys[i], (uint64_t)i * 0x9E3779B97F4A7C15u,
                            &keys[i], INT64_MAX, 0, 0, NULL,
                            &garbage) == PGS_OK);
    CHECK(pgs_sampler_tick(sampler) == PGS_OK);
    for (i = 0; i < 3; i++)
        CHECK(pgs_cache_delete(cache, &keys[i],
                               (uint64_t)i * 0x9E3779B97F4A7C15u, 0, NULL,
                               &garbage) == PGS_OK);
    pgs_cache_garbage_release(cache, &garbage);
    CHECK(pgs_sampler_tick(sampler) == PGS_OK);

    CHECK(pgs_sampler_read(sampler, &readings, &n, 1) == PGS_OK);
    entries = find(readings, n, TEST_FAMILY, "players");
    CHECK(entries != NULL);
    CHECK(entries != NULL && entries->current == 2);
    CHECK(entries != NULL && entries->max == 5);
    free(readings);

    /* The read restarted the maximum from the current value. */
    CHECK(pgs_sampler_read(sampler, &readings, &n, 0) == PGS_OK);
    entries = find(readings, n, TEST_FAMILY, "players");
    CHECK(entries != NULL);
    CHECK(entries != NULL && entries->max == 2);
    free(readings);
    pgs_sampler_free(sampler);
    pgs_cache_destroy(cache);
}

static void
test_thread_ticks_until_stopped(void)
{
    pgs_sampler *sampler = make_sampler(PGS_NS_PER_SEC / 1000);
    uint64_t ticks;

    CHECK(!pgs_sampler_is_running(sampler));
    CHECK(pgs_sampler_start(sampler) == PGS_OK);
    CHECK(pgs_sampler_start(sampler) == PGS_OK); /* idempotent */
    CHECK(pgs_sampler_is_running(sampler));
    CHECK(pgs_sampler_wait_ticks(sampler, 5,
                                 pgs_monotonic_ns() + 5 * PGS_NS_PER_SEC) ==
          PGS_OK);
    pgs_sampler_stop(sampler);
    pgs_sampler_stop(sampler); /* idempotent */
    CHECK(!pgs_sampler_is_running(sampler));
    ticks = pgs_sampler_ticks(sampler);
    CHECK(ticks >= 5);
    CHECK(pgs_sampler_wait_ticks(sampler, ticks + 1, pgs_monotonic_ns() +
                                                         PGS_NS_PER_SEC / 50) ==
          PGS_ETIMEDOUT);

    /* A stopped sampler starts again. */
    CHECK(pgs_sampler_start(sampler) == PGS_OK);
    CHECK(pgs_sampler_wait_ticks(sampler, ticks + 1,
                                 pgs_monotonic_ns() + 5 * PGS_NS_PER_SEC) ==
          PGS_OK);
    pgs_sampler_free(sampler);
}

static void
test_set_interval_wakes_thread(void)
{
    pgs_sampler *sampler = make_sampler(3600 * PGS_NS_PER_SEC);

    CHECK(pgs_sampler_start(sampler) == PGS_OK);
    CHECK(pgs_sampler_wait_ticks(sampler, 1,
                                 pgs_monotonic_ns() + 5 * PGS_NS_PER_SEC) ==
          PGS_OK);
    CHECK(pgs_sampler_set_interval(sampler, 0) == PGS_EINVAL);
    CHECK(pgs_sampler_set_interval(sampler, PGS_NS_PER_SEC / 1000) == PGS_OK);
    /* The old deadline an hour away was replaced at the next wait. */
    CHECK(pgs_sampler_wait_ticks(sampler, 3,
                                 pgs_monotonic_ns() + 5 * PGS_NS_PER_SEC) ==
          PGS_OK);
    pgs_sampler_free(sampler);
}

typedef struct {
    pthread_barrier_t *barrier;
    pgs_sampler *sampler;
} reader_arg;

static void *
read_in_loop(void *arg)
{
    reader_arg *reader = arg;
    pgs_gauge_reading *readings;
    size_t n;
    int i;

    pthread_barrier_wait(reader->barrier);
    for (i = 0; i < 2000; i++) {
        if (i % 2 == 0)
            CHECK(pgs_sampler_tick(reader->sampler) == PGS_OK);
        CHECK(pgs_sampler_read(reader->sampler, &readings, &n, i % 3 == 0) ==
              PGS_OK);
        free(readings);
    }
    return NULL;
}

static void
test_readers_and_ticks_storm(void)
{
    pgs_sampler *sampler = make_sampler(PGS_NS_PER_SEC / 10000);
    fake_source source = {3, 1};
    pthread_t threads[4];
    pthread_barrier_t barrier;
    reader_arg reader;
    int i;

    CHECK(pgs_sampler_add_source(sampler, record_fake, &source) == PGS_OK);
    pthread_barrier_init(&barrier, NULL, 4);
    reader.barrier = &barrier;
    reader.sampler = sampler;
    CHECK(pgs_sampler_start(sampler) == PGS_OK);
    for (i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, read_in_loop, &reader);
    for (i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    CHECK(pgs_sampler_ticks(sampler) >= 4000);
    pgs_sampler_free(sampler);
    pthread_barrier_destroy(&barrier);
}

static void
test_rejects_bad_interval(void)
{
    pgs_sampler_options options = {0};
    pgs_sampler *sampler;

    options.interval_ns = 0;
    CHECK(pgs_sampler_create(&sampler, &options) == PGS_EINVAL);
    CHECK(sampler == NULL);
}

int
main(void)
{
    RUN_TEST(test_platform_readers_report_this_process);
    RUN_TEST(test_thread_count_follows_threads);
    RUN_TEST(test_tick_keeps_current_and_max);
    RUN_TEST(test_unrecorded_gauge_is_dropped);
    RUN_TEST(test_same_gauge_twice_adds_up);
    RUN_TEST(test_long_label_cut_at_character);
    RUN_TEST(test_label_length_matches_kept_label);
    RUN_TEST(test_cache_entries_gauge_keeps_max);
    RUN_TEST(test_thread_ticks_until_stopped);
    RUN_TEST(test_set_interval_wakes_thread);
    RUN_TEST(test_readers_and_ticks_storm);
    RUN_TEST(test_rejects_bad_interval);
    return check_report();
}
