/*
 * pool.c - bounded worker pool; see pool.h for the contract.
 *
 * Lock rules: pool->lock protects every field below it in struct pgs_pool
 * except the atomic counters.  Hooks and jobs run with no pool lock held.
 * Condition variables are signalled only when someone waits on them
 * (the *_waiters counts), which keeps the uncontended push/pop path free of
 * system calls.
 */

#include "pool.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pgs_error.h"
#include "pgs_fork.h"
#include "pgs_sync.h"
#include "pgs_time.h"

struct pgs_pool {
    pgs_pool_hooks hooks;
    unsigned long fork_generation;
    char thread_name[16];

    pthread_mutex_t lock;
    pthread_cond_t not_empty; /* a job was queued, or the pool closed */
    pthread_cond_t not_full;  /* room appeared, or the pool closed */
    pthread_cond_t idle;      /* nothing queued or running */
    pthread_cond_t exited;    /* the last worker exited */

    pgs_job *ring; /* ring_size slots; count of them from head are queued */
    int64_t *enqueued_ns; /* ring_size slots: when each job was queued */
    size_t ring_size;
    size_t capacity;
    size_t head;
    size_t count;
    size_t running;
    size_t idle_workers; /* workers waiting on not_empty */
    size_t full_waiters; /* pushers waiting on not_full */
    size_t idle_waiters; /* callers waiting on idle */
    size_t exit_waiters; /* callers waiting on exited */
    size_t live;         /* workers started and not exited */
    size_t refs;
    int closed;
    int joined;
    int detached;
    size_t nthreads;
    pthread_t *threads;

    atomic_uint_fast64_t submitted;
    atomic_uint_fast64_t completed;
    atomic_uint_fast64_t failed;
    atomic_uint_fast64_t cancelled;
    atomic_uint_fast64_t rejected;
};

static _Thread_local pgs_pool *current_pool;
static _Thread_local int64_t last_enqueued_ns;


static void
pool_free(pgs_pool *pool)
{
    void (*destroy)(void *) = pool->hooks.destroy;
    void *ctx = pool->hooks.ctx;

    /* The hook runs first so that code listing pools through the hook's
       context (the metrics registry) can still read this pool until the
       hook has removed it from that list. */
    if (destroy != NULL)
        destroy(ctx);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->not_empty);
    pthread_cond_destroy(&pool->not_full);
    pthread_cond_destroy(&pool->idle);
    pthread_cond_destroy(&pool->exited);
    free(pool->ring);
    free(pool->enqueued_ns);
    free(pool->threads);
    free(pool);
}


/* Drop one reference with pool->lock held; returns nonzero if it was the last.
 */
static int
unref_locked(pgs_pool *pool)
{
    assert(pool->refs > 0);
    return --pool->refs == 0;
}


static int
has_room_locked(const pgs_pool *pool)
{
    if (pool->capacity == 0)
        return pool->count < pool->idle_workers;
    return pool->count < pool->capacity;
}


static void
pop_locked(pgs_pool *pool, pgs_job *out)
{
    *out = pool->ring[pool->head];
    last_enqueued_ns = pool->enqueued_ns[pool->head];
    pool->head = (pool->head + 1) % pool->ring_size;
    pool->count--;
    pool->running++;
    if (pool->full_waiters > 0)
        pthread_cond_signal(&pool->not_full);
}


static void
signal_if_idle_locked(pgs_pool *pool)
{
    if (pool->count == 0 && pool->running == 0 && pool->idle_waiters > 0)
        pthread_cond_broadcast(&pool->idle);
}


static void
run_default(void *ctx, pgs_pool *pool, pgs_job *job)
{
    (void)ctx;
    job->fn(job);
    pgs_pool_task_done(pool, PGS_TASK_COMPLETED);
}


