/*
 * pool_registry.c - process-wide list of live pools; see pool_registry.h.
 *
 * Lock rules: registry_lock protects the list links only.  It is never held
 * while waiting for a pool or while Python code runs, and fork() handlers
 * take it so that a child never inherits it locked.
 */
#include "pool_registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "pgs_error.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pool_ctx *registry_head;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;


static void
before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
}


static void
after_fork_in_parent(void)
{
    pthread_mutex_unlock(&registry_lock);
}


static void
after_fork_in_child(void)
{
    /* The parent's pools have no threads here; forget them. */
    pthread_mutex_init(&registry_lock, NULL);
    registry_head = NULL;
}


static void
install_fork_handlers(void)
{
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}


void
pgs_registry_add(pool_ctx *ctx)
{
    pthread_once(&atfork_once, install_fork_handlers);
    pthread_mutex_lock(&registry_lock);
    ctx->prev = NULL;
    ctx->next = registry_head;
    if (registry_head != NULL)
        registry_head->prev = ctx;
    registry_head = ctx;
    pthread_mutex_unlock(&registry_lock);
}


void
pgs_registry_remove(pool_ctx *ctx)
{
    pthread_mutex_lock(&registry_lock);
    if (ctx->prev != NULL)
        ctx->prev->next = ctx->next;
    else if (registry_head == ctx)
        registry_head = ctx->next;
    if (ctx->next != NULL)
        ctx->next->prev = ctx->prev;
    ctx->prev = ctx->next = NULL;
    pthread_mutex_unlock(&registry_lock);
}


static int
join_one(void *pool, int64_t deadline_ns)
{
    return pgs_pool_join(pool, deadline_ns);
}


int
pgs_registry_shutdown_all(void)
{
    pgs_pool **pools = NULL;
    size_t n = 0, cap = 0, i;
    int rc = 0;
    pool_ctx *ctx;

    /* Take a reference to each pool so none is freed while we wait. */
    pthread_mutex_lock(&registry_lock);
    for (ctx = registry_head; ctx != NULL; ctx = ctx->next) {
        if (n == cap) {
            size_t new_cap = cap ? cap * 2 : 8;
            pgs_pool **grown = realloc(pools, new_cap * sizeof(*pools));

            if (grown == NULL)
                break;
            pools = grown;
            cap = new_cap;
        }
        pgs_pool_retain(ctx->pool);
        pools[n++] = ctx->pool;
    }
    pthread_mutex_unlock(&registry_lock);

    for (i = 0; i < n; i++) {
        pgs_pool_close(pools[i]);
        if (rc == 0 &&
            pgs_wait_released(join_one, pools[i], PGS_WAIT_FOREVER) ==
                PGS_WAIT_INTERRUPTED)
            rc = -1;
    }
    /* Releasing may free a pool, which takes registry_lock: do it last. */
    for (i = 0; i < n; i++)
        pgs_pool_release(pools[i]);
    free(pools);
    return rc;
}


void
pgs_registry_foreach(pgs_pool_visit_fn visit, void *arg)
{
    pool_ctx *ctx;

    /* A pool whose last reference is gone blocks in its destroy hook
       (pgs_registry_remove) until this loop lets go of the lock, so every
       ctx->pool seen here is still allocated. */
    pthread_mutex_lock(&registry_lock);
    for (ctx = registry_head; ctx != NULL; ctx = ctx->next)
        visit(arg, ctx);
    pthread_mutex_unlock(&registry_lock);
}


int
pgs_pool_ctx_init_metrics(pool_ctx *ctx, PyObject *name)
{
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(name, &length);
    size_t index;
    int rc;

    if (utf8 == NULL)
        return -1;
    ctx->c_name = PyMem_RawMalloc((size_t)length + 1);
    if (ctx->c_name == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(ctx->c_name, utf8, (size_t)length + 1);
    rc = pgs_histogram_create(&ctx->wait_seconds, pgs_short_seconds_bounds,
                              pgs_short_seconds_nbounds, 1);
    if (rc == PGS_OK)
        rc = pgs_histogram_add_series(ctx->wait_seconds, &index);
    if (rc == PGS_OK)
        rc = pgs_histogram_create(&ctx->run_seconds, pgs_short_seconds_bounds,
                                  pgs_short_seconds_nbounds, 1);
    if (rc == PGS_OK)
        rc = pgs_histogram_add_series(ctx->run_seconds, &index);
    if (rc != PGS_OK) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}


void
pgs_pool_ctx_free_metrics(pool_ctx *ctx)
{
    PyMem_RawFree(ctx->c_name);
    ctx->c_name = NULL;
    pgs_histogram_free(ctx->wait_seconds);
    ctx->wait_seconds = NULL;
    pgs_histogram_free(ctx->run_seconds);
    ctx->run_seconds = NULL;
}
