/*
 * test_cache.c - tests of the striped cache core with a fake clock, counted
 * references and a failing allocator.
 *
 * Keys and values are small structs with a reference count, so each test
 * can check that everything the cache retained was released.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "check.h"

#define SEC INT64_C(1000000000)

typedef struct object {
    atomic_int refs;
    int id;
    int slow; /* key_eq cannot decide on this key under the lock */
} object;

static atomic_int live_objects;
static atomic_int allocations_left = -1; /* -1: no limit */


static object *
object_new(int id)
{
    object *o = calloc(1, sizeof(*o));

    o->refs = 1;
    o->id = id;
    live_objects++;
    return o;
}


static void
object_release(void *ctx, void *p)
{
    object *o = p;

    (void)ctx;
    if (--o->refs == 0) {
        live_objects--;
        free(o);
    }
}


static void
object_retain(void *ctx, void *p)
{
    (void)ctx;
    ((object *)p)->refs++;
}


static int
object_eq(void *ctx, const void *stored, const void *probe)
{
    const object *a = stored, *b = probe;

    (void)ctx;
    if (a->slow || b->slow)
        return PGS_EAGAIN;
    return a->id == b->id;
}


static void *
limited_alloc(void *ctx, size_t size)
{
    (void)ctx;
    if (allocations_left == 0)
        return NULL;
    if (allocations_left > 0)
        allocations_left--;
    return malloc(size);
}


static void
limited_free(void *ctx, void *block)
{
    (void)ctx;
    free(block);
}


static pgs_cache *
make_cache(size_t maxsize, size_t stripes)
{
    pgs_cache_options options = {
        .maxsize = maxsize,
        .stripes = stripes,
        .ops = {.key_eq = object_eq,
                .retain = object_retain,
                .release = object_release,
                .alloc = limited_alloc,
                .free = limited_free},
    };
    pgs_cache *cache = NULL;

    CHECK(pgs_cache_create(&cache, &options) == PGS_OK);
    return cache;
}


/* Set key id -> value id, dropping the test's own references. */
static int
put(pgs_cache *cache, int key_id, int value_id, int64_t expires, int64_t now)
{
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    object *key = object_new(key_id), *value = object_new(value_id);
    int rc;

    rc = pgs_cache_set(cache, key, (uint64_t)key_id, value, expires, now, 0,
                       NULL, &garbage);
    pgs_cache_garbage_release(cache, &garbage);
    object_release(NULL, key);
    object_release(NULL, value);
    return rc;
}


/* The value id stored under key id, or -1 if missing. */
static int
lookup(pgs_cache *cache, int key_id, int64_t now)
{
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    object probe = {.refs = 1, .id = key_id};
    void *value = NULL;
    int rc, id = -1;

    rc = pgs_cache_get(cache, &probe, (uint64_t)key_id, now, &value, NULL,
                       &garbage);
    if (rc == PGS_OK) {
        id = ((object *)value)->id;
        object_release(NULL, value);
    }
    pgs_cache_garbage_release(cache, &garbage);
    return id;
}


static void
test_set_get_delete(void)
{
    pgs_cache *cache = make_cache(PGS_CACHE_UNBOUNDED, 4);
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    object probe = {.refs = 1, .id = 7};
    pgs_cache_stats stats;
    void *value = NULL;

    CHECK(put(cache, 7, 70, 10 * SEC, 0) == PGS_OK);
    CHECK(put(cache, 8, 80, 10 * SEC, 0) == PGS_OK);
    CHECK(lookup(cache, 7, 1) == 70);
    CHECK(put(cache, 7, 71, 10 * SEC, 0) == PGS_OK);
    CHECK(lookup(cache, 7, 1) == 71);
    CHECK(pgs_cache_size(cache) == 2);
    CHECK(lookup(cache, 9, 1) == -1);

    CHECK(pgs_cache_delete(cache, &probe, 7, 1, &value, &garbage) == PGS_OK);
    CHECK(value != NULL && ((object *)value)->id == 71);
    object_release(NULL, value);
    CHECK(pgs_cache_delete(cache, &probe, 7, 1, NULL, &garbage) ==
          PGS_ENOTFOUND);
    pgs_cache_garbage_release(cache, &garbage);
    CHECK(pgs_cache_size(cache) == 1);

    pgs_cache_get_stats(cache, &stats);
    CHECK(stats.hits == 2);
    CHECK(stats.misses == 1);
    CHECK(stats.entries == 1);
    CHECK(stats.maxsize == PGS_CACHE_UNBOUNDED);
    pgs_cache_destroy(cache);
    CHECK(live_objects == 0);
}