static void *
worker_main(void *arg)
{
    pgs_pool *pool = arg;
    void (*run)(void *, pgs_pool *, pgs_job *) = pool->hooks.run;
    pgs_job job;
    int last;

    if (run == NULL)
        run = run_default;
    current_pool = pool;
#if defined(__linux__)
    if (pool->thread_name[0] != '\0')
        pthread_setname_np(pthread_self(), pool->thread_name);
#endif
    if (pool->hooks.thread_enter != NULL)
        pool->hooks.thread_enter(pool->hooks.ctx);

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->count == 0 && !pool->closed) {
            pool->idle_workers++;
            /* A hand-off pool just gained room for one push. */
            if (pool->capacity == 0 && pool->full_waiters > 0)
                pthread_cond_signal(&pool->not_full);
            pthread_cond_wait(&pool->not_empty, &pool->lock);
            pool->idle_workers--;
        }
        if (pool->count == 0)
            break; /* closed and drained */
        pop_locked(pool, &job);
        pthread_mutex_unlock(&pool->lock);
        run(pool->hooks.ctx, pool, &job);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);

    if (pool->hooks.thread_exit != NULL)
        pool->hooks.thread_exit(pool->hooks.ctx);
    current_pool = NULL;

    pthread_mutex_lock(&pool->lock);
    pool->live--;
    if (pool->live == 0 && pool->exit_waiters > 0)
        pthread_cond_broadcast(&pool->exited);
    last = unref_locked(pool);
    pthread_mutex_unlock(&pool->lock);
    if (last)
        pool_free(pool);
    return NULL;
}


static int
init_sync(pgs_pool *pool)
{
    if (pthread_mutex_init(&pool->lock, NULL) != 0)
        return PGS_ENOMEM;
    if (pgs_cond_init(&pool->not_empty) != PGS_OK)
        goto error_lock;
    if (pgs_cond_init(&pool->not_full) != PGS_OK)
        goto error_not_empty;
    if (pgs_cond_init(&pool->idle) != PGS_OK)
        goto error_not_full;
    if (pgs_cond_init(&pool->exited) != PGS_OK)
        goto error_idle;
    return PGS_OK;

error_idle:
    pthread_cond_destroy(&pool->idle);
error_not_full:
    pthread_cond_destroy(&pool->not_full);
error_not_empty:
    pthread_cond_destroy(&pool->not_empty);
error_lock:
    pthread_mutex_destroy(&pool->lock);
    return PGS_ENOMEM;
}


int
pgs_pool_create(pgs_pool **out, const pgs_pool_options *options)
{
    pgs_pool *pool;
    size_t i;

    *out = NULL;
    if (options->workers == 0)
        return PGS_EINVAL;
    pgs_fork_install();

    pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return PGS_ENOMEM;
    pool->hooks = options->hooks;
    pool->fork_generation = pgs_fork_generation();
    if (options->thread_name != NULL)
        strncpy(pool->thread_name, options->thread_name,
                sizeof(pool->thread_name) - 1);
    pool->capacity = options->capacity;
    pool->ring_size = options->capacity > options->workers ? options->capacity
                                                           : options->workers;
    pool->ring = calloc(pool->ring_size, sizeof(pgs_job));
    pool->enqueued_ns = calloc(pool->ring_size, sizeof(int64_t));
    pool->threads = calloc(options->workers, sizeof(pthread_t));
    if (pool->ring == NULL || pool->enqueued_ns == NULL ||
        pool->threads == NULL || init_sync(pool) != PGS_OK) {
        free(pool->ring);
        free(pool->enqueued_ns);
        free(pool->threads);
        free(pool);
        return PGS_ENOMEM;
    }
    pool->refs = 1;

    /* Workers take the lock before looking at the queue, so holding it here
       keeps live, refs and nthreads consistent while threads start. */
    pthread_mutex_lock(&pool->lock);
    for (i = 0; i < options->workers; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0)
            break;
        pool->nthreads++;
        pool->live++;
        pool->refs++;
    }
    pthread_mutex_unlock(&pool->lock);

    if (pool->nthreads < options->workers) {
        /* The hooks must not see a half-built pool as a success. */
        pgs_pool_close(pool);
        pgs_pool_join(pool, PGS_WAIT_FOREVER);
        pool->hooks.destroy = NULL;
        pgs_pool_release(pool);
        return PGS_ETHREAD;
    }
    *out = pool;
    return PGS_OK;
}


