/*
 * test_pool.c - tests of the pure-C worker pool (pool.c).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "pgs_error.h"
#include "pgs_time.h"
#include "pool.h"

static atomic_int counter;

static void
count_job(pgs_job *job)
{
    (void)job;
    atomic_fetch_add(&counter, 1);
}

static void
sleep_job(pgs_job *job)
{
    usleep((useconds_t)(uintptr_t)job->data[0]);
    atomic_fetch_add(&counter, 1);
}

static pgs_pool *
make_pool(size_t workers, size_t capacity)
{
    pgs_pool_options options = {0};
    pgs_pool *pool = NULL;

    options.workers = workers;
    options.capacity = capacity;
    options.thread_name = "pgs-test";
    CHECK(pgs_pool_create(&pool, &options) == PGS_OK);
    return pool;
}

static void
finish(pgs_pool *pool)
{
    pgs_pool_close(pool);
    CHECK(pgs_pool_join(pool, PGS_WAIT_FOREVER) == PGS_OK);
    pgs_pool_release(pool);
}

static void
test_runs_every_job(void)
{
    pgs_pool *pool = make_pool(4, 16);
    pgs_job job = {count_job, {0}};
    pgs_pool_stats stats;
    int i;

    atomic_store(&counter, 0);
    for (i = 0; i < 1000; i++)
        CHECK(pgs_pool_push(pool, &job, PGS_WAIT_FOREVER) == PGS_OK);
    CHECK(pgs_pool_wait_idle(pool, PGS_WAIT_FOREVER) == PGS_OK);
    CHECK(atomic_load(&counter) == 1000);
    pgs_pool_get_stats(pool, &stats);
    CHECK(stats.completed == 1000);
    CHECK(stats.submitted == 1000);
    CHECK(stats.queued == 0);
    CHECK(stats.running == 0);
    CHECK(stats.workers == 4);
    finish(pool);
}

static void
test_full_queue_rejects_without_wait(void)
{
    pgs_pool *pool = make_pool(1, 2);
    pgs_job slow = {sleep_job, {(void *)(uintptr_t)50000}};
    int rc, full = 0, i;

    atomic_store(&counter, 0);
    for (i = 0; i < 10; i++) {
        rc = pgs_pool_push(pool, &slow, PGS_NO_WAIT);
        CHECK(rc == PGS_OK || rc == PGS_EFULL);
        full += rc == PGS_EFULL;
    }
    /* One job running and two queued at most: at least seven rejected. */
    CHECK(full >= 7);
    CHECK(pgs_pool_wait_idle(pool, PGS_WAIT_FOREVER) == PGS_OK);
    CHECK(atomic_load(&counter) == 10 - full);
    finish(pool);
}

static void
test_push_times_out(void)
{
    pgs_pool *pool = make_pool(1, 1);
    pgs_job slow = {sleep_job, {(void *)(uintptr_t)200000}};
    int64_t start;
    int rc = PGS_OK, i;

    /* Fill the worker and the one queue slot, then wait 20 ms for room. */
    for (i = 0; i < 3 && rc == PGS_OK; i++) {
        start = pgs_monotonic_ns();
        rc = pgs_pool_push(pool, &slow, start + 20 * 1000 * 1000);
    }
    CHECK(rc == PGS_ETIMEDOUT);
    CHECK(pgs_monotonic_ns() - start >= 20 * 1000 * 1000);
    finish(pool);
}

static void
test_wait_idle_times_out(void)
{
    pgs_pool *pool = make_pool(1, 4);
    pgs_job slow = {sleep_job, {(void *)(uintptr_t)100000}};

    CHECK(pgs_pool_push(pool, &slow, PGS_WAIT_FOREVER) == PGS_OK);
    CHECK(pgs_pool_wait_idle(pool, pgs_monotonic_ns() + 1000000) ==
          PGS_ETIMEDOUT);
    CHECK(pgs_pool_wait_idle(pool, PGS_WAIT_FOREVER) == PGS_OK);
    finish(pool);
}

