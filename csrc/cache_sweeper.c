/*
 * cache_sweeper.c - one background thread per TTLCache; see
 * cache_sweeper.h.
 *
 * Lock rules: sweeper->lock protects stop and exited.  The thread holds it
 * only while waiting for the next tick, never while sweeping or holding the
 * GIL, so the owner can always take it to ask for a stop.
 */
#include "module.h"

#include <pthread.h>
#include <stdlib.h>

#include "cache_sweeper.h"
#include "pgs_fork.h"
#include "pgs_sync.h"

struct cache_sweeper {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled on stop and on exit */
    int stop;
    int exited;
    int detached;     /* the thread frees the struct as it exits */
    pgs_cache *cache; /* borrowed; not touched once stop is seen */
    int64_t interval_ns;
    size_t budget;
    pthread_t thread;
    unsigned long fork_generation;
};


static void
sweeper_free(cache_sweeper *sw)
{
    pthread_cond_destroy(&sw->cond);
    pthread_mutex_destroy(&sw->lock);
    free(sw);
}


static void *
sweeper_main(void *arg)
{
    cache_sweeper *sw = arg;
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    PyGILState_STATE gil = PyGILState_UNLOCKED;
    PyThreadState *tstate = NULL;
    int detached;
    int64_t next = pgs_monotonic_ns() + sw->interval_ns;

#if defined(__linux__)
    pthread_setname_np(pthread_self(), "pgs-sweep");
#endif
    for (;;) {
        pthread_mutex_lock(&sw->lock);
        while (!sw->stop && pgs_monotonic_ns() < next)
            pgs_cond_wait_until(&sw->cond, &sw->lock, next);
        if (sw->stop) {
            pthread_mutex_unlock(&sw->lock);
            break;
        }
        pthread_mutex_unlock(&sw->lock);

        pgs_cache_sweep(sw->cache, pgs_cache_clock_ns(), sw->budget, &garbage);
        if (!pgs_cache_garbage_empty(&garbage)) {
            /* Releasing runs __del__ methods; it may even free the cache and
               stop this sweeper, which is why the loop checks stop first. */
            /* One thread state for the thread's whole life: creating and
               deleting one per tick takes CPython's runtime lock so often
               that a fork() in another thread can catch it held, and the
               child then hangs in PyOS_AfterFork_Child (CPython 3.11). */
            if (tstate == NULL)
                gil = PyGILState_Ensure();
            else
                PyEval_RestoreThread(tstate);
            pgs_cache_garbage_release(sw->cache, &garbage);
            tstate = PyEval_SaveThread();
        }
        next = pgs_monotonic_ns() + sw->interval_ns;
    }
    pthread_mutex_lock(&sw->lock);
    sw->exited = 1;
    detached = sw->detached;
    pthread_cond_broadcast(&sw->cond);
    pthread_mutex_unlock(&sw->lock);
    if (tstate != NULL) {
        /* After exited is set, so that a stop() that runs during
           finalization, where taking the GIL ends this thread, still
           returns. */
        PyEval_RestoreThread(tstate);
        PyGILState_Release(gil);
    }
    if (detached)
        sweeper_free(sw);
    return NULL;
}


int
pgs_sweeper_start(cache_sweeper **out, pgs_cache *cache, int64_t interval_ns,
                  size_t budget)
{
    cache_sweeper *sw = calloc(1, sizeof(*sw));
    int rc;

    if (sw == NULL)
        return PGS_ENOMEM;
    if (pthread_mutex_init(&sw->lock, NULL) != 0) {
        free(sw);
        return PGS_ENOMEM;
    }
    if (pgs_cond_init(&sw->cond) != PGS_OK) {
        pthread_mutex_destroy(&sw->lock);
        free(sw);
        return PGS_ENOMEM;
    }
    sw->cache = cache;
    sw->interval_ns = interval_ns;
    sw->budget = budget;
    sw->fork_generation = pgs_fork_generation();
    rc = pthread_create(&sw->thread, NULL, sweeper_main, sw);
    if (rc != 0) {
        pthread_cond_destroy(&sw->cond);
        pthread_mutex_destroy(&sw->lock);
        free(sw);
        return PGS_ETHREAD;
    }
    *out = sw;
    return PGS_OK;
}


/* Ask the thread to stop and wait until it has; the GIL is released. */
static void
sweeper_halt(cache_sweeper *sw)
{
    pthread_mutex_lock(&sw->lock);
    sw->stop = 1;
    pthread_cond_broadcast(&sw->cond);
    while (!sw->exited)
        pgs_cond_wait_until(&sw->cond, &sw->lock, -1);
    pthread_mutex_unlock(&sw->lock);
}


void
pgs_sweeper_stop(cache_sweeper *sw)
{
    if (pgs_sweeper_is_inherited(sw)) {
        /* Only free the memory.  The parent's thread may have been
           waiting on cond at the fork, and glibc's pthread_cond_destroy
           then waits forever for a waiter that does not exist here. */
        free(sw);
        return;
    }
    if (pthread_equal(pthread_self(), sw->thread)) {
        /* The thread checks stop as soon as this release returns, then
           exits and frees the struct itself. */
        pthread_mutex_lock(&sw->lock);
        sw->stop = 1;
        sw->detached = 1;
        pthread_mutex_unlock(&sw->lock);
        pthread_detach(sw->thread);
        return;
    }
    Py_BEGIN_ALLOW_THREADS
    sweeper_halt(sw);
    pthread_join(sw->thread, NULL);
    Py_END_ALLOW_THREADS
    sweeper_free(sw);
}


int
pgs_sweeper_is_inherited(const cache_sweeper *sw)
{
    return sw->fork_generation != pgs_fork_generation();
}


void
pgs_sweeper_lock(cache_sweeper *sw)
{
    pthread_mutex_lock(&sw->lock);
}


void
pgs_sweeper_unlock(cache_sweeper *sw)
{
    pthread_mutex_unlock(&sw->lock);
}