int
pgs_pool_is_inherited(const pgs_pool *pool)
{
    return pool->fork_generation != pgs_fork_generation();
}


int
pgs_pool_push(pgs_pool *pool, const pgs_job *job, int64_t deadline_ns)
{
    int rc = PGS_OK;
    size_t tail;

    if (pgs_pool_is_inherited(pool))
        return PGS_ECLOSED;
    pthread_mutex_lock(&pool->lock);
    while (!pool->closed && !has_room_locked(pool)) {
        if (deadline_ns == PGS_NO_WAIT) {
            rc = PGS_EFULL;
            break;
        }
        if (current_pool == pool) {
            rc = PGS_EDEADLK;
            break;
        }
        pool->full_waiters++;
        rc = pgs_cond_wait_until(&pool->not_full, &pool->lock, deadline_ns);
        pool->full_waiters--;
        if (rc == PGS_ETIMEDOUT && !pool->closed && !has_room_locked(pool))
            break;
        rc = PGS_OK;
    }
    if (rc == PGS_OK && pool->closed)
        rc = PGS_ECLOSED;
    if (rc == PGS_OK) {
        tail = (pool->head + pool->count) % pool->ring_size;
        pool->ring[tail] = *job;
        pool->enqueued_ns[tail] = pgs_monotonic_ns();
        pool->count++;
        atomic_fetch_add_explicit(&pool->submitted, 1, memory_order_relaxed);
        if (pool->idle_workers > 0)
            pthread_cond_signal(&pool->not_empty);
    }
    pthread_mutex_unlock(&pool->lock);
    return rc;
}


int
pgs_pool_try_pop(pgs_pool *pool, pgs_job *out)
{
    int rc = PGS_EEMPTY;

    pthread_mutex_lock(&pool->lock);
    if (pool->count > 0) {
        pop_locked(pool, out);
        rc = PGS_OK;
    }
    pthread_mutex_unlock(&pool->lock);
    return rc;
}


void
pgs_pool_task_done(pgs_pool *pool, pgs_task_outcome outcome)
{
    atomic_uint_fast64_t *counter = &pool->completed;

    if (outcome == PGS_TASK_FAILED)
        counter = &pool->failed;
    else if (outcome == PGS_TASK_CANCELLED)
        counter = &pool->cancelled;
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->lock);
    assert(pool->running > 0);
    pool->running--;
    signal_if_idle_locked(pool);
    pthread_mutex_unlock(&pool->lock);
}


void
pgs_pool_note_cancelled(pgs_pool *pool, size_t n)
{
    atomic_fetch_add_explicit(&pool->cancelled, n, memory_order_relaxed);
}


void
pgs_pool_note_rejected(pgs_pool *pool)
{
    atomic_fetch_add_explicit(&pool->rejected, 1, memory_order_relaxed);
}


int
pgs_pool_wait_idle(pgs_pool *pool, int64_t deadline_ns)
{
    int rc = PGS_OK;

    if (pgs_pool_is_inherited(pool))
        return PGS_ECLOSED;
    pthread_mutex_lock(&pool->lock);
    while (pool->count > 0 || pool->running > 0) {
        if (current_pool == pool) {
            rc = PGS_EDEADLK;
            break;
        }
        pool->idle_waiters++;
        rc = pgs_cond_wait_until(&pool->idle, &pool->lock, deadline_ns);
        pool->idle_waiters--;
        if (rc == PGS_ETIMEDOUT) {
            if (pool->count == 0 && pool->running == 0)
                rc = PGS_OK;
            break;
        }
    }
    pthread_mutex_unlock(&pool->lock);
    return rc;
}