static void
test_expiry_with_fake_clock(void)
{
    pgs_cache *cache = make_cache(PGS_CACHE_UNBOUNDED, 2);
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    pgs_cache_stats stats;
    int i;

    CHECK(put(cache, 1, 10, 5 * SEC, 0) == PGS_OK);
    CHECK(lookup(cache, 1, 5 * SEC - 1) == 10);
    CHECK(lookup(cache, 1, 5 * SEC) == -1); /* lazy expiry on access */
    CHECK(pgs_cache_size(cache) == 0);

    for (i = 0; i < 100; i++)
        CHECK(put(cache, i, i, (i % 2 ? 1 : 3) * SEC, 0) == PGS_OK);
    CHECK(pgs_cache_expire_all(cache, 2 * SEC, &garbage) == 50);
    pgs_cache_garbage_release(cache, &garbage);
    CHECK(pgs_cache_size(cache) == 50);
    CHECK(live_objects == 100);

    pgs_cache_get_stats(cache, &stats);
    CHECK(stats.expirations == 51);
    pgs_cache_destroy(cache);
    CHECK(live_objects == 0);
}


static void
test_sweep_respects_budget(void)
{
    pgs_cache *cache = make_cache(PGS_CACHE_UNBOUNDED, 1);
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    size_t expired, total = 0;
    int i, ticks = 0;

    for (i = 0; i < 1000; i++)
        put(cache, i, i, SEC, 0);
    while (pgs_cache_size(cache) > 0 && ticks < 1000) {
        expired = pgs_cache_sweep(cache, 2 * SEC, 32, &garbage);
        /* A tick visits at most the budget plus one bucket's chain. */
        CHECK(expired <= 32 + 8);
        total += expired;
        ticks++;
    }
    pgs_cache_garbage_release(cache, &garbage);
    CHECK(total == 1000);
    CHECK(ticks >= 1000 / 40);
    CHECK(live_objects == 0);
    pgs_cache_destroy(cache);
}


static void
test_bound_and_eviction(void)
{
    pgs_cache *cache = make_cache(100, 4);
    pgs_cache_stats stats;
    int i, round, hits = 0;

    for (i = 0; i < 1000; i++) {
        CHECK(put(cache, i, i, 100 * SEC, 0) == PGS_OK);
        CHECK(pgs_cache_size(cache) <= 100);
    }
    pgs_cache_get_stats(cache, &stats);
    CHECK(stats.evictions == 1000 - stats.entries);
    CHECK(live_objects == (int)stats.entries * 2);

    /* A small hot set survives a scan of one-off keys. */
    for (round = 0; round < 20; round++) {
        for (i = 0; i < 10; i++) {
            if (lookup(cache, 5000 + i, 0) < 0)
                put(cache, 5000 + i, i, 100 * SEC, 0);
        }
    }
    for (i = 0; i < 2000; i++) {
        put(cache, 10000 + i, i, 100 * SEC, 0);
        if (i % 50 == 0)
            lookup(cache, 5000 + i / 50 % 10, 0);
    }
    for (i = 0; i < 10; i++)
        hits += lookup(cache, 5000 + i, 0) >= 0;
    CHECK(hits >= 8);
    pgs_cache_destroy(cache);
    CHECK(live_objects == 0);
}


static void
test_maxsize_zero_stores_nothing(void)
{
    pgs_cache *cache = make_cache(0, 1);

    CHECK(put(cache, 1, 1, SEC, 0) == PGS_OK);
    CHECK(lookup(cache, 1, 0) == -1);
    CHECK(pgs_cache_size(cache) == 0);
    CHECK(live_objects == 0);
    pgs_cache_destroy(cache);
}