static void
test_closed_pool_rejects(void)
{
    pgs_pool *pool = make_pool(2, 4);
    pgs_job job = {count_job, {0}};

    pgs_pool_close(pool);
    CHECK(pgs_pool_push(pool, &job, PGS_WAIT_FOREVER) == PGS_ECLOSED);
    CHECK(pgs_pool_join(pool, PGS_WAIT_FOREVER) == PGS_OK);
    CHECK(pgs_pool_join(pool, PGS_WAIT_FOREVER) == PGS_OK);
    pgs_pool_release(pool);
}

static void
test_close_runs_queued_jobs(void)
{
    pgs_pool *pool = make_pool(2, 64);
    pgs_job slow = {sleep_job, {(void *)(uintptr_t)1000}};
    int i;

    atomic_store(&counter, 0);
    for (i = 0; i < 50; i++)
        CHECK(pgs_pool_push(pool, &slow, PGS_WAIT_FOREVER) == PGS_OK);
    finish(pool);
    CHECK(atomic_load(&counter) == 50);
}

static void
test_drain_removes_queued(void)
{
    pgs_pool *pool = make_pool(1, 16);
    pgs_job slow = {sleep_job, {(void *)(uintptr_t)50000}};
    pgs_job out[16];
    size_t drained;
    int i;

    atomic_store(&counter, 0);
    for (i = 0; i < 10; i++)
        CHECK(pgs_pool_push(pool, &slow, PGS_WAIT_FOREVER) == PGS_OK);
    pgs_pool_close(pool);
    drained = pgs_pool_drain(pool, out, 16);
    CHECK(drained >= 8 && drained <= 10);
    CHECK(pgs_pool_join(pool, PGS_WAIT_FOREVER) == PGS_OK);
    CHECK((size_t)atomic_load(&counter) == 10 - drained);
    pgs_pool_release(pool);
}

static void
test_handoff_needs_idle_worker(void)
{
    pgs_pool *pool = make_pool(1, 0);
    pgs_job slow = {sleep_job, {(void *)(uintptr_t)100000}};
    int rc = PGS_OK, i;

    /* Give the worker time to wait for work, then hand it one job. */
    usleep(20000);
    CHECK(pgs_pool_push(pool, &slow, PGS_NO_WAIT) == PGS_OK);
    for (i = 0; i < 3; i++)
        rc = pgs_pool_push(pool, &slow, PGS_NO_WAIT);
    CHECK(rc == PGS_EFULL);
    CHECK(pgs_pool_push(pool, &slow, PGS_WAIT_FOREVER) == PGS_OK);
    finish(pool);
}

static pgs_pool *self_pool;
static atomic_int self_push_result;

static void
push_to_own_pool(pgs_job *job)
{
    pgs_job slow = {sleep_job, {(void *)(uintptr_t)1000}};
    int rc = PGS_OK;

    (void)job;
    while (rc == PGS_OK)
        rc = pgs_pool_push(self_pool, &slow, PGS_WAIT_FOREVER);
    atomic_store(&self_push_result, rc);
    CHECK(pgs_pool_current() == self_pool);
    CHECK(pgs_pool_wait_idle(self_pool, PGS_WAIT_FOREVER) == PGS_EDEADLK);
    CHECK(pgs_pool_join(self_pool, PGS_WAIT_FOREVER) == PGS_EDEADLK);
}

static void
test_push_from_own_worker_does_not_block(void)
{
    pgs_job job = {push_to_own_pool, {0}};

    self_pool = make_pool(1, 4);
    CHECK(pgs_pool_push(self_pool, &job, PGS_WAIT_FOREVER) == PGS_OK);
    CHECK(pgs_pool_wait_idle(self_pool, PGS_WAIT_FOREVER) == PGS_OK);
    CHECK(atomic_load(&self_push_result) == PGS_EDEADLK);
    CHECK(pgs_pool_current() == NULL);
    finish(self_pool);
}