size_t
pgs_pool_drain(pgs_pool *pool, pgs_job *out, size_t max)
{
    size_t n = 0;

    if (pgs_pool_is_inherited(pool))
        return 0;
    pthread_mutex_lock(&pool->lock);
    while (n < max && pool->count > 0) {
        out[n++] = pool->ring[pool->head];
        pool->head = (pool->head + 1) % pool->ring_size;
        pool->count--;
    }
    if (n > 0 && pool->full_waiters > 0)
        pthread_cond_broadcast(&pool->not_full);
    signal_if_idle_locked(pool);
    pthread_mutex_unlock(&pool->lock);
    return n;
}


void
pgs_pool_close(pgs_pool *pool)
{
    if (pgs_pool_is_inherited(pool))
        return;
    pthread_mutex_lock(&pool->lock);
    if (!pool->closed) {
        pool->closed = 1;
        pthread_cond_broadcast(&pool->not_empty);
        pthread_cond_broadcast(&pool->not_full);
    }
    pthread_mutex_unlock(&pool->lock);
}


int
pgs_pool_join(pgs_pool *pool, int64_t deadline_ns)
{
    int rc = PGS_OK;
    int must_join = 0;
    size_t i;

    if (pgs_pool_is_inherited(pool))
        return PGS_ECLOSED;
    if (current_pool == pool)
        return PGS_EDEADLK;
    pthread_mutex_lock(&pool->lock);
    while (pool->live > 0) {
        pool->exit_waiters++;
        rc = pgs_cond_wait_until(&pool->exited, &pool->lock, deadline_ns);
        pool->exit_waiters--;
        if (rc == PGS_ETIMEDOUT && pool->live > 0)
            break;
        rc = PGS_OK;
    }
    if (rc == PGS_OK && !pool->joined && !pool->detached) {
        /* Claim the join so that a concurrent caller does not repeat it. */
        pool->joined = 1;
        must_join = 1;
    }
    pthread_mutex_unlock(&pool->lock);

    /* Every worker has passed its last use of the lock; joining is quick. */
    for (i = 0; must_join && i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    return rc;
}


void
pgs_pool_retain(pgs_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->refs++;
    pthread_mutex_unlock(&pool->lock);
}


int
pgs_pool_try_retain(pgs_pool *pool)
{
    int taken;

    pthread_mutex_lock(&pool->lock);
    taken = pool->refs > 0;
    if (taken)
        pool->refs++;
    pthread_mutex_unlock(&pool->lock);
    return taken;
}


void
pgs_pool_release(pgs_pool *pool)
{
    int last;

    pthread_mutex_lock(&pool->lock);
    last = unref_locked(pool);
    pthread_mutex_unlock(&pool->lock);
    if (last)
        pool_free(pool);
}


void
pgs_pool_abandon(pgs_pool *pool)
{
    size_t i;

    if (pgs_pool_is_inherited(pool))
        return; /* leaked on purpose, see pool.h */
    pgs_pool_close(pool);
    pthread_mutex_lock(&pool->lock);
    if (!pool->joined && !pool->detached) {
        pool->detached = 1;
        for (i = 0; i < pool->nthreads; i++)
            pthread_detach(pool->threads[i]);
    }
    pthread_mutex_unlock(&pool->lock);
    pgs_pool_release(pool);
}


void
pgs_pool_get_stats(pgs_pool *pool, pgs_pool_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!pgs_pool_is_inherited(pool)) {
        pthread_mutex_lock(&pool->lock);
        out->workers = pool->live;
        out->queued = pool->count;
        out->running = pool->running;
        pthread_mutex_unlock(&pool->lock);
    }
    out->capacity = pool->capacity;
    out->submitted =
        atomic_load_explicit(&pool->submitted, memory_order_relaxed);
    out->completed =
        atomic_load_explicit(&pool->completed, memory_order_relaxed);
    out->failed = atomic_load_explicit(&pool->failed, memory_order_relaxed);
    out->cancelled =
        atomic_load_explicit(&pool->cancelled, memory_order_relaxed);
    out->rejected = atomic_load_explicit(&pool->rejected, memory_order_relaxed);
}


pgs_pool *
pgs_pool_current(void)
{
    return current_pool;
}


int64_t
pgs_pool_last_enqueued_ns(void)
{
    return last_enqueued_ns;
}