static void
test_failing_allocator(void)
{
    pgs_cache *cache = make_cache(PGS_CACHE_UNBOUNDED, 1);

    CHECK(put(cache, 1, 1, SEC, 0) == PGS_OK);
    allocations_left = 0;
    CHECK(put(cache, 2, 2, SEC, 0) == PGS_ENOMEM);
    CHECK(put(cache, 1, 5, SEC, 0) == PGS_OK); /* replacing allocates nothing */
    allocations_left = -1;
    CHECK(lookup(cache, 2, 0) == -1);
    CHECK(lookup(cache, 1, 0) == 5);
    CHECK(pgs_cache_size(cache) == 1);
    pgs_cache_destroy(cache);
    CHECK(live_objects == 0);
}


static void
test_create_rejects_bad_options(void)
{
    pgs_cache_options options = {
        .maxsize = 10,
        .stripes = 3,
        .ops = {.key_eq = object_eq,
                .retain = object_retain,
                .release = object_release},
    };
    pgs_cache *cache = NULL;

    CHECK(pgs_cache_create(&cache, &options) == PGS_EINVAL);
    options.stripes = 0;
    CHECK(pgs_cache_create(&cache, &options) == PGS_EINVAL);
    options.stripes = 2 * PGS_CACHE_MAX_STRIPES;
    CHECK(pgs_cache_create(&cache, &options) == PGS_EINVAL);
    options.stripes = 1;
    options.ops.key_eq = NULL;
    CHECK(pgs_cache_create(&cache, &options) == PGS_EINVAL);
    CHECK(cache == NULL);
}


static void
test_slow_path_pins_and_revalidates(void)
{
    pgs_cache *cache = make_cache(PGS_CACHE_UNBOUNDED, 1);
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    object *key = object_new(3), *value = object_new(30), *other;
    object probe = {.refs = 1, .id = 3, .slow = 1};
    pgs_cache_entry *found[4];
    uint64_t version;
    void *out = NULL;
    size_t n;

    key->slow = 1;
    CHECK(pgs_cache_set(cache, key, 3, value, SEC, 0, 0, NULL, &garbage) ==
          PGS_OK);
    /* Another slow key with the same hash cannot be decided under lock. */
    CHECK(pgs_cache_get(cache, &probe, 3, 0, &out, NULL, &garbage) ==
          PGS_EAGAIN);
    n = pgs_cache_find_pinned(cache, 3, 0, found, 4, &version, &garbage);
    CHECK(n == 1);
    CHECK(pgs_cache_entry_key(found[0]) == key);

    /* The entry is deleted while pinned: its memory stays valid. */
    CHECK(pgs_cache_delete(cache, key, 3, 0, NULL, &garbage) == PGS_OK);
    pgs_cache_garbage_release(cache, &garbage);
    CHECK(key->refs == 2);
    CHECK(pgs_cache_entry_get(cache, found[0], 0, &out, NULL, &garbage) ==
          PGS_EAGAIN);
    pgs_cache_unpin(cache, found, n, &garbage);
    pgs_cache_garbage_release(cache, &garbage);
    CHECK(key->refs == 1);

    /* insert_checked notices a change of the stripe. */
    n = pgs_cache_find_pinned(cache, 3, 0, found, 4, &version, &garbage);
    CHECK(n == 0);
    other = object_new(4);
    CHECK(put(cache, 4, 40, SEC, 0) == PGS_OK);
    CHECK(pgs_cache_insert_checked(cache, key, 3, value, SEC, 0, version,
                                   &garbage) == PGS_EAGAIN);
    n = pgs_cache_find_pinned(cache, 3, 0, found, 4, &version, &garbage);
    CHECK(pgs_cache_insert_checked(cache, key, 3, value, SEC, 0, version,
                                   &garbage) == PGS_OK);
    n = pgs_cache_find_pinned(cache, 3, 0, found, 4, &version, &garbage);
    CHECK(n == 1);
    CHECK(pgs_cache_entry_set(cache, found[0], other, SEC, 0, 0, NULL,
                              &garbage) == PGS_OK);
    CHECK(pgs_cache_entry_get(cache, found[0], 0, &out, NULL, &garbage) ==
          PGS_OK);
    CHECK(out == other);
    object_release(NULL, out);
    CHECK(pgs_cache_entry_delete(cache, found[0], 0, NULL, &garbage) ==
          PGS_OK);
    pgs_cache_unpin(cache, found, n, &garbage);
    pgs_cache_garbage_release(cache, &garbage);
    CHECK(pgs_cache_size(cache) == 1);

    object_release(NULL, key);
    object_release(NULL, value);
    object_release(NULL, other);
    pgs_cache_destroy(cache);
    CHECK(live_objects == 0);
}