static void
test_abandon_lets_workers_finish(void)
{
    pgs_pool *pool = make_pool(2, 64);
    pgs_job slow = {sleep_job, {(void *)(uintptr_t)2000}};
    int i;

    atomic_store(&counter, 0);
    for (i = 0; i < 20; i++)
        CHECK(pgs_pool_push(pool, &slow, PGS_WAIT_FOREVER) == PGS_OK);
    pgs_pool_abandon(pool);
    for (i = 0; i < 500 && atomic_load(&counter) < 20; i++)
        usleep(1000);
    CHECK(atomic_load(&counter) == 20);
}

typedef struct {
    pgs_pool *pool;
    pthread_barrier_t *barrier;
} storm_arg;

static void *
storm_submitter(void *arg)
{
    storm_arg *storm = arg;
    pgs_job job = {count_job, {0}};
    int i;

    pthread_barrier_wait(storm->barrier);
    for (i = 0; i < 10000; i++)
        pgs_pool_push(storm->pool, &job, PGS_WAIT_FOREVER);
    return NULL;
}

static void
test_submit_storm(void)
{
    enum { THREADS = 8 };
    pthread_t threads[THREADS];
    pthread_barrier_t barrier;
    storm_arg arg;
    pgs_pool_stats stats;
    int i;

    atomic_store(&counter, 0);
    arg.pool = make_pool(4, 32);
    arg.barrier = &barrier;
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, storm_submitter, &arg);
    for (i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    CHECK(pgs_pool_wait_idle(arg.pool, PGS_WAIT_FOREVER) == PGS_OK);
    CHECK(atomic_load(&counter) == THREADS * 10000);
    pgs_pool_get_stats(arg.pool, &stats);
    CHECK(stats.completed == THREADS * 10000);
    pthread_barrier_destroy(&barrier);
    finish(arg.pool);
}

static void
test_rejects_zero_workers(void)
{
    pgs_pool_options options = {0};
    pgs_pool *pool = (pgs_pool *)&options;

    CHECK(pgs_pool_create(&pool, &options) == PGS_EINVAL);
    CHECK(pool == NULL);
}

static _Atomic int64_t seen_enqueued_ns;

static void
note_enqueued_job(pgs_job *job)
{
    (void)job;
    atomic_store(&seen_enqueued_ns, pgs_pool_last_enqueued_ns());
}

static void
test_worker_sees_enqueue_time(void)
{
    pgs_pool *pool = make_pool(1, 4);
    pgs_job job = {note_enqueued_job, {0}};
    int64_t before, after;

    CHECK(pgs_pool_last_enqueued_ns() == 0); /* not a worker */
    before = pgs_monotonic_ns();
    CHECK(pgs_pool_push(pool, &job, PGS_WAIT_FOREVER) == PGS_OK);
    after = pgs_monotonic_ns();
    CHECK(pgs_pool_wait_idle(pool, PGS_WAIT_FOREVER) == PGS_OK);
    CHECK(atomic_load(&seen_enqueued_ns) >= before);
    CHECK(atomic_load(&seen_enqueued_ns) <= after);
    finish(pool);
}

int
main(void)
{
    RUN_TEST(test_runs_every_job);
    RUN_TEST(test_full_queue_rejects_without_wait);
    RUN_TEST(test_push_times_out);
    RUN_TEST(test_wait_idle_times_out);
    RUN_TEST(test_closed_pool_rejects);
    RUN_TEST(test_close_runs_queued_jobs);
    RUN_TEST(test_drain_removes_queued);
    RUN_TEST(test_handoff_needs_idle_worker);
    RUN_TEST(test_push_from_own_worker_does_not_block);
    RUN_TEST(test_abandon_lets_workers_finish);
    RUN_TEST(test_submit_storm);
    RUN_TEST(test_rejects_zero_workers);
    RUN_TEST(test_worker_sees_enqueue_time);
    return check_report();
}