static void
test_collect_and_clear(void)
{
    pgs_cache *cache = make_cache(1000, 8);
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    pgs_cache_item *items = NULL;
    size_t n = 0, capacity = 0, i;

    for (i = 0; i < 300; i++)
        put(cache, (int)i, (int)i, (i < 100 ? 1 : 10) * SEC, 0);
    for (i = 0; i < pgs_cache_stripes(cache); i++)
        CHECK(pgs_cache_collect(cache, i, 5 * SEC, &items, &n, &capacity) ==
              PGS_OK);
    CHECK(n == 200);
    for (i = 0; i < n; i++) {
        CHECK(((object *)items[i].key)->id >= 100);
        object_release(NULL, items[i].key);
        object_release(NULL, items[i].value);
    }
    free(items);
    pgs_cache_clear(cache, &garbage);
    pgs_cache_garbage_release(cache, &garbage);
    CHECK(pgs_cache_size(cache) == 0);
    CHECK(live_objects == 0);
    pgs_cache_destroy(cache);
}


typedef struct {
    pgs_cache *cache;
    pthread_barrier_t *barrier;
    int seed;
} storm_arg;

static void *
storm_thread(void *p)
{
    storm_arg *arg = p;
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    object probe = {.refs = 1};
    unsigned state = (unsigned)arg->seed;
    int i, key, found;

    pthread_barrier_wait(arg->barrier);
    for (i = 0; i < 20000; i++) {
        state = state * 1103515245u + 12345u;
        key = (int)(state >> 16) % 500;
        probe.id = key;
        switch ((state >> 8) % 5) {
        case 0:
            put(arg->cache, key, key, (int64_t)(i % 7) * SEC, i % 5 * SEC);
            break;
        case 1:
            pgs_cache_delete(arg->cache, &probe, (uint64_t)key, 0, NULL,
                             &garbage);
            break;
        case 2:
            pgs_cache_sweep(arg->cache, (int64_t)(i % 9) * SEC, 16, &garbage);
            break;
        default:
            found = lookup(arg->cache, key, 0);
            CHECK(found == -1 || found == key);
            break;
        }
        pgs_cache_garbage_release(arg->cache, &garbage);
    }
    return NULL;
}


static void
test_thread_storm(void)
{
    pgs_cache *cache = make_cache(200, 4);
    pthread_t threads[4];
    storm_arg args[4];
    pthread_barrier_t barrier;
    pgs_cache_stats stats;
    int i;

    pthread_barrier_init(&barrier, NULL, 4);
    for (i = 0; i < 4; i++) {
        args[i] = (storm_arg){cache, &barrier, i + 1};
        pthread_create(&threads[i], NULL, storm_thread, &args[i]);
    }
    for (i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&barrier);
    pgs_cache_get_stats(cache, &stats);
    CHECK(stats.entries <= 200);
    CHECK(live_objects == (int)stats.entries * 2);
    pgs_cache_destroy(cache);
    CHECK(live_objects == 0);
}


int
main(void)
{
    RUN_TEST(test_set_get_delete);
    RUN_TEST(test_expiry_with_fake_clock);
    RUN_TEST(test_sweep_respects_budget);
    RUN_TEST(test_bound_and_eviction);
    RUN_TEST(test_maxsize_zero_stores_nothing);
    RUN_TEST(test_failing_allocator);
    RUN_TEST(test_create_rejects_bad_options);
    RUN_TEST(test_slow_path_pins_and_revalidates);
    RUN_TEST(test_collect_and_clear);
    RUN_TEST(test_thread_storm);
    return check_report();
}
